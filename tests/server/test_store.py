"""The Store contract, run against every implementation (a Redis store must pass it too)."""

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from e2echat_server.store import (
    Envelope,
    MemberRecord,
    MemoryStore,
    RoomRecord,
    SqliteStore,
    Store,
    UserRecord,
)

ALICE, BOB = b"a" * 32, b"b" * 32
ROOM = b"r" * 16


def user(key: bytes, name: str = "alice") -> UserRecord:
    return UserRecord(key, name, 1, b"p" * 32, b"s" * 64)


def room(room_id: bytes = ROOM, name: str = "lobby") -> RoomRecord:
    return RoomRecord(room_id, name, "", 10, True, "secret", b"v" * 32, b"s" * 16, 5)


def envelope(seq: int, ts: int = 0) -> Envelope:
    return Envelope(seq, ts, ALICE, f"body-{seq}".encode())


@pytest.fixture(params=["memory", "sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    opened: Store = MemoryStore() if request.param == "memory" else await SqliteStore.open(tmp_path)
    yield opened
    await opened.close()


async def test_directory_round_trips_through_load(store: Store) -> None:
    await store.put_user(user(ALICE))
    await store.put_user(user(BOB, "bob"))
    await store.put_user(user(BOB, "robert"))
    await store.set_last_seen(BOB, 77)
    await store.create_room(room(), MemberRecord(ROOM, ALICE, 5))
    await store.add_member(MemberRecord(ROOM, BOB, 6))
    await store.append(ROOM, envelope(1), keep=10)
    await store.mailbox_put(BOB, envelope(3))
    snapshot = await store.load()
    assert sorted(u.name for u in snapshot.users) == ["alice", "robert"]
    assert next(u for u in snapshot.users if u.key == BOB).last_seen == 77
    assert snapshot.rooms == [room()]
    assert sorted(snapshot.members, key=lambda m: m.joined) == [
        MemberRecord(ROOM, ALICE, 5),
        MemberRecord(ROOM, BOB, 6),
    ]
    assert snapshot.room_seqs == {ROOM: 1}
    assert snapshot.mailbox_seqs[BOB] == 3
    assert snapshot.mailbox_counts == {BOB: 1}


async def test_history_is_ordered_bounded_by_count_and_filtered_by_age(store: Store) -> None:
    await store.create_room(room(), MemberRecord(ROOM, ALICE, 0))
    for seq in range(1, 8):
        await store.append(ROOM, envelope(seq, ts=seq * 100), keep=5)
    assert [e.seq for e in await store.history(ROOM, 0, 0, 100)] == [3, 4, 5, 6, 7]
    assert [e.seq for e in await store.history(ROOM, 4, 0, 2)] == [5, 6]
    assert [e.seq for e in await store.history(ROOM, 0, 600, 100)] == [6, 7]
    assert await store.prune(500) == 2
    assert [e.seq for e in await store.history(ROOM, 0, 0, 100)] == [5, 6, 7]
    assert (await store.load()).room_seqs == {ROOM: 7}
    assert await store.prune(10**12) == 3  # everything expired: the number survives
    assert await store.history(ROOM, 0, 0, 100) == []
    assert (await store.load()).room_seqs == {ROOM: 7}


async def test_leaving_keeps_the_room_until_the_last_member_drops_it(store: Store) -> None:
    await store.create_room(room(), MemberRecord(ROOM, ALICE, 0))
    await store.add_member(MemberRecord(ROOM, BOB, 1))
    await store.append(ROOM, envelope(1), keep=5)
    await store.remove_member(ROOM, BOB, drop_room=False)
    assert [m.key for m in (await store.load()).members] == [ALICE]
    await store.remove_member(ROOM, ALICE, drop_room=True)
    snapshot = await store.load()
    assert (snapshot.rooms, snapshot.members, snapshot.room_seqs) == ([], [], {})
    assert await store.history(ROOM, 0, 0, 10) == []
    await store.create_room(room(b"x" * 16), MemberRecord(b"x" * 16, BOB, 2))  # name reusable


async def test_mailbox_pages_and_acks(store: Store) -> None:
    await store.put_user(user(BOB, "bob"))
    for seq in range(1, 6):
        await store.mailbox_put(BOB, envelope(seq))
    assert [e.seq for e in await store.mailbox(BOB, 0, 2)] == [1, 2]
    assert [e.seq for e in await store.mailbox(BOB, 2, 10)] == [3, 4, 5]
    assert await store.mailbox_ack(BOB, 3) == 3
    assert await store.mailbox_ack(BOB, 3) == 0
    assert [e.body for e in await store.mailbox(BOB, 0, 10)] == [b"body-4", b"body-5"]
    assert (await store.load()).mailbox_counts == {BOB: 2}
    assert await store.mailbox(ALICE, 0, 10) == []


async def test_sqlite_state_survives_reopening(tmp_path: Path) -> None:
    first = await SqliteStore.open(tmp_path)
    await first.put_user(user(ALICE))
    await first.create_room(room(), MemberRecord(ROOM, ALICE, 0))
    await first.append(ROOM, envelope(1), keep=5)
    await first.close()
    await first.close()  # idempotent
    second = await SqliteStore.open(tmp_path)
    try:
        assert (await second.load()).room_seqs == {ROOM: 1}
        assert [e.body for e in await second.history(ROOM, 0, 0, 5)] == [b"body-1"]
    finally:
        await second.close()


async def test_sqlite_failed_job_is_isolated_and_closed_store_refuses(tmp_path: Path) -> None:
    store = await SqliteStore.open(tmp_path)
    await store.create_room(room(), MemberRecord(ROOM, ALICE, 0))
    with pytest.raises(Exception, match="UNIQUE"):
        await store.create_room(room(b"y" * 16), MemberRecord(b"y" * 16, ALICE, 0))
    assert len((await store.load()).rooms) == 1
    await store.close()
    with pytest.raises(RuntimeError, match="closed"):
        await store.load()
