"""Safe start: one relay per data dir, and the database checked before it is used."""

import asyncio
import os
import sqlite3
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from e2echat_server.cli import EXIT_REFUSED, app
from e2echat_server.datadir import DataDirLock, StartRefusedError
from e2echat_server.store import (
    Envelope,
    MemberRecord,
    RoomDeletionRecord,
    RoomRecord,
    SqliteStore,
    UserRecord,
)
from e2echat_server.store.schema import APPLICATION_ID, CURRENT, MIGRATIONS

from tests.server.test_process import relay_process

ALICE = b"a" * 32
ROOM = b"r" * 16
# The first release's schema (version 0), verbatim: migrations must keep reading it.
V0_SCHEMA = """
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


def refused(tmp_path: Path, *flags: str) -> str:
    """Run the relay on ``tmp_path``; it must refuse with one line and EXIT_REFUSED."""
    result = CliRunner().invoke(app, ["--data-dir", str(tmp_path), "--port", "0", *flags])
    assert result.exit_code == EXIT_REFUSED, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output  # one line, no traceback
    return lines[0]


def v0_database(path: Path, users: int = 1, messages: int = 0) -> None:
    """A database as the first release wrote it: no application_id, user_version 0."""
    db = sqlite3.connect(path)
    db.executescript(V0_SCHEMA)
    for i in range(users):
        key = ALICE if i == 0 else i.to_bytes(32, "big")
        db.execute(
            "INSERT INTO users (key, name, prekey_id, prekey, prekey_sig) VALUES (?, ?, 1, ?, ?)",
            (key, f"user{i}", b"p" * 32, b"s" * 64),
        )
    db.execute(
        "INSERT INTO rooms (id, name, description, max_members, listed, access_kind, created)"
        " VALUES (?, 'lobby', '', 10, 1, 'open', 0)",
        (ROOM,),
    )
    db.execute("INSERT INTO members VALUES (?, ?, 0)", (ROOM, ALICE))
    for seq in range(1, messages + 1):
        body = b"MARK%06d" % seq + b"x" * 900
        db.execute("INSERT INTO messages VALUES (?, ?, 0, ?, ?)", (ROOM, seq, ALICE, body))
    db.commit()
    db.close()


async def test_a_second_store_on_the_same_data_dir_is_refused_naming_the_holder(
    tmp_path: Path,
) -> None:
    first = await SqliteStore.open(tmp_path)
    with pytest.raises(StartRefusedError, match=f"pid {os.getpid()}"):
        await SqliteStore.open(tmp_path)
    await first.close()
    second = await SqliteStore.open(tmp_path)  # released on close
    await second.close()


async def test_a_second_relay_process_exits_at_once_naming_the_first(tmp_path: Path) -> None:
    async with relay_process("--data-dir", str(tmp_path)) as (first, _):
        second = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "e2echat_server", "--port", "0", "--data-dir", str(tmp_path)),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(second.communicate(), 15)
        assert second.returncode == EXIT_REFUSED
        assert out == b""  # no URL: it never listened
        assert f"in use by another relay (pid {first.pid})" in err.decode()
        assert len(err.decode().strip().splitlines()) == 1
    # A killed holder leaves the lock file behind, but not the lock.
    async with relay_process("--data-dir", str(tmp_path)):
        pass


def test_a_lock_file_left_by_a_dead_relay_does_not_block(tmp_path: Path) -> None:
    (tmp_path / "relay.lock").write_text("999999\n")
    lock = DataDirLock.acquire(tmp_path)
    assert (tmp_path / "relay.lock").read_text() == f"{os.getpid()}\n"
    lock.release()


def test_an_empty_file_is_refused_unless_create_db(tmp_path: Path) -> None:
    (tmp_path / "relay.sqlite3").touch()
    assert "is empty" in refused(tmp_path)
    assert "--create-db" in refused(tmp_path)
    sqlite3.connect(tmp_path / "relay.sqlite3").execute("VACUUM").connection.close()
    assert "is empty" in refused(tmp_path)  # SQLite, but no tables: empty too


async def test_create_db_starts_an_empty_relay_on_an_empty_file(tmp_path: Path) -> None:
    (tmp_path / "relay.sqlite3").touch()
    store = await SqliteStore.open(tmp_path, create=True)
    assert (await store.load()).users == []
    await store.close()
    db = sqlite3.connect(tmp_path / "relay.sqlite3")
    assert db.execute("PRAGMA user_version").fetchone()[0] == CURRENT
    db.close()


def test_a_foreign_file_is_refused_even_with_create_db(tmp_path: Path) -> None:
    (tmp_path / "relay.sqlite3").write_text("my notes\n")
    assert "is not a SQLite database" in refused(tmp_path, "--create-db")
    (tmp_path / "relay.sqlite3").unlink()
    db = sqlite3.connect(tmp_path / "relay.sqlite3")
    db.execute("CREATE TABLE invoices (id INTEGER)")
    db.commit()
    db.close()
    assert "another application's" in refused(tmp_path, "--create-db", "--repair-db")
    db = sqlite3.connect(tmp_path / "relay.sqlite3")
    db.execute("PRAGMA application_id=42")
    db.commit()
    db.close()
    assert "another application's" in refused(tmp_path)
    assert (tmp_path / "relay.sqlite3").stat().st_size > 0  # untouched


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    v0_database(tmp_path / "relay.sqlite3")
    db = sqlite3.connect(tmp_path / "relay.sqlite3")
    db.execute(f"PRAGMA user_version={CURRENT + 1}")
    db.commit()
    db.close()
    assert f"newer relay (schema {CURRENT + 1}" in refused(tmp_path)


def corrupt_page_with(path: Path, marker: bytes) -> None:
    """Overwrite the page holding ``marker`` with garbage (a damaged disk, say)."""
    data = bytearray(path.read_bytes())
    page_size = int.from_bytes(data[16:18], "big")
    page = data.index(marker) // page_size
    data[page * page_size : (page + 1) * page_size] = b"\xa5" * page_size
    path.write_bytes(bytes(data))


def test_a_damaged_file_is_refused_and_repaired_only_on_request(tmp_path: Path) -> None:
    path = tmp_path / "relay.sqlite3"
    v0_database(path, users=50, messages=300)
    corrupt_page_with(path, b"MARK000150")
    assert "is damaged" in refused(tmp_path)
    assert "--repair-db" in refused(tmp_path)


async def test_repair_db_keeps_every_readable_row_and_the_damaged_file(tmp_path: Path) -> None:
    path = tmp_path / "relay.sqlite3"
    v0_database(path, users=50, messages=300)
    corrupt_page_with(path, b"MARK000150")
    store = await SqliteStore.open(tmp_path, repair=True)
    snapshot = await store.load()
    kept = await store.history(ROOM, 0, 0, 1000)
    await store.close()
    assert len(snapshot.users) == 50
    assert [r.name for r in snapshot.rooms] == ["lobby"]
    assert 0 < len(kept) < 300  # the rows before the damaged page
    assert [e.seq for e in kept] == list(range(1, len(kept) + 1))
    assert_repaired(tmp_path)


def assert_repaired(data_dir: Path) -> None:
    """The data dir holds a healthy database and, beside it, the damaged one."""
    (aside,) = data_dir.glob("relay.sqlite3.damaged-*")
    assert aside.stat().st_size > 0
    db = sqlite3.connect(data_dir / "relay.sqlite3")
    assert [row[0] for row in db.execute("PRAGMA quick_check")] == ["ok"]
    db.close()


def test_a_damage_that_sqlite_reports_on_several_lines_is_refused_with_one(
    tmp_path: Path,
) -> None:
    path = tmp_path / "relay.sqlite3"
    v0_database(path, users=50, messages=300)
    data = path.read_bytes()
    page_size = int.from_bytes(data[16:18], "big")
    for page in range(1, len(data) // page_size):  # an interior page whose header is garbage
        damaged = bytearray(data)
        damaged[page * page_size : page * page_size + 16] = b"\xa5" * 16
        path.write_bytes(bytes(damaged))
        db = sqlite3.connect(path)
        try:
            finding = db.execute("PRAGMA quick_check").fetchone()[0]
        except sqlite3.DatabaseError:
            continue
        finally:
            db.close()
        if "\n" in finding:
            break
    else:
        pytest.fail("no page whose damage quick_check reports on several lines")
    line = refused(tmp_path)
    assert "is damaged (*** in database main ***; Page " in line
    assert "--repair-db" in line


def test_a_truncated_file_is_refused_with_one_line(tmp_path: Path) -> None:
    path = tmp_path / "relay.sqlite3"
    v0_database(path, users=50, messages=300)
    with path.open("r+b") as file:
        file.truncate(path.stat().st_size // 2)
    assert "is damaged" in refused(tmp_path)


def test_repair_db_refuses_a_file_whose_tables_cannot_be_read(tmp_path: Path) -> None:
    # a truncated relay database often loses the pages of its schema (written last, by
    # the migrations): nothing can be copied, and an empty rebuild would drop every room
    path = tmp_path / "relay.sqlite3"
    v0_database(path, users=50, messages=300)
    data = bytearray(path.read_bytes())
    page_size = int.from_bytes(data[16:18], "big")
    data[100:page_size] = b"\xa5" * (page_size - 100)  # the schema's page, after the header
    path.write_bytes(bytes(data))
    line = refused(tmp_path, "--repair-db")
    assert "is damaged beyond repair" in line
    assert "restore it from a backup" in line
    assert path.read_bytes() == data  # left as it was, nothing beside it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["relay.lock", "relay.sqlite3"]


async def test_the_first_released_schema_is_migrated_with_its_data(tmp_path: Path) -> None:
    v0_database(tmp_path / "relay.sqlite3", users=3, messages=5)
    store = await SqliteStore.open(tmp_path)
    snapshot = await store.load()
    await store.put_user(UserRecord(b"n" * 32, "new", 1, b"p" * 32, b"s" * 64))
    await store.create_room(
        RoomRecord(b"q" * 16, "new", "", 5, True, "open", None, None, 0),
        MemberRecord(b"q" * 16, b"n" * 32, 0),
    )
    await store.close()
    assert len(snapshot.users) == 3
    assert snapshot.room_seqs == {ROOM: 5}
    db = sqlite3.connect(tmp_path / "relay.sqlite3")
    assert db.execute("PRAGMA user_version").fetchone()[0] == CURRENT
    assert db.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    db.close()
    reopened = await SqliteStore.open(tmp_path)  # migrated once: opens as current
    assert len((await reopened.load()).users) == 4
    await reopened.close()


async def test_a_new_database_is_created_at_the_current_schema(tmp_path: Path) -> None:
    store = await SqliteStore.open(tmp_path / "fresh")
    await store.close()
    db = sqlite3.connect(tmp_path / "fresh" / "relay.sqlite3")
    pragmas = [db.execute(f"PRAGMA {p}").fetchone()[0] for p in ("user_version", "application_id")]
    assert pragmas == [CURRENT, APPLICATION_ID]
    db.close()


async def test_a_version_1_file_gains_the_room_log(tmp_path: Path) -> None:
    v0_database(tmp_path / "relay.sqlite3")
    db = sqlite3.connect(tmp_path / "relay.sqlite3")
    db.execute(f"PRAGMA application_id={APPLICATION_ID}")
    db.execute("PRAGMA user_version=1")
    db.commit()
    db.close()
    store = await SqliteStore.open(tmp_path)
    assert await store.log_append(ROOM, 0, b"create")
    assert await store.log_entries(ROOM, 0, 5) == [b"create"]
    assert len((await store.load()).rooms) == 1
    await store.close()


async def test_a_version_3_file_gains_the_room_deletion_notices(tmp_path: Path) -> None:
    v0_database(tmp_path / "relay.sqlite3")  # user0 (ALICE) in the room "lobby"
    db = sqlite3.connect(tmp_path / "relay.sqlite3")  # as a relay of schema 3 left it
    for step in (1, 2, 3):
        MIGRATIONS[step](db)
    db.execute("PRAGMA user_version=3")
    db.commit()
    db.close()
    store = await SqliteStore.open(tmp_path)
    deletion = RoomDeletionRecord(ROOM, "Spam.", 1, 2)
    await store.delete_room(ROOM, deletion, [ALICE])
    assert await store.deletions(ALICE, 1) == [deletion]
    assert [u.name for u in (await store.load()).users] == ["user0"]
    await store.close()
    db = sqlite3.connect(tmp_path / "relay.sqlite3")
    assert db.execute("PRAGMA user_version").fetchone()[0] == CURRENT == 5
    db.close()


async def test_history_from_before_the_ring_is_read_then_laid_out_by_the_next_message(
    tmp_path: Path,
) -> None:
    v0_database(tmp_path / "relay.sqlite3", messages=12)  # kept under schema 4: seq = slot
    store = await SqliteStore.open(tmp_path)
    try:
        assert (await store.load()).room_seqs == {ROOM: 12}
        assert [e.seq for e in await store.history(ROOM, 0, 0, 100)] == list(range(1, 13))
        assert [e.seq for e in await store.history(ROOM, 10, 0, 100)] == [11, 12]
        await store.append(ROOM, Envelope(13, 0, ALICE, b"MARK000013"), keep=5)
        assert [e.seq for e in await store.history(ROOM, 0, 0, 100)] == [9, 10, 11, 12, 13]
        assert (await store.history(ROOM, 8, 0, 1))[0].body.startswith(b"MARK000009")
    finally:
        await store.close()
    db = sqlite3.connect(tmp_path / "relay.sqlite3")
    rows = db.execute("SELECT slot, seq FROM messages ORDER BY seq").fetchall()
    db.close()
    assert rows == [(seq % 5, seq) for seq in range(9, 14)]  # nothing older stays on disk
