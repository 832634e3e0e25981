"""Migrations of sealed records: schema 1 -> 2, a store that kept TOFU per name comes
back with trust per key; 6 -> 7, messages waiting for their key are indexed by chain;
7 -> 8, rosters, log roles and chain holders move to rows per member."""

import sqlite3
from pathlib import Path

import msgspec
import pytest

from e2echat.crypto import CryptoSession, Identity
from e2echat.crypto.chain import OutboundChain
from e2echat.crypto.records import (
    CONTACTS,
    LOG,
    LOG_ROLES,
    OUTBOUND,
    OUTBOUND_SHARED,
    PENDING,
    RETAINED,
    RETAINED_SHARED,
    ROOM_MEMBERS,
    ROOMS,
    WAITING,
    MemberRecord,
    Records,
    RoomRecord,
    WaitingChain,
)
from e2echat.crypto.roomlog import LogState
from e2echat.crypto.upgrade import LEGACY_TRUST
from e2echat.store import SCHEMA_VERSION, Store, StoreKeyError, migrate
from e2echat.store.atrest import Sealer
from e2echat.store.schema import MIGRATIONS

ROOM = b"r" * 16
ALICE, CAROL, BOB = (bytes([n]) * 32 for n in (1, 2, 3))


def legacy_trust_key(relay: str, name: str) -> bytes:
    return relay.encode() + b"\x00" + name.encode()


def write_v1_store(path: Path, identity: Identity) -> None:
    """A store exactly as schema 1 wrote it: per-name TOFU rows, rosters with
    ``blocked``. Alice was verified under "alice"; Carol then came as "alice" too and
    was pending (blocked); Bob was verified under an old name on another relay."""
    db = sqlite3.connect(path, isolation_level=None)
    migrate(db, MIGRATIONS[:1])
    sealer = Sealer(identity)
    rows = {
        (LEGACY_TRUST, legacy_trust_key("wss://a", "alice")): {
            "key": ALICE,
            "verified": True,
            "pending": CAROL,
        },
        (LEGACY_TRUST, legacy_trust_key("wss://a", "bob")): {
            "key": BOB,
            "verified": False,
            "pending": None,
        },
        (LEGACY_TRUST, legacy_trust_key("wss://b", "bobby")): {
            "key": BOB,
            "verified": True,
            "pending": None,
        },
        (ROOMS, ROOM): {
            "room_id": ROOM,
            "join_key": None,
            "members": {
                ALICE: {"name": "alice", "prekey": None, "announced": True, "validated": True},
                CAROL: {
                    "name": "alice",
                    "prekey": None,
                    "announced": True,
                    "validated": True,
                    "blocked": True,
                },
            },
        },
    }
    for (space, key), record in rows.items():
        value = sealer.seal(msgspec.msgpack.encode(record), b"state", space.encode(), key)
        db.execute("INSERT INTO state (ns, key, value) VALUES (?, ?, ?)", (space, key, value))
    sealed_check = sealer.seal(b"e2echat store", b"e2echat/v1/store-check")
    db.execute("INSERT INTO meta (key, value) VALUES ('check', ?)", (sealed_check,))
    db.close()


def test_a_v1_store_migrates_to_trust_per_key(tmp_path: Path) -> None:
    identity = Identity.generate()
    path = tmp_path / "old.sqlite3"
    write_v1_store(path, identity)
    store = Store(path, identity)
    assert store.scan(LEGACY_TRUST) == []
    assert {key for key, _ in store.scan(CONTACTS)} == {ALICE, BOB, CAROL}
    session = CryptoSession(identity, store)
    assert session.validated_members(ROOM) == []  # the roster decodes, without "blocked"
    contacts = session.contacts
    found = {key: (c.name, c.verified) for key in (ALICE, BOB, CAROL) if (c := contacts.get(key))}
    assert found == {
        ALICE: ("alice", True),
        BOB: ("bobby", True),  # verified under any name is verified, by key
        CAROL: ("alice", False),  # once a "changed key" of alice: her own person now
    }
    store.close()
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    db.close()
    Store(path, identity).close()  # a second open migrates nothing and still opens


