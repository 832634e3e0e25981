"""The crypto core's record cache: absent records, and writes grouped by ``deferred``."""

from e2echat.crypto import MemoryStore
from e2echat.crypto.records import CONTACTS, PENDING, ContactRecord, PendingMessage, Records

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
