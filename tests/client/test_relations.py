"""The rules of edits, deletes and reactions on a stored message (e2echat.store.relations)."""

import pytest

from e2echat.crypto import Delete, Edit, Reaction, message_id
from e2echat.store.relations import (
    MAX_REACTIONS_PER_MEMBER,
    NONE,
    Annotations,
    RelationError,
    Target,
    annotate,
    decode_annotations,
    encode_annotations,
)

ALICE, BOB, CAROL = b"\x0a" * 32, b"\x0b" * 32, b"\x0c" * 32
TARGET = message_id(ALICE, b"\x01" * 16, 0)
TEXT = Target(ALICE, is_text=True)


def rid(sender: bytes, index: int) -> bytes:
    return message_id(sender, b"\x02" * 16, index)


def test_the_newest_edit_by_ts_then_id_is_shown_whatever_the_arrival_order() -> None:
    first, second = Edit(TARGET, "v2", (), 10), Edit(TARGET, "v3", (BOB,), 20)
    a = annotate(
        annotate(NONE, TEXT, second, ALICE, rid(ALICE, 2)), TEXT, first, ALICE, rid(ALICE, 1)
    )
    b = annotate(
        annotate(NONE, TEXT, first, ALICE, rid(ALICE, 1)), TEXT, second, ALICE, rid(ALICE, 2)
    )
    assert a == b
    assert a.latest is not None
    assert (a.latest.body, a.latest.mentions) == ("v3", (BOB,))
    assert [v.body for v in a.edits] == ["v2", "v3"]
    with pytest.raises(RelationError, match="already applied"):
        annotate(a, TEXT, second, ALICE, rid(ALICE, 2))


@pytest.mark.parametrize(
    ("target", "relation", "signer", "reason"),
    [
        (TEXT, Edit(TARGET, "x", (), 1), BOB, "only its sender may edit"),
        (Target(BOB, True), Edit(TARGET, "x", (), 1), BOB, "only its sender may edit"),
        (TEXT, Delete(TARGET, 1), BOB, "only its sender may delete"),
        (None, Edit(TARGET, "x", (), 1), BOB, "only its sender may edit"),
        (Target(ALICE, False), Edit(TARGET, "x", (), 1), ALICE, "only a text"),
    ],
)
def test_bad_relations_are_ignored(
    target: Target | None, relation: Edit | Delete | Reaction, signer: bytes, reason: str
) -> None:
    with pytest.raises(RelationError, match=reason):
        annotate(NONE, target, relation, signer, rid(signer, 5))


def test_a_delete_is_final_and_drops_edits_and_reactions() -> None:
    edited = annotate(NONE, TEXT, Edit(TARGET, "v2", (), 1), ALICE, rid(ALICE, 1))
    reacted = annotate(edited, TEXT, Reaction(TARGET, "👍", True, 2), BOB, rid(BOB, 1))
    deleted = annotate(reacted, TEXT, Delete(TARGET, 3), ALICE, rid(ALICE, 2))
    assert deleted == Annotations(deleted=True)
    for relation, signer in [
        (Edit(TARGET, "back", (), 4), ALICE),
        (Reaction(TARGET, "👍", True, 4), BOB),
        (Delete(TARGET, 5), ALICE),
    ]:
        with pytest.raises(RelationError, match="deleted"):
            annotate(deleted, TEXT, relation, signer, rid(signer, 9))


def test_a_delete_of_a_message_not_yet_here_is_kept() -> None:
    assert annotate(NONE, None, Delete(TARGET, 1), ALICE, rid(ALICE, 1)).deleted


def test_edits_and_reactions_of_a_message_not_yet_here_are_kept_for_it() -> None:
    held = annotate(NONE, None, Edit(TARGET, "v2", (), 5), ALICE, rid(ALICE, 1))
    held = annotate(held, None, Reaction(TARGET, "👍", True, 6), BOB, rid(BOB, 1))
    assert held.latest is not None
    assert held.latest.body == "v2"
    assert held.counts() == [("👍", (BOB,))]
    assert annotate(held, TEXT, Edit(TARGET, "v3", (), 7), ALICE, rid(ALICE, 2)).latest == (
        annotate(NONE, TEXT, Edit(TARGET, "v3", (), 7), ALICE, rid(ALICE, 2)).latest
    )


def test_reactions_are_last_writer_wins_per_member_and_emoji() -> None:
    state = annotate(NONE, TEXT, Reaction(TARGET, "👍", True, 1), BOB, rid(BOB, 1))
    state = annotate(state, TEXT, Reaction(TARGET, "👍", True, 2), CAROL, rid(CAROL, 1))
    state = annotate(state, TEXT, Reaction(TARGET, "🎉", True, 3), BOB, rid(BOB, 2))
    assert state.counts() == [("👍", (BOB, CAROL)), ("🎉", (BOB,))]
    removed = annotate(state, TEXT, Reaction(TARGET, "👍", False, 4), BOB, rid(BOB, 3))
    assert removed.counts() == [("👍", (CAROL,)), ("🎉", (BOB,))]
    with pytest.raises(RelationError, match="newer"):  # a delayed add from before the removal
        annotate(removed, TEXT, Reaction(TARGET, "👍", True, 2), BOB, rid(BOB, 0))


def test_a_member_holds_a_bounded_number_of_reactions() -> None:
    state = NONE
    emoji = [chr(0x1F600 + i) for i in range(MAX_REACTIONS_PER_MEMBER + 1)]
    for i, e in enumerate(emoji[:-1]):
        state = annotate(state, TEXT, Reaction(TARGET, e, True, i), BOB, rid(BOB, i))
    with pytest.raises(RelationError, match="at most"):
        annotate(state, TEXT, Reaction(TARGET, emoji[-1], True, 99), BOB, rid(BOB, 99))
    state = annotate(state, TEXT, Reaction(TARGET, emoji[-1], True, 99), CAROL, rid(CAROL, 1))
    for i, e in enumerate(emoji * 3):  # toggling keeps at most the newest removals
        state = annotate(state, TEXT, Reaction(TARGET, e, False, 100 + i), BOB, rid(BOB, 100 + i))
    assert sum(r.reactor == BOB for r in state.reactions) <= MAX_REACTIONS_PER_MEMBER + 1


def test_annotations_round_trip_and_hide_text() -> None:
    state = annotate(NONE, TEXT, Edit(TARGET, "secret plan", (BOB,), 1), ALICE, rid(ALICE, 1))
    assert decode_annotations(encode_annotations(state)) == state
    assert "secret plan" not in repr(state)
    assert "secret plan" not in repr(state.edits)
