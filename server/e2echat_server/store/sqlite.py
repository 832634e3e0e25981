"""The default Store: one SQLite file in WAL mode, written by one thread with group commit.

Why a dedicated thread rather than `asyncio.to_thread` per call: SQLite allows one writer,
so a single thread that drains every job queued since its last commit and commits them
together turns N fsync-bound commits into one, and keeps the event loop free. A job's
future resolves only after its batch has committed, so "returned" means "durable": WAL
with ``synchronous=NORMAL`` survives the relay being killed (SIGKILL); pass
``synchronous="FULL"`` to also survive the machine losing power, at some throughput.

Room messages, the hot path, are not closures but rows: the writer writes each run of
consecutive appends with one multi-row INSERT into the rooms' rings (a room's newest
``keep`` messages in ``keep`` slots, each overwriting the one ``keep`` before it, so
retention deletes nothing) and one UPDATE of the rooms' newest numbers.
Every statement releases and retakes the GIL, which the event loop thread holds most of
the time under load, so statements per batch (not per message) is what keeps the writer
from making the loop wait; ``append`` also returns the job's future itself, so a message
costs the loop no coroutine or task.

Under load the hand-over of room messages waits: while a batch is still being committed,
the messages appended meanwhile reach the writer one commit window (the relay's
``commit_window_ms``) after the previous hand-over instead of at the next loop turn.
That delays their answers by up to the window and lets a window's messages share one
transaction, one wake-up of the writer and of the loop, and one socket write per
connection for their replies (docs/benchmarks.md measures what that saves). A message
appended while nothing is in flight goes at once, so a client that waits for each answer
before its next is not held back. Any other job (a join, a history page, a mailbox
entry) never waits: it hands over at the next loop turn and takes the messages gathered
so far along. A join makes several store calls in turn, and each waiting out the window
made joins into a busy relay slower and their log appends conflict more often.

Checkpoints (copying the WAL into the main file, with fsyncs) run mostly on a second
thread with its own connection, PASSIVE, every 50 ms: done wholly on the writer they
stalled every commit queued behind them, which showed as the relay's p99 latency. A
PASSIVE checkpoint beside a busy writer never catches up with its last commit, though,
and SQLite only rewinds the WAL after a complete one, so the writer keeps SQLite's own
automatic checkpoint at 4,000 pages as the bound: by then the checkpointer has copied
nearly everything, so the writer's checkpoint is short, and the WAL stays near 4 MiB.
"""

import asyncio
import contextlib
import os
import queue
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final, TypeVar

from e2echat_server.datadir import DataDirLock
from e2echat_server.store import schema
from e2echat_server.store.base import (
    Envelope,
    LogMovedError,
    MemberRecord,
    Retraction,
    RoomDeletionRecord,
    RoomRecord,
    Snapshot,
    UserRecord,
)

_T = TypeVar("_T")
_MAX_BATCH: Final = 512
_ROWS_PER_INSERT: Final = 64  # 320 parameters per statement, far below SQLite's limit
CHECKPOINT_EVERY_S: Final = 0.05
_WAL_BACKSTOP_PAGES: Final = 4000
_ROOMS_PER_UPDATE: Final = 500  # 1,000 parameters per statement

# (work, future, isolated): work is a function of the connection, or a message row
# (room, seq, ts, sender, body, keep) to append. An isolated job runs in its own savepoint,
# so that its failure (a constraint) undoes only itself; the others need no savepoint,
# which saves statements on the hot path, and if one of them fails the batch fails whole.

_Row = tuple[bytes, int, int, bytes, bytes, int]
_Job = tuple[Callable[[sqlite3.Connection], Any] | _Row, asyncio.Future[Any], bool]


class StoreClosedError(RuntimeError):
    """A job was submitted after close()."""


