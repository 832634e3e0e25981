"""The client store: schema migrations, at-rest sealing, rooms, outbox, history, state."""

import sqlite3
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from e2echat.crypto import Text, encode_payload, message_id
from e2echat.crypto.identity import Identity
from e2echat.crypto.store import Write
from e2echat.store import (
    MEMORY,
    SCHEMA_VERSION,
    HistoryItem,
    ReadState,
    RoomRecord,
    SchemaError,
    Store,
    StoreKeyError,
    StoreLockedError,
    migrate,
)
from e2echat.store.relations import Annotations, Version
from e2echat.store.schema import MIGRATIONS

ROOM = b"r" * 16
SECRET_TEXT = b"the eagle lands at midnight"


@pytest.fixture
def identity() -> Identity:
    return Identity.generate()


@pytest.fixture
def store(identity: Identity) -> Store:
    return Store(MEMORY, identity)


def test_fresh_store_is_at_latest_schema(tmp_path: Path, identity: Identity) -> None:
    path = tmp_path / "s.sqlite3"
    Store(path, identity).close()
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    assert migrate(db) == SCHEMA_VERSION


def test_migrations_apply_in_order_and_only_once() -> None:
    db = sqlite3.connect(":memory:", isolation_level=None)
    steps = ("CREATE TABLE a (x INTEGER)", "ALTER TABLE a ADD COLUMN y INTEGER")
    assert migrate(db, steps[:1]) == 0
    assert migrate(db, steps) == 1
    assert migrate(db, steps) == 2
    assert [row[1] for row in db.execute("PRAGMA table_info(a)")] == ["x", "y"]


def test_failed_migration_leaves_previous_version() -> None:
    db = sqlite3.connect(":memory:", isolation_level=None)
    migrate(db, ("CREATE TABLE a (x INTEGER)",))
    with pytest.raises(sqlite3.OperationalError):
        migrate(db, ("CREATE TABLE a (x INTEGER)", "CREATE TABLE b (y); BROKEN SQL"))
    assert db.execute("PRAGMA user_version").fetchone() == (1,)
    assert db.execute("SELECT name FROM sqlite_master WHERE name = 'b'").fetchone() is None


def test_newer_schema_is_refused(tmp_path: Path, identity: Identity) -> None:
    path = tmp_path / "s.sqlite3"
    Store(path, identity).close()
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.commit()
    db.close()
    with pytest.raises(SchemaError, match="newer"):
        Store(path, identity)


def test_store_of_another_identity_is_refused(tmp_path: Path, identity: Identity) -> None:
    path = tmp_path / "s.sqlite3"
    Store(path, identity).close()
    with pytest.raises(StoreKeyError, match="another identity"):
        Store(path, Identity.generate())


def test_rooms_keep_join_order_and_seq_never_goes_back(store: Store) -> None:
    store.save_room(RoomRecord(ROOM, "alpha", "password", "", secret=b"k" * 32))
    store.save_room(RoomRecord(b"s" * 16, "beta", "open", "desc"))
    store.set_last_seq(ROOM, 7)
    store.set_last_seq(ROOM, 3)
    store.save_room(RoomRecord(ROOM, "alpha", "password", "new", secret=b"k" * 32))
    alpha, beta = store.rooms()
    assert (alpha.name, alpha.last_seq, alpha.description, alpha.secret) == (
        "alpha",
        7,
        "new",
        b"k" * 32,
    )
    assert (beta.name, beta.secret) == ("beta", None)
    store.delete_room(ROOM)
    assert [room.name for room in store.rooms()] == ["beta"]


def test_outbox_is_fifo_and_keeps_the_sealed_body(store: Store) -> None:
    first = store.enqueue(ROOM, b"one")
    second = store.enqueue(ROOM, b"two")
    store.set_outbox_body(first, b"body-1")
    items = store.outbox()
    assert [(i.id, i.payload, i.body) for i in items] == [
        (first, b"one", b"body-1"),
        (second, b"two", None),
    ]
    store.remove_outbox(first)
    assert [i.id for i in store.outbox()] == [second]


def test_history_dedupes_by_room_seq(store: Store) -> None:
    assert store.add_history(HistoryItem(ROOM, 1, b"a" * 32, 10, b"first"))
    assert not store.add_history(HistoryItem(ROOM, 1, b"a" * 32, 10, b"again"))
    for seq in range(2, 6):
        store.add_history(HistoryItem(ROOM, seq, b"a" * 32, 10, b"m%d" % seq))
    assert [(h.seq, h.payload) for h in store.history(ROOM, 3)] == [
        (3, b"m3"),
        (4, b"m4"),
        (5, b"m5"),
    ]
    assert store.history(ROOM, 10)[0].payload == b"first"


