"""The Store contract, run against every implementation: memory, SQLite and Redis."""

import asyncio
import dataclasses
import sqlite3
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path

import pytest
from e2echat_server.clock import now_ms
from e2echat_server.config import RelayConfig
from e2echat_server.store import (
    Envelope,
    LogMovedError,
    MemberRecord,
    MemoryStore,
    RedisStore,
    RoomDeletionRecord,
    RoomRecord,
    SqliteStore,
    Store,
    UserRecord,
)

ALICE, BOB = b"a" * 32, b"b" * 32
COMMIT_WINDOW_S = RelayConfig().commit_window_ms / 1000
WINDOW_UNDER_TEST = 0.2
ROOM = b"r" * 16


def user(key: bytes, name: str = "alice") -> UserRecord:
    return UserRecord(key, name, 1, b"p" * 32, b"s" * 64)


def room(room_id: bytes = ROOM, name: str = "lobby") -> RoomRecord:
    return RoomRecord(room_id, name, "", 10, True, "secret", b"v" * 32, b"s" * 16, 5)


def envelope(seq: int, ts: int = 0) -> Envelope:
    return Envelope(seq, ts, ALICE, f"body-{seq}".encode())


@pytest.fixture(params=["memory", "sqlite", "redis"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    opened: Store
    if request.param == "memory":
        opened = MemoryStore()
    elif request.param == "sqlite":  # with the relay's commit window, as the relay runs it
        opened = await SqliteStore.open(tmp_path, commit_window_s=COMMIT_WINDOW_S)
    else:
        opened = await RedisStore.open(request.getfixturevalue("redis_url"))
    yield opened
    await opened.close()


async def test_directory_round_trips_through_load(store: Store) -> None:
    await store.put_user(user(ALICE))
    await store.put_user(user(BOB, "bob"))
    await store.put_user(user(BOB, "robert"))
    await store.set_last_seen(BOB, 77)
    await store.create_room(room(), MemberRecord(ROOM, ALICE, 5))
    await store.add_member(MemberRecord(ROOM, BOB, 6), 0)
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


async def test_a_name_statement_is_kept_with_its_user(store: Store) -> None:
    """The signed name outlives the process: members listed after a restart carry it."""
    signed = dataclasses.replace(user(ALICE, "robert"), name_statement=b"\x01" + b"n" * 79)
    await store.put_user(signed)
    await store.put_user(user(BOB))
    await store.set_last_seen(ALICE, 9)
    by_key = {u.key: u for u in (await store.load()).users}
    assert by_key[ALICE].name_statement == signed.name_statement
    assert by_key[BOB].name_statement is None
    await store.put_user(user(ALICE, "alice"))  # a new name with no statement drops it
    assert [u.name_statement for u in (await store.load()).users if u.key == ALICE] == [None]


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


async def test_history_reads_in_order_across_where_the_kept_messages_wrap(store: Store) -> None:
    await store.create_room(room(), MemberRecord(ROOM, ALICE, 0))
    for seq in range(1, 14):  # 13 messages, 5 kept: 9..13, overwriting older ones in turn
        await store.append(ROOM, envelope(seq, ts=seq * 100), keep=5)
    assert [e.seq for e in await store.history(ROOM, 0, 0, 100)] == [9, 10, 11, 12, 13]
    assert [e.seq for e in await store.history(ROOM, 0, 0, 2)] == [9, 10]
    assert [e.seq for e in await store.history(ROOM, 9, 0, 3)] == [10, 11, 12]
    assert [e.seq for e in await store.history(ROOM, 12, 0, 100)] == [13]
    assert await store.history(ROOM, 13, 0, 100) == []
    assert [e.body for e in await store.history(ROOM, 10, 1200, 100)] == [b"body-12", b"body-13"]
    assert await store.retract(ROOM, 11, ALICE) == "removed"
    assert await store.retract(ROOM, 6, ALICE) == "absent"  # overwritten by 11 before
    assert await store.prune(1000) == 1  # 9; 10 is young enough and stops the walk
    assert [e.seq for e in await store.history(ROOM, 0, 0, 100)] == [10, 12, 13]
    assert await store.prune(1250) == 2  # across the wrap: 10, then 12
    assert [e.seq for e in await store.history(ROOM, 0, 0, 100)] == [13]
    assert (await store.load()).room_seqs == {ROOM: 13}


async def test_a_new_history_count_keeps_the_newest_messages(store: Store) -> None:
    await store.create_room(room(), MemberRecord(ROOM, ALICE, 0))
    for seq in range(1, 11):
        await store.append(ROOM, envelope(seq), keep=5)
    await store.append(ROOM, envelope(11), keep=3)  # a relay restarted with fewer kept
    assert [e.seq for e in await store.history(ROOM, 0, 0, 100)] == [9, 10, 11]
    for seq in range(12, 20):  # and then with more: the gap fills from new messages
        await store.append(ROOM, envelope(seq), keep=8)
    assert [e.seq for e in await store.history(ROOM, 0, 0, 100)] == list(range(12, 20))
    assert [e.seq for e in await store.history(ROOM, 14, 0, 2)] == [15, 16]


async def test_sqlite_keeps_no_message_older_than_the_newest_numbers(tmp_path: Path) -> None:
    """A number no message took (a write that failed keeps its seq) would leave its slot
    to the message ``keep`` before it: SQLite keeps the newest ``keep`` numbers' messages,
    nothing older, in history or on disk."""
    store = await SqliteStore.open(tmp_path)
    try:
        await store.create_room(room(), MemberRecord(ROOM, ALICE, 0))
        for seq in (1, 2, 3, 5, 6):  # 4 was taken by a write that failed
            await store.append(ROOM, envelope(seq), keep=3)
        assert [e.seq for e in await store.history(ROOM, 0, 0, 100)] == [5, 6]
        for seq in (7, 20):  # a long gap: every older message is past the newest 3
            await store.append(ROOM, envelope(seq), keep=3)
        assert [e.seq for e in await store.history(ROOM, 0, 0, 100)] == [20]
    finally:
        await store.close()
    db = sqlite3.connect(store.path)
    assert db.execute("SELECT seq FROM messages").fetchall() == [(20,)]
    db.close()


async def test_only_the_sender_retracts_a_stored_message(store: Store) -> None:
    await store.create_room(room(), MemberRecord(ROOM, ALICE, 0))
    for seq in range(1, 4):
        await store.append(ROOM, envelope(seq), keep=10)
    await store.append(ROOM, Envelope(4, 0, BOB, b"bob's"), keep=10)
    assert await store.retract(ROOM, 4, ALICE) == "foreign"
    assert await store.retract(ROOM, 2, ALICE) == "removed"
    assert await store.retract(ROOM, 2, ALICE) == "absent"
    assert await store.retract(ROOM, 9, ALICE) == "absent"
    assert await store.retract(ROOM, 4, BOB) == "removed"  # the newest: its number stays
    assert [e.seq for e in await store.history(ROOM, 0, 0, 100)] == [1, 3]
    assert (await store.load()).room_seqs == {ROOM: 4}


async def test_a_page_of_history_skips_every_expired_message(store: Store) -> None:
    await store.create_room(room(), MemberRecord(ROOM, ALICE, 0))
    for seq in range(1, 11):
        await store.append(ROOM, envelope(seq, ts=seq), keep=100)
    assert [e.seq for e in await store.history(ROOM, 0, 8, 2)] == [8, 9]  # 7 expired first
    assert [e.seq for e in await store.history(ROOM, 0, 11, 2)] == []


async def test_a_taken_room_name_is_refused_and_changes_nothing(store: Store) -> None:
    await store.create_room(room(), MemberRecord(ROOM, ALICE, 0))
    other = b"y" * 16
    with pytest.raises((ValueError, sqlite3.IntegrityError)):
        await store.create_room(room(other), MemberRecord(other, BOB, 1))
    snapshot = await store.load()
    assert (snapshot.rooms, snapshot.members) == ([room()], [MemberRecord(ROOM, ALICE, 0)])
    assert snapshot.room_seqs == {ROOM: 0}


async def test_leaving_keeps_the_room_until_the_last_member_drops_it(store: Store) -> None:
    await store.create_room(room(), MemberRecord(ROOM, ALICE, 0))
    await store.add_member(MemberRecord(ROOM, BOB, 1), 0)
    await store.append(ROOM, envelope(1), keep=5)
    await store.remove_member(ROOM, BOB, drop_room=False)
    assert [m.key for m in (await store.load()).members] == [ALICE]
    await store.remove_member(ROOM, ALICE, drop_room=True)
    snapshot = await store.load()
    assert (snapshot.rooms, snapshot.members, snapshot.room_seqs) == ([], [], {})
    assert await store.history(ROOM, 0, 0, 10) == []
    await store.create_room(room(b"x" * 16), MemberRecord(b"x" * 16, BOB, 2))  # name reusable


async def test_a_deleted_room_leaves_each_member_a_notice_until_it_expires(store: Store) -> None:
    """Times are near the real clock: Redis expires its notices by its own."""
    other, carol = b"o" * 16, b"c" * 32
    await store.create_room(room(), MemberRecord(ROOM, ALICE, 0))
    await store.add_member(MemberRecord(ROOM, BOB, 1), 0)
    await store.append(ROOM, envelope(1), keep=5)
    await store.log_append(ROOM, 0, b"create")
    await store.create_room(room(other, "other"), MemberRecord(other, ALICE, 0))
    now = now_ms()
    first = RoomDeletionRecord(ROOM, "Spam.", now, now + 60_000)
    await store.delete_room(ROOM, first, [ALICE, BOB])
    second = RoomDeletionRecord(other, "", now + 1, now + 60_001)
    await store.delete_room(other, second, [ALICE])
    snapshot = await store.load()
    assert (snapshot.rooms, snapshot.members, snapshot.room_seqs) == ([], [], {})
    assert await store.history(ROOM, 0, 0, 10) == []
    assert await store.log_entries(ROOM, 0, 10) == []
    assert await store.deletions(ALICE, now) == [first, second]  # oldest first
    assert await store.deletions(BOB, now + 59_999) == [first]
    assert await store.deletions(BOB, now + 60_000) == []  # expired: never told again
    assert await store.deletions(carol, now) == []
    assert await store.prune_deletions(now) == 0  # none expired yet
    assert await store.deletions(BOB, now) == [first]
    await store.create_room(room(b"x" * 16), MemberRecord(b"x" * 16, BOB, 2))  # name reusable
    again = RoomDeletionRecord(b"x" * 16, "Again.", now + 2, now + 60_002)
    await store.delete_room(b"x" * 16, again, [BOB])
    assert await store.deletions(BOB, now) == [first, again]


async def test_expired_deletion_notices_are_deleted(store: Store) -> None:
    now = now_ms()
    await store.create_room(room(), MemberRecord(ROOM, ALICE, 0))
    await store.add_member(MemberRecord(ROOM, BOB, 1), 0)
    old = RoomDeletionRecord(ROOM, "Old.", now - 2_000, now - 1_000)
    await store.delete_room(ROOM, old, [ALICE, BOB])
    other = b"o" * 16
    await store.create_room(room(other), MemberRecord(other, ALICE, 0))
    fresh = RoomDeletionRecord(other, "New.", now, now + 60_000)
    await store.delete_room(other, fresh, [ALICE])
    pruned = await store.prune_deletions(now)
    assert await store.deletions(ALICE, 0) == [fresh]
    if isinstance(store, RedisStore):  # a notice drops the expired ones, the hash expires
        assert pruned == 0
        assert await store.client.pexpiretime(store.keys.deletions(BOB)) == -2  # gone
        assert await store.client.pexpiretime(store.keys.deletions(ALICE)) == now + 60_000
    else:
        assert pruned == 2
    assert await store.deletions(BOB, 0) == []


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


async def test_forgotten_users_are_gone_with_their_mailbox_counter(store: Store) -> None:
    await store.put_user(user(ALICE))
    await store.put_user(user(BOB, "bob"))
    await store.mailbox_put(ALICE, envelope(4))
    await store.mailbox_ack(ALICE, 4)
    await store.forget_users([ALICE, b"x" * 32])  # an unknown key is ignored
    snapshot = await store.load()
    assert [u.key for u in snapshot.users] == [BOB]
    assert ALICE not in snapshot.mailbox_seqs
    await store.put_user(user(ALICE))  # new again: the mailbox numbering restarts
    assert (await store.load()).mailbox_seqs.get(ALICE, 0) == 0


async def test_forgotten_users_are_gone_with_their_deletion_notices(store: Store) -> None:
    now = now_ms()
    await store.put_user(user(ALICE))
    await store.put_user(user(BOB, "bob"))
    await store.create_room(room(), MemberRecord(ROOM, ALICE, 0))
    await store.add_member(MemberRecord(ROOM, BOB, 1), 0)
    deletion = RoomDeletionRecord(ROOM, "Spam.", now, now + 60_000)
    await store.delete_room(ROOM, deletion, [ALICE, BOB])
    await store.forget_users([ALICE])
    assert await store.deletions(ALICE, now) == []
    assert await store.deletions(BOB, now) == [deletion]


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


def modes(data_dir: Path) -> dict[str, int]:
    return {f.name: f.stat().st_mode & 0o777 for f in data_dir.glob("relay.sqlite3*")}


async def test_sqlite_files_are_for_the_relays_user_only(tmp_path: Path) -> None:
    """Who is in which room and when: the database and its WAL and shared-memory files
    are 0600, also a database made before under a looser umask."""
    (tmp_path / "relay.sqlite3").touch(mode=0o644)
    store = await SqliteStore.open(tmp_path, create=True)
    try:
        await store.put_user(user(ALICE))
        assert modes(tmp_path) == {
            "relay.sqlite3": 0o600,
            "relay.sqlite3-shm": 0o600,
            "relay.sqlite3-wal": 0o600,
        }
    finally:
        await store.close()


async def test_sqlite_failed_job_is_isolated_and_closed_store_refuses(tmp_path: Path) -> None:
    store = await SqliteStore.open(tmp_path)
    await store.create_room(room(), MemberRecord(ROOM, ALICE, 0))
    with pytest.raises(Exception, match="UNIQUE"):
        await store.create_room(room(b"y" * 16), MemberRecord(b"y" * 16, ALICE, 0))
    assert len((await store.load()).rooms) == 1
    await store.close()
    with pytest.raises(RuntimeError, match="closed"):
        await store.load()


async def test_a_connection_that_cannot_roll_back_fails_its_batch_and_is_replaced(
    tmp_path: Path,
) -> None:
    """A job that leaves the writer's connection unusable (here: closed, so even ROLLBACK
    fails) fails its own batch with its error; the writer opens a new connection and the
    next write commits, where the writer thread used to die and leave it waiting."""
    store = await SqliteStore.open(tmp_path)
    try:

        def breaks(db: sqlite3.Connection) -> None:
            db.close()
            raise sqlite3.OperationalError("disk I/O error")

        with pytest.raises(sqlite3.OperationalError, match="disk I/O error"):
            await asyncio.wait_for(store._submit(breaks), 10)
        await asyncio.wait_for(store.put_user(user(ALICE)), 10)
        assert [u.key for u in (await store.load()).users] == [ALICE]
    finally:
        await asyncio.wait_for(store.close(), 10)


async def test_writes_queued_together_apply_in_order_and_trim_each_room(store: Store) -> None:
    other = b"o" * 16
    await store.create_room(room(), MemberRecord(ROOM, ALICE, 0))
    await store.create_room(room(other, "other"), MemberRecord(other, ALICE, 0))
    writes: list[Awaitable[None]] = [
        store.append(ROOM if i % 2 else other, envelope(i // 2 + 1), keep=50) for i in range(200)
    ]  # one SqliteStore batch: several multi-row INSERTs, then the drop, then more rows
    writes.append(store.remove_member(other, ALICE, drop_room=True))
    writes += [store.append(ROOM, envelope(seq), keep=50) for seq in range(101, 111)]
    await asyncio.gather(*writes)
    history = await store.history(ROOM, 0, 0, 1000)
    assert [(e.seq, e.body) for e in history] == [(s, b"body-%d" % s) for s in range(61, 111)]
    assert await store.history(other, 0, 0, 1000) == []
    assert (await store.load()).room_seqs == {ROOM: 110}


async def test_writes_made_during_a_commit_share_the_next_one(tmp_path: Path) -> None:
    store = await SqliteStore.open(tmp_path, commit_window_s=WINDOW_UNDER_TEST)
    try:
        await store.create_room(room(), MemberRecord(ROOM, ALICE, 0))
        commits, started = store.commits, asyncio.get_running_loop().time()
        first = store.append(ROOM, envelope(1), keep=50)  # the writer is idle: at once
        await asyncio.sleep(0)  # one loop turn: handed over, not yet committed
        second = store.append(ROOM, envelope(2), keep=50)  # during the first's commit
        await first
        third = store.append(ROOM, envelope(3), keep=50)  # after it, inside the window
        await asyncio.gather(second, third)
        assert store.commits - commits == 2  # the first alone, then the other two together
        assert asyncio.get_running_loop().time() - started >= WINDOW_UNDER_TEST
        assert [e.seq for e in await store.history(ROOM, 0, 0, 10)] == [1, 2, 3]
    finally:
        await store.close()


async def test_a_write_to_an_idle_writer_does_not_wait_for_the_window(tmp_path: Path) -> None:
    store = await SqliteStore.open(tmp_path, commit_window_s=3600)
    try:
        await store.create_room(room(), MemberRecord(ROOM, ALICE, 0))
        for seq in range(1, 6):  # each awaited before the next: a client awaiting each answer
            await asyncio.wait_for(store.append(ROOM, envelope(seq), keep=50), 10)
    finally:
        await store.close()


async def test_closing_commits_writes_still_gathering(tmp_path: Path) -> None:
    store = await SqliteStore.open(tmp_path, commit_window_s=3600)
    await store.create_room(room(), MemberRecord(ROOM, ALICE, 0))
    first = store.append(ROOM, envelope(1), keep=50)
    await asyncio.sleep(0)
    gathering = store.append(ROOM, envelope(2), keep=50)  # waits for the window
    await store.close()
    await asyncio.wait_for(asyncio.gather(first, gathering), 10)
    reopened = await SqliteStore.open(tmp_path)
    try:
        assert [e.seq for e in await reopened.history(ROOM, 0, 0, 10)] == [1, 2]
    finally:
        await reopened.close()


async def test_a_request_does_not_wait_for_the_window_and_takes_gathered_rows_along(
    tmp_path: Path,
) -> None:
    store = await SqliteStore.open(tmp_path, commit_window_s=3600)
    try:
        await store.create_room(room(), MemberRecord(ROOM, ALICE, 0))
        first = store.append(ROOM, envelope(1), keep=50)  # the writer is idle: at once
        await asyncio.sleep(0)  # handed over, not yet committed
        gathering = store.append(ROOM, envelope(2), keep=50)  # would wait the hour
        history = await asyncio.wait_for(store.history(ROOM, 0, 0, 10), 10)
        assert [e.seq for e in history] == [1, 2]  # the row went in the request's batch
        await asyncio.wait_for(asyncio.gather(first, gathering), 10)
    finally:
        await store.close()


async def test_the_wal_is_checkpointed_by_its_own_thread(tmp_path: Path) -> None:
    store = await SqliteStore.open(tmp_path, checkpoint_every_s=0.01)
    try:
        before = store.path.stat().st_size
        await store.create_room(room(), MemberRecord(ROOM, ALICE, 0))
        await asyncio.gather(*(store.append(ROOM, envelope(s), keep=1000) for s in range(1, 301)))
        store.checkpointed.clear()
        assert await asyncio.to_thread(store.checkpointed.wait, 5)
        assert store.path.stat().st_size > before  # the committed rows reached the main file
        assert [e.seq for e in await store.history(ROOM, 298, 0, 10)] == [299, 300]
    finally:
        await store.close()


async def test_the_writer_bounds_the_wal_by_itself(tmp_path: Path) -> None:
    store = await SqliteStore.open(tmp_path, checkpoint_every_s=3600)  # checkpointer idle
    try:
        await store.create_room(room(), MemberRecord(ROOM, ALICE, 0))
        body = bytes(1000)
        for batch in range(10):  # ~10 MiB of WAL traffic in batches of 1,000 rows
            start = batch * 1000
            await asyncio.gather(
                *(
                    store.append(ROOM, Envelope(seq, 0, ALICE, body), keep=100_000)
                    for seq in range(start + 1, start + 1001)
                )
            )
        wal = store.path.with_name(store.path.name + "-wal")
        assert wal.stat().st_size < 8 * 2**20  # rewound after the writer's own checkpoint
    finally:
        await store.close()


async def test_log_appends_once_per_position_and_reads_in_order(store: Store) -> None:
    await store.create_room(room(), MemberRecord(ROOM, ALICE, 1))
    assert not await store.log_append(ROOM, 1, b"early")  # only at the head: no gap
    assert await store.log_append(ROOM, 0, b"create")
    assert not await store.log_append(ROOM, 0, b"rival")  # one entry per position, ever
    assert not await store.log_append(ROOM, 2, b"ahead")
    assert await store.log_append(ROOM, 1, b"join")
    assert await store.log_entries(ROOM, 0, 10) == [b"create", b"join"]
    assert await store.log_entries(ROOM, 1, 1) == [b"join"]
    await store.remove_member(ROOM, ALICE, drop_room=True)
    assert await store.log_entries(ROOM, 0, 10) == []


async def test_a_member_is_added_only_on_the_log_its_admission_was_decided_on(
    store: Store,
) -> None:
    await store.create_room(room(), MemberRecord(ROOM, ALICE, 1))
    await store.log_append(ROOM, 0, b"create")
    await store.log_append(ROOM, 1, b"kick")  # appended after the admission was decided
    for decided_on in (1, 3):
        with pytest.raises(LogMovedError):
            await store.add_member(MemberRecord(ROOM, BOB, 2), decided_on)
    assert [m.key for m in (await store.load()).members] == [ALICE]  # nothing written
    await store.add_member(MemberRecord(ROOM, BOB, 2), 2)
    assert {m.key for m in (await store.load()).members} == {ALICE, BOB}