class SqliteStore:
    """The Store interface over ``<data_dir>/relay.sqlite3``."""

    def __init__(
        self, path: Path, lock: DataDirLock | None = None, commit_window_s: float = 0.0
    ) -> None:
        """Use `SqliteStore.open`; this only prepares the fields."""
        self.path = path
        self._lock = lock
        self._jobs: queue.SimpleQueue[list[_Job] | None] = queue.SimpleQueue()
        self._pending: list[_Job] = []
        self._commit_window_s = commit_window_s
        self._unresolved = 0  # jobs handed to the writer whose batch has not resolved yet
        self._handed_over_at = 0.0
        self._hand_over_call: asyncio.Handle | None = None  # set while jobs are pending
        self._gathering = False  # that call waits out the commit window
        self.commits = 0  # transactions the writer has ended (monitoring, tests)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self._thread: threading.Thread | None = None
        self._checkpointer: threading.Thread | None = None
        self._stop_checkpoints = threading.Event()
        self.checkpointed = threading.Event()  # set after each checkpoint (monitoring, tests)
        # The writer thread's own: room -> [ring size, newest seq] as its transaction left
        # them, so an append reads nothing; emptied when a batch fails (rolled back).
        self._layouts: dict[bytes, list[int]] = {}

    @classmethod
    async def open(
        cls,
        data_dir: Path,
        synchronous: str = "NORMAL",
        checkpoint_every_s: float = CHECKPOINT_EVERY_S,
        *,
        create: bool = False,
        repair: bool = False,
        commit_window_s: float = 0.0,
    ) -> "SqliteStore":
        """Lock the data directory, check the file (see `schema.prepare`: ``create`` and
        ``repair`` allow what it otherwise refuses), create or migrate its schema, and
        start the writer and checkpointer. ``commit_window_s``: how long jobs submitted
        during a commit gather before the next (0: each loop turn's go at once).

        Raises StartRefusedError if the directory is locked or the file is refused, and
        OSError or sqlite3.Error if it cannot be used.
        """
        path = data_dir / "relay.sqlite3"
        lock = await asyncio.to_thread(DataDirLock.acquire, data_dir)
        try:
            await asyncio.to_thread(schema.prepare, path, create=create, repair=repair)
            db = await asyncio.to_thread(_connect, path, synchronous)
        except BaseException:
            lock.release()
            raise
        store = cls(path, lock, commit_window_s)
        store._loop = asyncio.get_running_loop()
        store._thread = threading.Thread(
            target=store._run, args=(db, synchronous), name="e2echat-store", daemon=True
        )
        store._thread.start()
        store._checkpointer = threading.Thread(
            target=store._checkpoint_forever,
            args=(synchronous, checkpoint_every_s),
            name="e2echat-checkpoint",
            daemon=True,
        )
        store._checkpointer.start()
        return store

    def _checkpoint_forever(self, synchronous: str, every_s: float) -> None:
        """Copy committed WAL frames into the main file, off the writer, until close()."""
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            db.execute(f"PRAGMA synchronous={synchronous}")
            while not self._stop_checkpoints.wait(every_s):
                with contextlib.suppress(sqlite3.Error):  # busy or failing: next round
                    db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                    self.checkpointed.set()
        finally:
            db.close()

    async def _submit(self, job: Callable[[sqlite3.Connection], _T], isolated: bool = False) -> _T:
        result: _T = await self._enqueue(job, isolated)
        return result

    def _enqueue(
        self, job: Callable[[sqlite3.Connection], Any] | _Row, isolated: bool = False
    ) -> asyncio.Future[Any]:
        """Queue a job for the writer; its future resolves once its batch has committed."""
        loop = self._loop or asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        if self._closed or self._loop is None:
            future.set_exception(StoreClosedError("the store is closed"))
            return future
        self._pending.append((job, future, isolated))
        # Only room messages wait out the window: a request (a join, a history page) is
        # one write among many, gains nothing from company, and takes the messages
        # gathered so far along at the next loop turn.
        is_row = isinstance(job, tuple)
        if self._hand_over_call is None:
            self._gathering = is_row and self._unresolved > 0 and self._commit_window_s > 0
            if self._gathering:
                at = self._handed_over_at + self._commit_window_s
                self._hand_over_call = loop.call_at(at, self._hand_over)
            else:
                self._hand_over_call = loop.call_soon(self._hand_over)
        elif self._gathering and not is_row:
            self._hand_over_call.cancel()
            self._gathering = False
            self._hand_over_call = loop.call_soon(self._hand_over)
        return future

    def _hand_over(self) -> None:
        """Pass every job submitted since the last hand-over to the writer at once.

        One wake-up of the writer thread per loop iteration (or per commit window while
        the writer is busy), not per job: the jobs of all connections served meanwhile
        share a transaction (group commit).
        """
        self._hand_over_call = None
        jobs, self._pending = self._pending, []
        if jobs:
            assert self._loop is not None
            self._unresolved += len(jobs)
            self._handed_over_at = self._loop.time()
            self._jobs.put(jobs)

    def _run(self, db: sqlite3.Connection, synchronous: str) -> None:
        try:
            while True:
                first = self._jobs.get()
                if first is None:
                    break
                batch = first
                stop = False
                while len(batch) < _MAX_BATCH:
                    try:
                        more = self._jobs.get_nowait()
                    except queue.Empty:
                        break
                    if more is None:
                        stop = True
                        break
                    batch += more
                if not self._run_batch(db, batch):
                    db = self._reopened(db, synchronous)
                if stop:
                    break
        finally:
            with contextlib.suppress(sqlite3.Error):  # a broken connection: nothing to copy
                db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            db.close()

    def _run_batch(self, db: sqlite3.Connection, batch: list[_Job]) -> bool:
        """Run every job in one transaction, in order; isolated ones in their own savepoint.

        Return False if the connection could not even undo a failed batch: its state is
        then unknown, and it must not take another job.
        """
        usable = True
        results: list[tuple[bool, Any]] = []
        rows: list[_Row] = []
        try:
            db.execute("BEGIN IMMEDIATE")
            for work, _, isolated in batch:
                if isinstance(work, tuple):
                    rows.append(work)
                    results.append((True, None))
                    continue
                if rows:  # earlier appends first: jobs apply in the order they were queued
                    self._append_rows(db, rows)
                    rows = []
                if not isolated:
                    results.append((True, work(db)))
                    continue
                db.execute("SAVEPOINT job")
                try:
                    results.append((True, work(db)))
                    db.execute("RELEASE job")
                except sqlite3.IntegrityError as exc:
                    db.execute("ROLLBACK TO job")
                    db.execute("RELEASE job")
                    results.append((False, exc))
            if rows:
                self._append_rows(db, rows)
            db.execute("COMMIT")
        except Exception as exc:  # the batch failed as a whole: nothing of it is durable
            results = [(False, exc)] * len(batch)
            self._layouts.clear()
            try:
                if db.in_transaction:
                    db.execute("ROLLBACK")
            except sqlite3.Error:
                usable = False
        self.commits += 1
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._resolve, [job[1] for job in batch], results)
        return usable

    def _reopened(self, db: sqlite3.Connection, synchronous: str) -> sqlite3.Connection:
        """A new connection in place of one that failed to roll back (closing it discards
        its transaction), so one fault fails its own batch instead of stopping the writer
        with every later job waiting forever. If the file cannot be opened now, the closed
        connection stays: the next batch fails at once with a clear error and tries again.
        """
        with contextlib.suppress(sqlite3.Error):
            db.close()
        try:
            return _connect(self.path, synchronous)
        except (OSError, sqlite3.Error):
            return db

    def _append_rows(self, db: sqlite3.Connection, rows: list[_Row]) -> None:
        """Write consecutive appends into their rooms' rings, with few statements.

        A room keeps its newest ``keep`` messages in ``keep`` slots (``seq % keep``): each
        message overwrites the one ``keep`` before it in place. Retention so costs no
        DELETE, and neither the table nor its index grows, where a DELETE per room per
        commit of its oldest rows doubled the writer's work per message once a room was
        full. A skipped number (a failed write keeps its seq) empties its slot, so every
        row stored is one of the room's newest ``keep``.
        """
        rings = {row[0]: row[5] for row in rows}  # a room's newest message decides its size
        for room, ring in rings.items():
            layout = self._layouts.get(room)
            if layout is None or layout[0] != ring:
                self._lay_out(db, room, ring)
        skipped: list[tuple[bytes, int]] = []
        for room, seq, *_ in rows:
            layout = self._layouts[room]
            ring, expected = layout[0], layout[1] + 1
            if seq > expected:
                skipped += ((room, s % ring) for s in range(max(expected, seq - ring), seq))
            layout[1] = max(layout[1], seq)
        if skipped:  # before the rows: a later row may take a slot emptied here
            db.executemany("DELETE FROM messages WHERE room = ? AND slot = ?", skipped)
        for start in range(0, len(rows), _ROWS_PER_INSERT):
            chunk = rows[start : start + _ROWS_PER_INSERT]
            params: list[object] = []
            for room, seq, ts, sender, body, _ in chunk:
                params += (room, seq % rings[room], seq, ts, sender, body)
            sql = _INSERT_FULL if len(chunk) == _ROWS_PER_INSERT else _insert_sql(len(chunk))
            db.execute(sql, params)
        seqs = [(room, self._layouts[room][1]) for room in rings]
        for start in range(0, len(seqs), _ROOMS_PER_UPDATE):
            part = seqs[start : start + _ROOMS_PER_UPDATE]
            db.execute(_seqs_sql(len(part)), [value for pair in part for value in pair])

    def _lay_out(self, db: sqlite3.Connection, room: bytes, keep: int) -> None:
        """Bring the room's ring to ``keep`` slots (rare: a new room, a new history_count,
        or rows from before schema 5), keeping its newest ``keep`` messages."""
        ring, latest = _stored_ring(db, room)
        if ring != keep:
            db.execute("DELETE FROM messages WHERE room = ? AND seq <= ?", (room, latest - keep))
            # two passes: no row takes a slot another still holds
            db.execute("UPDATE messages SET slot = -1 - seq WHERE room = ?", (room,))
            db.execute("UPDATE messages SET slot = seq % ? WHERE room = ?", (keep, room))
            db.execute("UPDATE rooms SET ring = ? WHERE id = ?", (keep, room))
        self._layouts[room] = [keep, latest]

    def _drop_room(self, db: sqlite3.Connection, room: bytes) -> None:
        """Delete a room with every member, its history and its membership log."""
        db.execute("DELETE FROM members WHERE room = ?", (room,))
        db.execute("DELETE FROM messages WHERE room = ?", (room,))
        db.execute("DELETE FROM room_log WHERE room = ?", (room,))
        db.execute("DELETE FROM rooms WHERE id = ?", (room,))
        self._layouts.pop(room, None)

    def _resolve(self, futures: list[asyncio.Future[Any]], results: list[tuple[bool, Any]]) -> None:
        self._unresolved -= len(futures)
        for future, (ok, value) in zip(futures, results, strict=True):
            if future.done():
                continue
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)

    async def load(self) -> Snapshot:
        def read(db: sqlite3.Connection) -> Snapshot:
            users = [
                UserRecord(*row)
                for row in db.execute(
                    "SELECT key, name, prekey_id, prekey, prekey_sig, last_seen, name_statement"
                    " FROM users"
                )
            ]
            rooms = [
                RoomRecord(r[0], r[1], r[2], r[3], bool(r[4]), r[5], r[6], r[7], r[8])
                for r in db.execute(
                    "SELECT id, name, description, max_members, listed, access_kind,"
                    " verifier, salt, created FROM rooms"
                )
            ]
            members = [
                MemberRecord(*row) for row in db.execute("SELECT room, key, joined FROM members")
            ]
            return Snapshot(
                users=users,
                rooms=rooms,
                members=members,
                room_seqs=dict(db.execute("SELECT id, seq FROM rooms")),
                mailbox_seqs=dict(db.execute("SELECT key, mailbox_seq FROM users")),
                mailbox_counts=dict(
                    db.execute("SELECT recipient, count(*) FROM mailbox GROUP BY recipient")
                ),
            )

        return await self._submit(read)

    async def put_user(self, user: UserRecord) -> None:
        await self._submit(
            lambda db: db.execute(
                "INSERT INTO users (key, name, prekey_id, prekey, prekey_sig, last_seen,"
                " name_statement) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO UPDATE SET"
                " name=excluded.name, prekey_id=excluded.prekey_id, prekey=excluded.prekey,"
                " prekey_sig=excluded.prekey_sig, last_seen=excluded.last_seen,"
                " name_statement=excluded.name_statement",
                (
                    user.key,
                    user.name,
                    user.prekey_id,
                    user.prekey,
                    user.prekey_sig,
                    user.last_seen,
                    user.name_statement,
                ),
            )
        )

    async def set_last_seen(self, key: bytes, ts: int) -> None:
        await self._submit(
            lambda db: db.execute("UPDATE users SET last_seen = ? WHERE key = ?", (ts, key))
        )

    async def create_room(self, room: RoomRecord, creator: MemberRecord) -> None:
        def write(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT INTO rooms (id, name, description, max_members, listed, access_kind,"
                " verifier, salt, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    room.id,
                    room.name,
                    room.description,
                    room.max_members,
                    int(room.listed),
                    room.access_kind,
                    room.verifier,
                    room.salt,
                    room.created,
                ),
            )
            db.execute(
                "INSERT INTO members (room, key, joined) VALUES (?, ?, ?)",
                (creator.room, creator.key, creator.joined),
            )

        await self._submit(write, isolated=True)

    async def add_member(self, member: MemberRecord, log_length: int) -> None:
        def write(db: sqlite3.Connection) -> bool:
            if not _log_has(db, member.room, log_length):
                return False
            db.execute(
                "INSERT OR REPLACE INTO members (room, key, joined) VALUES (?, ?, ?)",
                (member.room, member.key, member.joined),
            )
            return True

        if not await self._submit(write):
            raise LogMovedError("the room's membership log has another length")

    async def remove_member(self, room: bytes, key: bytes, drop_room: bool) -> None:
        def write(db: sqlite3.Connection) -> None:
            db.execute("DELETE FROM members WHERE room = ? AND key = ?", (room, key))
            if drop_room:
                self._drop_room(db, room)

        await self._submit(write)

    async def delete_room(
        self, room: bytes, deletion: RoomDeletionRecord, members: list[bytes]
    ) -> None:
        def write(db: sqlite3.Connection) -> None:
            self._drop_room(db, room)
            db.executemany(
                "INSERT OR REPLACE INTO room_deletions (recipient, room, reason, ts, expires)"
                " VALUES (?, ?, ?, ?, ?)",
                [(key, room, deletion.reason, deletion.ts, deletion.expires) for key in members],
            )

        await self._submit(write)

    async def deletions(self, key: bytes, now: int) -> list[RoomDeletionRecord]:
        query = (
            "SELECT room, reason, ts, expires FROM room_deletions"
            " WHERE recipient = ? AND expires > ? ORDER BY ts, room"
        )
        rows = await self._submit(lambda db: db.execute(query, (key, now)).fetchall())
        return [RoomDeletionRecord(*row) for row in rows]

    async def prune_deletions(self, now: int) -> int:
        return await self._submit(
            lambda db: db.execute("DELETE FROM room_deletions WHERE expires <= ?", (now,)).rowcount
        )

    def append(self, room: bytes, message: Envelope, keep: int) -> asyncio.Future[None]:
        return self._enqueue((room, message.seq, message.ts, message.sender, message.body, keep))

    async def history(self, room: bytes, after: int, not_before: int, limit: int) -> list[Envelope]:
        def read(db: sqlite3.Connection) -> list[Envelope]:
            found: list[Envelope] = []
            for condition, bound in _age_order(*_stored_ring(db, room)):  # oldest slots first
                found += (
                    Envelope(*row)
                    for row in db.execute(
                        "SELECT seq, ts, sender, body FROM messages WHERE room = ?"  # noqa: S608
                        f" AND {condition} AND seq > ? AND ts >= ? ORDER BY slot LIMIT ?",
                        (room, bound, after, not_before, limit - len(found)),
                    )
                )
                if len(found) == limit:
                    break
            return found

        return await self._submit(read)

    async def retract(self, room: bytes, seq: int, sender: bytes) -> Retraction:
        def write(db: sqlite3.Connection) -> Retraction:
            at = (room, _slot(seq, _stored_ring(db, room)[0]), seq)
            row = db.execute(
                "SELECT sender FROM messages WHERE room = ? AND slot = ? AND seq = ?", at
            ).fetchone()
            if row is None:
                return "absent"
            if row[0] != sender:
                return "foreign"
            # rooms.seq keeps the number even if this was the newest message
            db.execute("DELETE FROM messages WHERE room = ? AND slot = ? AND seq = ?", at)
            return "removed"

        return await self._submit(write)

    async def prune(self, not_before: int) -> int:
        def write(db: sqlite3.Connection) -> int:
            removed = 0
            for room, ring, latest in db.execute("SELECT id, ring, seq FROM rooms").fetchall():
                # ts never decreases along seq, so the first message young enough marks
                # the cut; found by walking the ring oldest first, which stops at it.
                for condition, bound in _age_order(ring, latest):
                    where = f"room = ? AND {condition}"
                    first = db.execute(
                        f"SELECT slot FROM messages WHERE {where} AND ts >= ?"  # noqa: S608
                        " ORDER BY slot LIMIT 1",
                        (room, bound, not_before),
                    ).fetchone()
                    if first is not None:
                        removed += db.execute(
                            f"DELETE FROM messages WHERE {where} AND slot < ?",  # noqa: S608
                            (room, bound, first[0]),
                        ).rowcount
                        break
                    removed += db.execute(
                        f"DELETE FROM messages WHERE {where}",  # noqa: S608
                        (room, bound),
                    ).rowcount
            return removed

        return await self._submit(write)

    async def mailbox_put(self, to: bytes, entry: Envelope) -> None:
        def write(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT INTO mailbox (recipient, seq, ts, sender, body) VALUES (?, ?, ?, ?, ?)",
                (to, entry.seq, entry.ts, entry.sender, entry.body),
            )
            db.execute("UPDATE users SET mailbox_seq = ? WHERE key = ?", (entry.seq, to))

        await self._submit(write)

    async def log_append(self, room: bytes, position: int, entry: bytes) -> bool:
        def write(db: sqlite3.Connection) -> bool:
            if not _log_has(db, room, position):
                return False
            db.execute(
                "INSERT INTO room_log (room, position, entry) VALUES (?, ?, ?)",
                (room, position, entry),
            )
            return True

        return await self._submit(write)

    async def log_entries(self, room: bytes, after: int, limit: int) -> list[bytes]:
        return await self._submit(
            lambda db: [
                row[0]
                for row in db.execute(
                    "SELECT entry FROM room_log WHERE room = ? AND position >= ?"
                    " ORDER BY position LIMIT ?",
                    (room, after, limit),
                )
            ]
        )

    async def latest_seq(self, room: bytes) -> None:
        """This relay is the only writer: its directory's count is exact."""

    async def mailbox(self, key: bytes, after: int, limit: int) -> list[Envelope]:
        return await self._submit(
            lambda db: [
                Envelope(*row)
                for row in db.execute(
                    "SELECT seq, ts, sender, body FROM mailbox WHERE recipient = ? AND seq > ?"
                    " ORDER BY seq LIMIT ?",
                    (key, after, limit),
                )
            ]
        )

    async def mailbox_ack(self, key: bytes, upto: int) -> int:
        return await self._submit(
            lambda db: (
                db.execute(
                    "DELETE FROM mailbox WHERE recipient = ? AND seq <= ?", (key, upto)
                ).rowcount
            )
        )

    async def forget_users(self, keys: list[bytes]) -> None:
        def write(db: sqlite3.Connection) -> None:
            rows = [(key,) for key in keys]
            db.executemany("DELETE FROM mailbox WHERE recipient = ?", rows)
            db.executemany("DELETE FROM room_deletions WHERE recipient = ?", rows)
            db.executemany("DELETE FROM users WHERE key = ?", rows)

        await self._submit(write)

    async def close(self) -> None:
        """Let queued writes commit, checkpoint the WAL into the main file, stop the thread."""
        if self._closed:
            return
        self._closed = True
        self._stop_checkpoints.set()
        if self._checkpointer is not None:
            await asyncio.to_thread(self._checkpointer.join)
        if self._hand_over_call is not None:
            self._hand_over_call.cancel()
        if self._pending:
            self._hand_over()
        self._jobs.put(None)
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join)
        if self._lock is not None:
            self._lock.release()