def test_crypto_state_is_atomic_and_scannable(store: Store) -> None:
    store.apply([Write("in", b"ab1", b"x"), Write("in", b"ab2", b"y"), Write("in", b"b", b"z")])
    assert store.scan("in", b"ab") == [(b"ab1", b"x"), (b"ab2", b"y")]
    assert store.keys("in", b"ab") == [b"ab1", b"ab2"]
    assert store.keys("in") == [b"ab1", b"ab2", b"b"]
    assert store.get("out", b"ab1") is None
    with pytest.raises(TypeError):
        store.apply([Write("in", b"ab1", None), Write("in", b"bad", object())])  # type: ignore[arg-type]
    assert store.get("in", b"ab1") == b"x"
    store.apply([Write("in", b"ab1", None)])
    assert store.get("in", b"ab1") is None


IDENTITY = Identity.generate()


@settings(max_examples=50, deadline=None)  # a store per example: its schema takes time
@given(st.sets(st.binary(max_size=4), max_size=12), st.binary(max_size=3))
def test_a_prefix_scan_finds_exactly_the_keys_that_start_with_it(
    keys: set[bytes], prefix: bytes
) -> None:
    """Scans ask SQLite for a key range (the primary key answers it): the range holds
    the keys that start with the prefix, 0x00 and 0xff bytes included, and no other."""
    store = Store(MEMORY, IDENTITY)
    store.apply([Write("in", key, b"v") for key in keys] + [Write("out", prefix, b"v")])
    expected = sorted(key for key in keys if key.startswith(prefix))
    assert store.keys("in", prefix) == expected
    assert store.scan("in", prefix) == [(key, b"v") for key in expected]


def test_nothing_secret_is_on_disk_in_clear(tmp_path: Path, identity: Identity) -> None:
    path = tmp_path / "s.sqlite3"
    store = Store(path, identity)
    store.save_room(RoomRecord(ROOM, "alpha", "password", "", secret=SECRET_TEXT))
    store.enqueue(ROOM, SECRET_TEXT)
    store.add_history(HistoryItem(ROOM, 1, b"a" * 32, 10, SECRET_TEXT))
    store.apply([Write("out", b"k", SECRET_TEXT)])
    store.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert b"alpha" in raw  # the file is readable; only the secrets are sealed
    assert SECRET_TEXT not in raw


def test_sealed_values_cannot_move_between_rows(tmp_path: Path, identity: Identity) -> None:
    path = tmp_path / "s.sqlite3"
    store = Store(path, identity)
    store.apply([Write("in", b"a", b"secret-a"), Write("in", b"b", b"secret-b")])
    store.close()
    db = sqlite3.connect(path)
    db.execute(
        "UPDATE state SET value = (SELECT value FROM state WHERE key = x'61') WHERE key = x'62'"
    )
    db.commit()
    db.close()
    with pytest.raises(StoreKeyError):
        Store(path, identity).get("in", b"b")


def test_sealer_repr_hides_the_key(store: Store) -> None:
    assert "redacted" in repr(store._sealer)


def test_a_store_is_open_in_one_process_at_a_time(tmp_path: Path, identity: Identity) -> None:
    path = tmp_path / "s.sqlite3"
    first = Store(path, identity)
    with pytest.raises(StoreLockedError, match="in use"):
        Store(path, identity)
    first.close()
    Store(path, identity).close()


def test_nothing_secret_is_in_the_files_while_the_store_is_open(
    tmp_path: Path, identity: Identity
) -> None:
    """The write-ahead log holds recent writes until a checkpoint: it is sealed too."""
    store = Store(tmp_path / "s.sqlite3", identity)
    store.save_room(RoomRecord(ROOM, "alpha", "password", "", secret=SECRET_TEXT))
    store.enqueue(ROOM, SECRET_TEXT)
    store.add_history(HistoryItem(ROOM, 1, b"a" * 32, 10, SECRET_TEXT))
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    store.close()
    assert b"alpha" in raw
    assert SECRET_TEXT not in raw


ME_ROOM = b"m" * 16
OTHER = b"o" * 32


def text(body: str, mentions: tuple[bytes, ...] = ()) -> bytes:
    return encode_payload(Text(body, mentions, 1))


def test_a_version_1_store_migrates_and_keeps_its_history(
    tmp_path: Path, identity: Identity
) -> None:
    path = tmp_path / "s.sqlite3"
    db = sqlite3.connect(path, isolation_level=None)
    migrate(db, MIGRATIONS[:1])
    db.close()
    store = Store(path, identity)
    store.save_room(RoomRecord(ROOM, "alpha", "open", ""))
    assert store.add_history(HistoryItem(ROOM, 1, OTHER, 10, b"old row"))  # no msg_id
    store.close()
    reopened = Store(path, identity)
    assert [(h.payload, h.msg_id, h.deleted) for h in reopened.history(ROOM, 5)] == [
        (b"old row", b"", False)
    ]


