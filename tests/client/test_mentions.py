"""Mention resolution against a roster: longest name wins, unknown names stay text."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from e2echat.client.errors import AmbiguousMention
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


REAL, NAMESAKE = bytes.fromhex("9a92" + "00" * 30), bytes.fromhex("1b3c" + "11" * 30)
NAMESAKES = [("alice", REAL), ("alice", NAMESAKE), ("bob", BOB)]


def test_a_tag_picks_one_of_several_namesakes() -> None:
    assert resolve_mentions("@alice#9a92 hi", NAMESAKES) == (REAL,)
    assert resolve_mentions("@alice#1B3C, and @alice#9a92", NAMESAKES) == (NAMESAKE, REAL)
    assert resolve_mentions("@bob#1234 hi", NAMESAKES) == ()  # a tag of nobody named so


def test_a_bare_ambiguous_name_is_refused_never_guessed() -> None:
    with pytest.raises(AmbiguousMention, match="@alice#1b3c or @alice#9a92"):
        resolve_mentions("@alice hi", NAMESAKES)
    with pytest.raises(AmbiguousMention):
        resolve_mentions("@alice#9a9 (a tag too short to count)", NAMESAKES)
    assert resolve_mentions("@bob hi", NAMESAKES) == (BOB,)


def test_one_member_listed_twice_under_one_name_is_not_ambiguous() -> None:
    """A petname equal to the member's own name lists its key twice under that name."""
    assert resolve_mentions("@bob hi", [*NAMESAKES, ("bob", BOB)]) == (BOB,)
