"""The store's schema as a list of migrations; ``PRAGMA user_version`` records the version.

Migration ``n`` (1-based) takes a store from version ``n - 1`` to ``n``. A migration is
SQL, or a function of the open store's sealed state for changes to sealed records (which
SQL cannot read). A store newer than this code is refused rather than guessed at.
Migrations run in one transaction, so a crash mid-migration leaves the previous version
intact.
"""

import sqlite3
from collections.abc import Callable

from e2echat.crypto.store import CryptoStore
from e2echat.crypto.upgrade import index_waiting, parts_as_rows, trust_by_key

Migration = str | Callable[[CryptoStore], None]

MIGRATIONS: tuple[Migration, ...] = (
    # 1: rooms, outbox, history, and sealed key/value state for the crypto core.
    """
    CREATE TABLE meta (
        key TEXT PRIMARY KEY,
        value BLOB NOT NULL
    );
    CREATE TABLE rooms (
        id BLOB PRIMARY KEY,
        name TEXT NOT NULL,
        access TEXT NOT NULL CHECK (access IN ('open', 'password', 'invite')),
        description TEXT NOT NULL,
        secret BLOB,
        last_seq INTEGER NOT NULL DEFAULT 0,
        position INTEGER NOT NULL
    );
    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        uid BLOB NOT NULL UNIQUE,
        room_id BLOB NOT NULL,
        payload BLOB NOT NULL,
        body BLOB
    );
    CREATE TABLE history (
        room_id BLOB NOT NULL,
        seq INTEGER NOT NULL,
        sender BLOB NOT NULL,
        ts INTEGER NOT NULL,
        payload BLOB NOT NULL,
        PRIMARY KEY (room_id, seq)
    ) WITHOUT ROWID;
    CREATE TABLE state (
        ns TEXT NOT NULL,
        key BLOB NOT NULL,
        value BLOB NOT NULL,
        PRIMARY KEY (ns, key)
    ) WITHOUT ROWID;
    """,
    # 2: trust, verification and TOFU per key instead of per name (docs/crypto.md 9.6).
    trust_by_key,
    # 3: message ids, relations (edits, deletes, reactions), read state, direct rooms.
    """
    ALTER TABLE history ADD COLUMN msg_id BLOB;
    ALTER TABLE history ADD COLUMN deleted INTEGER NOT NULL DEFAULT 0;
    CREATE UNIQUE INDEX history_by_id ON history (room_id, msg_id);
    CREATE TABLE annotations (
        room_id BLOB NOT NULL,
        msg_id BLOB NOT NULL,
        value BLOB NOT NULL,
        PRIMARY KEY (room_id, msg_id)
    ) WITHOUT ROWID;
    ALTER TABLE rooms ADD COLUMN read_seq INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE rooms ADD COLUMN unread INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE rooms ADD COLUMN mentions INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE rooms ADD COLUMN peer BLOB
    """,
    # 4: rows that only mark a seq processed (an edit, a reaction): never listed.
    """
    ALTER TABLE history ADD COLUMN shown INTEGER NOT NULL DEFAULT 1
    """,
    # 5: direct envelopes (key shares, proofs, key requests) kept until the relay
    # confirms them, as durable as the messages that need them (docs/crypto.md 9.3).
    """
    CREATE TABLE directs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        recipient BLOB NOT NULL,
        body BLOB NOT NULL
    )
    """,
    # 6: relations that came before the message they name are kept for it; ``held``
    # orders those records (NULL once the message is stored) so the oldest go first.
    """
    ALTER TABLE annotations ADD COLUMN held INTEGER;
    CREATE INDEX annotations_held ON annotations (room_id, held) WHERE held IS NOT NULL
    """,
    # 7: messages waiting for their key are summed up per chain (crypto space
    # ``waiting``), so housekeeping reads no message that nothing is due for.
    index_waiting,
    # 8: a room's roster, its log's roles and who holds each of our chains are kept as
    # rows per member (crypto spaces ``member``, ``role``, ``shared``, ``keptshared``),
    # so a join writes that member's rows, not the room's whole roster.
    parts_as_rows,
)
SCHEMA_VERSION = len(MIGRATIONS)


class SchemaError(Exception):
    """The store file was written by a newer version of e2echat."""


def migrate(
    db: sqlite3.Connection,
    migrations: tuple[Migration, ...] = MIGRATIONS,
    state: CryptoStore | None = None,
) -> int:
    """Bring ``db`` to the latest version; return the version it was at before.

    ``state`` is the sealed state over ``db`` that function migrations change; a
    migration that needs it fails (and rolls back) without it.
    """
    (before,) = db.execute("PRAGMA user_version").fetchone()
    if before > len(migrations):
        raise SchemaError(
            f"this store has schema version {before}, newer than this e2echat supports"
            f" ({len(migrations)}): upgrade e2echat"
        )
    if before == len(migrations):
        return int(before)
    db.execute("BEGIN IMMEDIATE")
    try:
        for version in range(before, len(migrations)):
            step = migrations[version]
            if not isinstance(step, str):
                if state is None:
                    raise SchemaError(f"migration {version + 1} needs the store's sealed state")
                step(state)
                continue
            for statement in step.split(";"):
                if statement.strip():
                    db.execute(statement)
        db.execute(f"PRAGMA user_version = {len(migrations)}")
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return int(before)