def _connect(path: Path, synchronous: str) -> sqlite3.Connection:
    if synchronous not in ("NORMAL", "FULL"):
        raise ValueError("synchronous must be NORMAL or FULL")
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    # Only the relay's user reads it (who is in which room, when): SQLite gives its WAL
    # and shared-memory files the database file's mode.
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    for part in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        with contextlib.suppress(FileNotFoundError):
            part.chmod(0o600)
    # Room for a prepared INSERT per run length (1..64 rows) beside the other statements.
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, cached_statements=256)
    # Small pages for a new file: each message lands in its room's own index page, so a
    # commit writes one page per room it touched; 1 KiB pages cut that WAL traffic (and
    # the writer's CPU per message by about a quarter). An existing file keeps its page
    # size. The checkpointer thread does most checkpointing; this bounds the WAL.
    db.execute("PRAGMA page_size=1024")
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(f"PRAGMA wal_autocheckpoint={_WAL_BACKSTOP_PAGES}")
    db.execute(f"PRAGMA synchronous={synchronous}")
    schema.initialise(db)
    return db


def _insert_sql(rows: int) -> str:
    """INSERT of ``rows`` rows: only placeholders are repeated, values are bound."""
    values = ",".join(["(?, ?, ?, ?, ?, ?)"] * rows)
    return (
        f"INSERT INTO messages (room, slot, seq, ts, sender, body) VALUES {values}"  # noqa: S608
        " ON CONFLICT (room, slot) DO UPDATE SET seq = excluded.seq, ts = excluded.ts,"
        " sender = excluded.sender, body = excluded.body WHERE excluded.seq > messages.seq"
    )


