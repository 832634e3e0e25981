"""Revised dicts: which keys changed since the dict last stored, so a roster written
back writes the changed members' rows without comparing every member."""

from hypothesis import given
from hypothesis import strategies as st

from e2echat.crypto import MemoryStore
from e2echat.crypto.records import ROOMS, MemberRecord, Records, RoomRecord
from e2echat.crypto.revised import MAX_TRACKED, changed_since, revised, settle

from .harness import FAST


def test_a_revision_of_a_revision_counts_from_the_first_base_until_settled() -> None:
    base = {b"a": 1, b"b": 2}
    first = revised(base, {b"c": 3})
    second = revised(first, removed=[b"a"])
    assert second == {b"b": 2, b"c": 3}
    assert changed_since(second, base) == {b"a", b"c"}
    assert changed_since(second, first) is None  # first was never stored
    settle(second)
    assert changed_since(revised(second, {b"b": 5}), second) == {b"b"}
    assert changed_since(second, second) == frozenset()


def test_past_the_tracked_keys_a_revision_is_compared_whole() -> None:
    values: dict[int, int] = {}
    for key in range(MAX_TRACKED + 1):
        values = revised(values, {key: key})
    assert changed_since(values, {}) is None
    assert changed_since(revised(values, {0: 1}), {}) is None  # and so are its revisions


def record(name: str) -> MemberRecord:
    return MemberRecord(name, None, True, True)


steps = st.lists(st.tuples(st.booleans(), st.integers(0, 5), st.booleans()), max_size=25)


@FAST
@given(steps)
def test_a_roster_revised_and_written_in_any_order_reads_back_the_same(
    plan: list[tuple[bool, int, bool]],
) -> None:
    """Each step sets or drops a member, and is written or not (then the next revision
    builds on it unwritten); a fresh read of the store always gives the last roster."""
    store = MemoryStore()
    records = Records(store)
    room = RoomRecord(b"r" * 16, None)
    for add, who, write in plan:
        key = bytes([who]) * 32
        members = (
            revised(room.members, {key: record(str(who))})
            if add
            else revised(room.members, removed=[key])
        )
        room = RoomRecord(room.room_id, None, members)
        if write:
            txn = records.begin()
            txn.put(ROOMS, room.room_id, room)
            txn.commit()
            assert Records(store).get(ROOMS, room.room_id, RoomRecord) == room