def test_a_migration_of_another_identitys_store_fails_and_changes_nothing(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.sqlite3"
    write_v1_store(path, Identity.generate())
    with pytest.raises(StoreKeyError):
        Store(path, Identity.generate())
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone() == (1,)
    assert db.execute("SELECT count(*) FROM state WHERE ns = ?", (LEGACY_TRUST,)).fetchone() == (3,)
    db.close()


def seal_rows(
    db: sqlite3.Connection, identity: Identity, rows: dict[tuple[str, bytes], object]
) -> None:
    sealer = Sealer(identity)
    for (space, key), record in rows.items():
        value = sealer.seal(msgspec.msgpack.encode(record), b"state", space.encode(), key)
        db.execute("INSERT INTO state (ns, key, value) VALUES (?, ?, ?)", (space, key, value))


def test_a_v6_store_indexes_its_waiting_messages_by_chain(tmp_path: Path) -> None:
    """Two chains wait: one whose messages were all reported, one with a message that
    was not. Each gets its record; the messages keep everything but their flag."""
    identity = Identity.generate()
    path = tmp_path / "v6.sqlite3"
    store = Store(path, identity)
    store.close()
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA user_version = 6")
    reported, fresh = ROOM + ALICE + b"c" * 16, ROOM + BOB + b"d" * 16
    waiting = {(reported, 1, 1000, True), (reported, 2, 900, True), (fresh, 5, 2000, True)}
    waiting.add((fresh, 6, 2500, False))
    seal_rows(
        db,
        identity,
        {
            (PENDING, chain + index.to_bytes(4, "big")): {
                "room_id": ROOM,
                "sender": chain[16:48],
                "chain_id": chain[48:],
                "index": index,
                "seq": index,
                "body": b"signed body",
                "received": received,
                "reported": was_reported,
            }
            for chain, index, received, was_reported in waiting
        },
    )
    db.close()
    store = Store(path, identity)
    chains = {
        key: msgspec.msgpack.decode(raw, type=WaitingChain) for key, raw in store.scan(WAITING)
    }
    assert chains == {
        reported: WaitingChain(since=900, count=2, reported=True),
        fresh: WaitingChain(since=2000, count=2, reported=False),
    }
    messages = [msgspec.msgpack.decode(raw) for _, raw in store.scan(PENDING)]
    assert [(m["index"], m["received"]) for m in messages] == [
        (1, 1000),
        (2, 900),
        (5, 2000),
        (6, 2500),
    ]
    assert all("reported" not in m and m["body"] == b"signed body" for m in messages)
    store.close()


def test_a_v7_store_keeps_rosters_roles_and_shares_as_rows(tmp_path: Path) -> None:
    """A v7 store held each room's roster, its log's roles and who holds each chain in
    one record each; they come back the same, each member's entry in a row of its own."""
    identity = Identity.generate()
    path = tmp_path / "v7.sqlite3"
    Store(path, identity).close()
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA user_version = 7")
    room = RoomRecord(ROOM, b"j" * 32, {ALICE: MemberRecord("alice", None, True, True)})
    log = LogState(ROOM, 2, b"h" * 32, 0, b"v" * 32, b"s" * 16, "", {ALICE: 2, BOB: 0})
    chain = OutboundChain(b"c" * 16, b"k" * 32, 3, b"i" * 32, 5, {ALICE: 0, CAROL: 2})
    records = {
        (ROOMS, ROOM): room,
        (LOG, ROOM): log,
        (OUTBOUND, ROOM): chain,
        (RETAINED, ROOM + b"d" * 16): chain,
    }
    seal_rows(db, identity, dict(records))  # encoded as v7 did: each dict inline
    db.close()
    store = Store(path, identity)
    fresh = Records(store)
    for (space, key), record in records.items():
        assert fresh.get(space, key, type(record)) == record
    assert [key for key, _ in store.scan(ROOM_MEMBERS)] == [ROOM + ALICE]
    assert [key for key, _ in store.scan(LOG_ROLES)] == [ROOM + ALICE, ROOM + BOB]
    assert len(store.scan(RETAINED_SHARED)) == len(store.scan(OUTBOUND_SHARED)) == 2
    inline = msgspec.msgpack.decode(store.get(ROOMS, ROOM) or b"")
    assert inline["members"] == {}
    store.close()
