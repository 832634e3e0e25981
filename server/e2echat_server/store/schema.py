"""The SQLite file's start-up checks and its versioned schema migrations.

A relay that starts on the wrong file does harm: an empty one makes every client drop
its rooms (the relay no longer lists them), a damaged one fails requests at random. So
before the store opens ``relay.sqlite3`` it is checked, and anything but a healthy file
of a schema this relay knows is refused with one line, unless the operator asks for it:

- missing: a new database is created (a first start just works);
- empty (0 bytes, or SQLite with no tables): refused, or recreated with ``create``;
- foreign (not SQLite, or another application's database): always refused;
- newer (a ``user_version`` above `CURRENT`): refused (this relay would misread it);
- damaged (``PRAGMA quick_check`` fails, or the file cannot be read): refused, or
  with ``repair`` rebuilt from every row still readable, the damaged file kept aside;
- older: migrated in one transaction, one version step at a time.

Schema versions: 0 is the first released layout (no version recorded); 1 stamps
``application_id`` and ``user_version``, so a foreign SQLite file is told from ours; 2
adds ``room_log`` (each room's signed membership-log entries, opaque to the relay); 3
adds ``users.name_statement`` (the user's signed name, opaque to the relay); 4 adds
``room_deletions`` (the notice, per member, of a room the operator deleted); 5 lays each
room's history out as a ring (``messages`` keyed by ``(room, slot)``, ``rooms.ring`` its
size, ``rooms.seq`` always the newest number; see `SAVE_ROOM_SEQS` and store/sqlite.py).
"""

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

from e2echat_server.datadir import StartRefusedError

APPLICATION_ID: Final = 0x65326563  # "e2ec"
CURRENT: Final = 5
TABLES: Final = ("users", "rooms", "members", "messages", "mailbox")
"""The tables of schema 0 (a file holding them all is ours)."""
COPIED: Final = (*TABLES, "room_log", "room_deletions")
"""Every table a rebuild copies."""
_HEADER: Final = b"SQLite format 3\x00"

SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS users (
    key BLOB PRIMARY KEY, name TEXT NOT NULL, prekey_id INTEGER NOT NULL,
    prekey BLOB NOT NULL, prekey_sig BLOB NOT NULL, last_seen INTEGER,
    mailbox_seq INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS rooms (
    id BLOB PRIMARY KEY, name TEXT NOT NULL UNIQUE, description TEXT NOT NULL,
    max_members INTEGER NOT NULL, listed INTEGER NOT NULL, access_kind TEXT NOT NULL,
    verifier BLOB, salt BLOB, created INTEGER NOT NULL, seq INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS members (
    room BLOB NOT NULL REFERENCES rooms(id), key BLOB NOT NULL, joined INTEGER NOT NULL,
    PRIMARY KEY (room, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS messages (
    room BLOB NOT NULL, seq INTEGER NOT NULL, ts INTEGER NOT NULL,
    sender BLOB NOT NULL, body BLOB NOT NULL, PRIMARY KEY (room, seq)
);
CREATE TABLE IF NOT EXISTS mailbox (
    recipient BLOB NOT NULL, seq INTEGER NOT NULL, ts INTEGER NOT NULL,
    sender BLOB NOT NULL, body BLOB NOT NULL, PRIMARY KEY (recipient, seq)
);
"""
ROOM_LOG: Final = """
CREATE TABLE IF NOT EXISTS room_log (
    room BLOB NOT NULL, position INTEGER NOT NULL, entry BLOB NOT NULL,
    PRIMARY KEY (room, position)
) WITHOUT ROWID
"""
ROOM_DELETIONS: Final = """
CREATE TABLE IF NOT EXISTS room_deletions (
    recipient BLOB NOT NULL, room BLOB NOT NULL, reason TEXT NOT NULL, ts INTEGER NOT NULL,
    expires INTEGER NOT NULL, PRIMARY KEY (recipient, room)
) WITHOUT ROWID
"""


MESSAGES_RING: Final = """
CREATE TABLE messages_ring (
    room BLOB NOT NULL, slot INTEGER NOT NULL, seq INTEGER NOT NULL, ts INTEGER NOT NULL,
    sender BLOB NOT NULL, body BLOB NOT NULL, PRIMARY KEY (room, slot)
)
"""
SAVE_ROOM_SEQS: Final = (
    "UPDATE rooms SET seq = max(seq, coalesce((SELECT max(m.seq) FROM messages m"
    " WHERE m.room = rooms.id), 0))"
)
"""Bring every ``rooms.seq`` up to its newest message (before schema 5 appends left it
behind); a scan of each room's rows, for migration and rebuild only."""


def _stamp_v1(db: sqlite3.Connection) -> None:
    db.execute(f"PRAGMA application_id={APPLICATION_ID}")


# MIGRATIONS[n] turns schema n - 1 into schema n.
def _room_log_v2(db: sqlite3.Connection) -> None:
    db.execute(ROOM_LOG)


def _name_statement_v3(db: sqlite3.Connection) -> None:
    db.execute("ALTER TABLE users ADD COLUMN name_statement BLOB")


def _room_deletions_v4(db: sqlite3.Connection) -> None:
    db.execute(ROOM_DELETIONS)


def _message_ring_v5(db: sqlite3.Connection) -> None:
    # ring 0: a room's slots are its sequence numbers, until its next append lays them out
    db.execute("ALTER TABLE rooms ADD COLUMN ring INTEGER NOT NULL DEFAULT 0")
    db.execute(SAVE_ROOM_SEQS)
    db.execute(MESSAGES_RING)
    db.execute("INSERT INTO messages_ring SELECT room, seq, seq, ts, sender, body FROM messages")
    db.execute("DROP TABLE messages")
    db.execute("ALTER TABLE messages_ring RENAME TO messages")


MIGRATIONS: Final[dict[int, Callable[[sqlite3.Connection], None]]] = {
    1: _stamp_v1,
    2: _room_log_v2,
    3: _name_statement_v3,
    4: _room_deletions_v4,
    5: _message_ring_v5,
}


def _refused(path: Path, problem: str, remedy: str) -> StartRefusedError:
    return StartRefusedError(f"{path} {problem}; {remedy}")


def prepare(path: Path, *, create: bool = False, repair: bool = False) -> None:
    """Check the database at ``path`` and bring it to `CURRENT`, or raise StartRefusedError.

    A missing file is left for the store to create (see `initialise`).
    """
    if not path.exists():
        return
    if path.stat().st_size == 0:
        _empty(path, create)
        return
    with path.open("rb") as file:
        if file.read(len(_HEADER)) != _HEADER:
            raise _refused(
                path,
                "is not a SQLite database",
                "move it away (this relay will not overwrite it) or use another --data-dir",
            )
    try:
        db = sqlite3.connect(path, isolation_level=None)
    except sqlite3.Error as exc:
        raise _damaged(path, exc) from None
    try:
        _check(path, db, create=create, repair=repair)
    except sqlite3.DatabaseError as exc:
        db.close()
        if not repair:
            raise _damaged(path, exc) from None
        rebuild(path)
        return
    db.close()


def _empty(path: Path, create: bool) -> None:
    if not create:
        raise _refused(
            path,
            "is empty",
            "if the relay's data was lost restore it from a backup (clients would drop"
            " every room), or pass --create-db to start an empty relay here",
        )
    for stale in (path, *_sidecars(path)):
        stale.unlink(missing_ok=True)


def _check(path: Path, db: sqlite3.Connection, *, create: bool, repair: bool) -> None:
    application_id = db.execute("PRAGMA application_id").fetchone()[0]
    version = db.execute("PRAGMA user_version").fetchone()[0]
    tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if application_id not in (0, APPLICATION_ID) or (
        application_id == 0 and tables and not set(TABLES) <= tables
    ):
        raise _refused(
            path,
            "is another application's SQLite database",
            "move it away (this relay will not touch it) or use another --data-dir",
        )
    if not tables:
        db.close()
        _empty(path, create)
        return
    if version > CURRENT:
        raise _refused(
            path,
            f"was written by a newer relay (schema {version}; this one knows up to {CURRENT})",
            "run that relay's version, or restore a backup made for this one",
        )
    problems = [row[0] for row in db.execute("PRAGMA quick_check")]
    if problems != ["ok"]:
        if not repair:
            raise _damaged(path, problems[0])
        db.close()
        rebuild(path)
        return
    migrate(db, version)


def _damaged(path: Path, detail: object) -> StartRefusedError:
    # quick_check's first finding may span lines ("*** in database main ***\nPage 9: ..."):
    # the refusal is one line, so its lines are joined
    said = "; ".join(line.strip() for line in str(detail).splitlines() if line.strip())
    return _refused(
        path,
        f"is damaged ({said[:120]})",
        "restore it from a backup, or pass --repair-db to keep every row still readable"
        " (the damaged file is kept beside it)",
    )


def migrate(db: sqlite3.Connection, version: int) -> None:
    """Apply every migration after ``version``, all in one transaction."""
    if version == CURRENT:
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        for step in range(version + 1, CURRENT + 1):
            MIGRATIONS[step](db)
        db.execute(f"PRAGMA user_version={CURRENT}")
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


def initialise(db: sqlite3.Connection) -> None:
    """Create the current schema in a new (or emptied) database; no-op on an existing one."""
    db.executescript(SCHEMA)
    if db.execute("PRAGMA user_version").fetchone()[0] == 0:
        for step in range(1, CURRENT + 1):
            MIGRATIONS[step](db)
        db.execute(f"PRAGMA user_version={CURRENT}")


def rebuild(path: Path) -> int:
    """Copy every readable row of ``path`` into a new database that replaces it; return
    the rows copied. The damaged file (and its WAL) is renamed ``.damaged-<time>``."""
    fresh = path.with_name(path.name + ".rebuilding")
    fresh.unlink(missing_ok=True)
    new = sqlite3.connect(fresh, isolation_level=None)
    copied = 0
    try:
        initialise(new)
        try:
            new.execute("ATTACH DATABASE ? AS old", (str(path),))
            new.execute("SELECT count(*) FROM old.sqlite_master").fetchone()
        except sqlite3.DatabaseError as exc:
            # no table can be found, so no row: a rebuild would be an empty relay
            raise _refused(
                path,
                f"is damaged beyond repair (its list of tables cannot be read: {exc})",
                "restore it from a backup; nothing was changed",
            ) from None
        for table in COPIED:
            copied += _copy_rows(new, table)
        new.execute(SAVE_ROOM_SEQS)
        new.execute("DETACH DATABASE old")
    except BaseException:
        new.close()
        fresh.unlink(missing_ok=True)
        raise
    new.close()
    aside = path.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%dT%H%M%S')}")
    for old in (path, *_sidecars(path)):
        if old.exists():
            old.rename(aside.with_name(aside.name + old.name.removeprefix(path.name)))
    fresh.rename(path)
    return copied


_STAND_INS: Final = {("messages", "slot"): "seq"}  # before schema 5: ring 0, slot = seq


def _copy_rows(db: sqlite3.Connection, table: str) -> int:
    """Copy ``old.table``'s readable rows, one by one, until the first unreadable page."""
    copied = 0
    try:
        columns = [row[1] for row in db.execute(f"PRAGMA old.table_info({table})")]
        wanted = [row[1] for row in db.execute(f"PRAGMA main.table_info({table})")]
        # a column the old file lacks takes its default, or what stood in for it there
        sources = {c: c if c in columns else _STAND_INS.get((table, c)) for c in wanted}
        shared = [c for c, source in sources.items() if source in columns]
        names, marks = ", ".join(shared), ", ".join("?" * len(shared))
        read = ", ".join(str(sources[c]) for c in shared)
        insert = f"INSERT OR IGNORE INTO main.{table} ({names}) VALUES ({marks})"  # noqa: S608
        for row in db.execute(f"SELECT {read} FROM old.{table}"):  # noqa: S608
            db.execute(insert, row)
            copied += 1
    except sqlite3.DatabaseError:
        pass  # the rest of this table is unreadable: keep what was read
    return copied


def _sidecars(path: Path) -> tuple[Path, Path]:
    return path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")
