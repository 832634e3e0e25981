"""The crypto core's record cache: absent records, and writes grouped by ``deferred``."""

import msgspec
import pytest

from e2echat.crypto import MemoryStore
from e2echat.crypto.records import (
    CONTACTS,
    PENDING,
    ROOM_MEMBERS,
    ROOMS,
    ContactRecord,
    MemberRecord,
    PendingMessage,
    Records,
    RoomRecord,
)

KEY = b"k" * 32


def pending(seq: int) -> PendingMessage:
    return PendingMessage(b"r" * 16, KEY, b"c" * 16, seq, seq, b"body", 0)


class CountingStore(MemoryStore):
    """A ``MemoryStore`` that counts reads and write batches."""

    def __init__(self) -> None:
        super().__init__()
        self.gets = 0
        self.applies = 0

    def get(self, space: str, key: bytes) -> bytes | None:
        self.gets += 1
        return super().get(space, key)

    def apply(self, writes):  # type: ignore[no-untyped-def]
        self.applies += 1
        super().apply(writes)


def test_a_missing_record_is_read_once_until_written() -> None:
    store = CountingStore()
    records = Records(store)
    assert records.get(CONTACTS, KEY, ContactRecord) is None
    assert records.get(CONTACTS, KEY, ContactRecord) is None
    assert store.gets == 1
    txn = records.begin()
    txn.put(CONTACTS, KEY, ContactRecord("alice"))
    txn.commit()
    assert records.get(CONTACTS, KEY, ContactRecord) == ContactRecord("alice")
    assert Records(store).get(CONTACTS, KEY, ContactRecord) == ContactRecord("alice")


def test_deferred_writes_reach_the_store_once_with_their_last_value() -> None:
    store = CountingStore()
    records = Records(store)
    with records.deferred():
        for seq, name in enumerate("abc"):
            txn = records.begin()
            txn.put(CONTACTS, KEY, ContactRecord(name))
            txn.put(PENDING, KEY + name.encode(), pending(seq))
            txn.commit()
        assert records.get(CONTACTS, KEY, ContactRecord) == ContactRecord("c")
        assert [k for k, _ in records.scan(PENDING, KEY, PendingMessage)] == [
            KEY + b"a",
            KEY + b"b",
            KEY + b"c",
        ]
        txn = records.begin()
        txn.delete(PENDING, KEY + b"b")
        txn.commit()
        assert len(records.scan(PENDING, KEY, PendingMessage)) == 2
        assert store.applies == 0
    assert store.applies == 1
    fresh = Records(store)
    assert fresh.get(CONTACTS, KEY, ContactRecord) == ContactRecord("c")
    assert [k for k, _ in fresh.scan(PENDING, KEY, PendingMessage)] == [KEY + b"a", KEY + b"c"]


def verified(contact: ContactRecord) -> bool:
    return contact.verified


def test_a_matching_subset_follows_every_commit_and_reads_the_store_once() -> None:
    store = CountingStore()
    records = Records(store)
    other = b"o" * 32
    txn = records.begin()
    txn.put(CONTACTS, KEY, ContactRecord("alice", verified=True))
    txn.put(CONTACTS, other, ContactRecord("bob"))
    txn.commit()
    assert records.matching(CONTACTS, ContactRecord, verified) == {
        KEY: ContactRecord("alice", verified=True)
    }
    with records.deferred():
        txn = records.begin()
        txn.put(CONTACTS, other, ContactRecord("bob", verified=True))
        txn.delete(CONTACTS, KEY)
        txn.commit()
        assert records.matching(CONTACTS, ContactRecord, verified) == {
            other: ContactRecord("bob", verified=True)
        }
    txn = records.begin()
    txn.put(CONTACTS, other, ContactRecord("bob"))
    txn.commit()
    assert records.matching(CONTACTS, ContactRecord, verified) == {}
    assert store.gets == 0  # the subset came from one scan, then from the commits


ROOM = b"r" * 16


class WritingStore(MemoryStore):
    """A ``MemoryStore`` that keeps the rows of every write batch."""

    def __init__(self) -> None:
        super().__init__()
        self.written: list[tuple[str, bytes, bool]] = []

    def apply(self, writes):  # type: ignore[no-untyped-def]
        self.written += [(w.space, w.key, w.value is not None) for w in writes]
        super().apply(writes)


def member_key(i: int) -> bytes:
    return i.to_bytes(32, "big")


def roster(size: int) -> RoomRecord:
    members = {member_key(i): MemberRecord(f"m{i}", None, True, True) for i in range(size)}
    return RoomRecord(ROOM, None, members)


def put(records: Records, room: RoomRecord | None) -> None:
    txn = records.begin()
    if room is None:
        txn.delete(ROOMS, ROOM)
    else:
        txn.put(ROOMS, ROOM, room)
    txn.commit()


@pytest.mark.parametrize("size", [10, 1000])
def test_a_roster_change_writes_the_members_row_alone_whatever_the_size(size: int) -> None:
    store = WritingStore()
    put(Records(store), roster(size))
    records = Records(store)
    room = records.get(ROOMS, ROOM, RoomRecord)
    assert room == roster(size)
    store.written = []
    joiner = MemberRecord("new", None, True, False)
    room = msgspec.structs.replace(room, members={**room.members, member_key(size): joiner})
    put(records, room)
    assert store.written == [(ROOMS, ROOM, True), (ROOM_MEMBERS, ROOM + member_key(size), True)]
    store.written = []
    validated = msgspec.structs.replace(joiner, validated=True)
    members = {**room.members, member_key(size): validated}
    del members[member_key(0)]
    room = msgspec.structs.replace(room, members=members)
    put(records, room)
    assert sorted(store.written) == [
        (ROOM_MEMBERS, ROOM + member_key(0), False),
        (ROOM_MEMBERS, ROOM + member_key(size), True),
        (ROOMS, ROOM, True),
    ]
    assert Records(store).get(ROOMS, ROOM, RoomRecord) == room


def test_a_roster_written_unread_replaces_every_row_and_a_delete_leaves_none() -> None:
    store = WritingStore()
    put(Records(store), roster(5))
    put(Records(store), roster(3))  # not read first: the rows of 3 and 4 go too
    assert Records(store).get(ROOMS, ROOM, RoomRecord) == roster(3)
    assert [room for _, room in Records(store).scan(ROOMS, b"", RoomRecord)] == [roster(3)]
    records = Records(store)
    with records.deferred():
        put(records, roster(4))
        assert records.get(ROOMS, ROOM, RoomRecord) == roster(4)
    put(records, None)
    assert Records(store).get(ROOMS, ROOM, RoomRecord) is None
    assert store.snapshot() == {}