def _seqs_sql(rooms: int) -> str:
    """UPDATE of ``rooms`` rooms' newest numbers, one statement for a run of appends."""
    values = ",".join(["(?, ?)"] * rooms)
    return (
        f"UPDATE rooms SET seq = max(rooms.seq, v.column2) FROM (VALUES {values}) AS v"  # noqa: S608
        " WHERE rooms.id = v.column1"
    )


def _slot(seq: int, ring: int) -> int:
    """Where message ``seq`` lives in a room of ``ring`` slots (0: not laid out yet)."""
    return seq % ring if ring else seq


def _age_order(ring: int, latest: int) -> tuple[tuple[str, int], ...]:
    """The slot ranges of a room's ring, oldest message first, as (condition, bound)."""
    if not ring:
        return (("slot >= ?", 0),)
    start = (max(latest - ring, 0) + 1) % ring
    return (("slot >= ?", start), ("slot < ?", start))


def _stored_ring(db: sqlite3.Connection, room: bytes) -> tuple[int, int]:
    """The room's ring size and newest number, as stored (a room not stored: nothing)."""
    row = db.execute("SELECT ring, seq FROM rooms WHERE id = ?", (room,)).fetchone()
    return (row[0], row[1]) if row else (0, 0)


_INSERT_FULL: Final = _insert_sql(_ROWS_PER_INSERT)


def _log_has(db: sqlite3.Connection, room: bytes, length: int) -> bool:
    """Whether the room's membership log has exactly ``length`` entries (its positions are
    0..n-1: the last one stored and the next one free)."""
    rows = db.execute(
        "SELECT position FROM room_log WHERE room = ? AND position IN (?, ?)",
        (room, length - 1, length),
    ).fetchall()
    return rows == ([] if length == 0 else [(length - 1,)])
