"""Mention resolution against a roster: longest name wins, unknown names stay text."""

from hypothesis import given, settings
from hypothesis import strategies as st

from e2echat.client.mentions import resolve_mentions

ALICE, BOB, BOBBY, ANN = b"a" * 32, b"b" * 32, b"c" * 32, b"d" * 32
ROSTER = [("alice", ALICE), ("bob", BOB), ("bob by", BOBBY), ("Ann Lee", ANN)]


def test_resolves_in_order_without_repeats() -> None:
    assert resolve_mentions("hi @bob and @alice, @bob again", ROSTER) == (BOB, ALICE)


def test_longest_name_wins_and_names_may_have_spaces() -> None:
    assert resolve_mentions("@bob by: look", ROSTER) == (BOBBY,)
    assert resolve_mentions("ping @Ann Lee!", ROSTER) == (ANN,)


def test_unknown_or_partial_names_stay_plain_text() -> None:
    assert resolve_mentions("@bobcat and @carol", ROSTER) == ()
    assert resolve_mentions("mail me at bob@alice.org", ROSTER) == ()
    assert resolve_mentions("@", ROSTER) == ()
    assert resolve_mentions("@@bob", ROSTER) == (BOB,)


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=80))
def test_every_result_is_a_roster_key_named_in_the_text(text: str) -> None:
    found = resolve_mentions(text, ROSTER)
    names = {key: name for name, key in ROSTER}
    assert len(set(found)) == len(found)
    assert all(f"@{names[key]}" in text for key in found)