def test_messages_are_found_by_id_and_erased_without_a_trace(
    tmp_path: Path, identity: Identity
) -> None:
    path = tmp_path / "s.sqlite3"
    store = Store(path, identity)
    store.save_room(RoomRecord(ROOM, "alpha", "open", ""))
    msg_id = message_id(OTHER, b"c" * 16, 1)
    store.add_history(HistoryItem(ROOM, 1, OTHER, 10, SECRET_TEXT, msg_id))
    store.set_annotations(ROOM, msg_id, Annotations(deleted=False))
    found = store.history_item(ROOM, msg_id)
    assert found is not None
    assert (found.seq, found.payload) == (1, SECRET_TEXT)
    assert store.history_at(ROOM, 1) == found
    sealed = store._db.execute("SELECT payload FROM history").fetchone()[0]
    assert store.erase_message(ROOM, msg_id) == found
    assert store.erase_message(ROOM, msg_id) is None  # once
    erased = store.history_item(ROOM, msg_id)
    assert erased is not None
    assert (erased.payload, erased.deleted) == (b"", True)
    assert store.stored_seqs(ROOM, 0, 5) == {1}  # the seq stays processed
    assert store.history_page((b"", -1), 10) == []
    store.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert sealed not in raw  # secure_delete overwrote the old cell


def test_annotations_are_sealed(tmp_path: Path, identity: Identity) -> None:
    path = tmp_path / "s.sqlite3"
    store = Store(path, identity)
    msg_id = message_id(OTHER, b"c" * 16, 1)
    assert store.annotations(ROOM, msg_id) == Annotations()
    edited = Annotations(edits=(Version(5, msg_id, SECRET_TEXT.decode(), ()),))
    store.set_annotations(ROOM, msg_id, edited)
    assert store.annotations(ROOM, msg_id) == edited
    store.close()
    assert SECRET_TEXT not in b"".join(p.read_bytes() for p in tmp_path.iterdir())


def test_unread_and_mentions_count_arrivals_and_survive_restarts(
    tmp_path: Path, identity: Identity
) -> None:
    path = tmp_path / "s.sqlite3"
    store = Store(path, identity)
    me = identity.public_key
    store.save_room(RoomRecord(ROOM, "alpha", "open", ""))
    for seq in range(1, 4):
        store.add_history(
            HistoryItem(
                ROOM, seq, OTHER, 10, text("hi @me", (me,)), message_id(OTHER, b"c" * 16, seq)
            ),
            mentions_me=True,
        )
    store.add_history(HistoryItem(ROOM, 4, me, 10, text("mine")))  # own: never unread
    store.add_history(HistoryItem(ROOM, 5, OTHER, 10, text("plain")))
    assert store.read_state(ROOM) == ReadState(0, 4, 3)
    assert store.mark_read(ROOM, 2) == ReadState(2, 2, 1)
    assert store.mark_read(ROOM, 1) == ReadState(2, 2, 1)  # never backwards
    store.erase_message(ROOM, message_id(OTHER, b"c" * 16, 3))
    assert store.read_state(ROOM) == ReadState(2, 1, 0)
    store.close()
    assert Store(path, identity).read_state(ROOM) == ReadState(2, 1, 0)


def test_history_pages_before_and_after_a_seq(store: Store) -> None:
    for seq in range(1, 8):
        store.add_history(HistoryItem(ROOM, seq, OTHER, 10, b"m%d" % seq))
    assert [h.seq for h in store.history(ROOM, 2, before=5)] == [3, 4]
    assert [h.seq for h in store.history_after(ROOM, 5, 10)] == [5, 6, 7]


def test_direct_rooms_remember_their_peer(store: Store) -> None:
    store.save_room(RoomRecord(ROOM, "dm-x", "invite", "", secret=b"s" * 32, peer=OTHER))
    store.save_room(RoomRecord(ROOM, "dm-x", "invite", "", secret=b"s" * 32))
    assert store.rooms()[0].peer == OTHER


def test_a_savepoint_undoes_its_part_alone(store: Store) -> None:
    store.save_room(RoomRecord(ROOM, "ops", "open", ""))
    item = HistoryItem(ROOM, 1, b"s" * 32, 1, SECRET_TEXT)

    def failing_part() -> None:
        with store.savepoint():
            store.add_history(HistoryItem(ROOM, 2, b"s" * 32, 1, SECRET_TEXT))
            raise ValueError("part")

    with store.transaction():
        store.add_history(item)
        with pytest.raises(ValueError, match="part"):
            failing_part()
        with store.savepoint():
            store.add_history(HistoryItem(ROOM, 3, b"s" * 32, 1, SECRET_TEXT))
    assert [i.seq for i in store.history(ROOM, 10)] == [1, 3]
