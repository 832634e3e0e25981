"""The client's SQLite store: one file per identity.

It holds room state (last seq per room), the outbox, message history and the crypto
core's state (prekeys, chains, rosters, TOFU keys) as sealed key/value rows. Secrets and
message bodies are sealed (``atrest``); what stays in clear is what the relay knows anyway
(room ids and names, seqs, sender keys, timestamps).

The store is synchronous and not thread-safe by design: the client drives it from one
worker thread, off the event loop, and every state change is one transaction.
"""

import contextlib
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from e2echat.crypto.errors import CryptoError
from e2echat.crypto.identity import Identity
from e2echat.crypto.payload import Text, decode_payload
from e2echat.crypto.primitives import random_bytes
from e2echat.crypto.store import Write
from e2echat.store.atrest import CHECK_LABEL, Sealer, StoreKeyError
from e2echat.store.relations import (
    MAX_HELD_PER_ROOM,
    NONE,
    Annotations,
    decode_annotations,
    encode_annotations,
)
from e2echat.store.schema import migrate

Access = Literal["open", "password", "invite"]
MEMORY = ":memory:"
LOCK_TIMEOUT_S = 1.0
_CHECK_VALUE = b"e2echat store"


class StoreLockedError(Exception):
    """Another process has this store open."""


@dataclass(frozen=True)
class RoomRecord:
    """A joined room as persisted. ``secret`` is the room secret of a secret room."""

    id: bytes
    name: str
    access: Access
    description: str
    secret: bytes | None = field(default=None, repr=False)
    last_seq: int = 0
    peer: bytes | None = None
    """The other member of a direct conversation (a two-member invite room)."""


@dataclass(frozen=True)
class ReadState:
    """Where the user stopped reading a room, and what arrived from others since."""

    read_seq: int = 0
    unread: int = 0
    mentions: int = 0


@dataclass(frozen=True)
class OutboxItem:
    """A message waiting to go out; ``body`` is set once it has been encrypted."""

    id: int
    room_id: bytes
    payload: bytes = field(repr=False)
    body: bytes | None = field(repr=False)


@dataclass(frozen=True)
class QueuedDirect:
    """A direct envelope waiting for the relay's confirmation. ``body`` is sealed to the
    recipient's prekey already, so it is stored as it will be sent."""

    id: int
    recipient: bytes
    body: bytes = field(repr=False)


@dataclass(frozen=True)
class HistoryItem:
    """A stored room message; ``payload`` is the decrypted room payload (JSON bytes).

    ``msg_id`` is its signed name (docs/crypto.md section 8.3); a ``deleted`` message
    keeps its row (so its seq stays processed) but not its payload (empty). A row that
    is not ``shown`` only records that its seq (an edit, a reaction) was processed."""

    room_id: bytes
    seq: int
    sender: bytes
    ts: int
    payload: bytes = field(repr=False)
    msg_id: bytes = b""
    deleted: bool = False
    shown: bool = True


def _context(item: HistoryItem) -> tuple[bytes, bytes]:
    """The sealing context of a history payload: its column and row."""
    return b"history", item.room_id + item.seq.to_bytes(8, "big")


class Store:
    """Typed access to one identity's store file (or an in-memory store for tests)."""

    def __init__(self, path: Path | str, identity: Identity) -> None:
        if str(path) != MEMORY:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(
            str(path), isolation_level=None, check_same_thread=False, timeout=LOCK_TIMEOUT_S
        )
        self._sealer = Sealer(identity)
        self._me = identity.public_key
        try:
            # One process per store: two clients on one identity's chains would reuse
            # message keys and diverge. The exclusive lock is held until close().
            self._db.execute("PRAGMA locking_mode = EXCLUSIVE")
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = NORMAL")
            # A deleted message's sealed text is overwritten, not left in free pages.
            self._db.execute("PRAGMA secure_delete = ON")
            migrate(self._db, state=self)
            self._check_owner()
        except sqlite3.OperationalError as exc:
            self._db.close()
            if "locked" in str(exc):
                raise StoreLockedError(
                    f"the store {path} is in use by another e2echat client"
                ) from None
            raise
        except BaseException:
            self._db.close()
            raise

    def _check_owner(self) -> None:
        row = self._db.execute("SELECT value FROM meta WHERE key = 'check'").fetchone()
        if row is None:
            sealed = self._sealer.seal(_CHECK_VALUE, CHECK_LABEL)
            self._db.execute("INSERT INTO meta (key, value) VALUES ('check', ?)", (sealed,))
        elif self._sealer.open(row[0], CHECK_LABEL) != _CHECK_VALUE:
            raise StoreKeyError("the store's check value is wrong")

    def own_name(self) -> str | None:
        """The display name this identity last used (remembered across connects)."""
        row = self._db.execute("SELECT value FROM meta WHERE key = 'name'").fetchone()
        return None if row is None else bytes(row[0]).decode()

    def set_own_name(self, name: str) -> None:
        """Remember our display name for the next connect (the relay knows it anyway)."""
        self._db.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('name', ?)", (name.encode(),)
        )

    def close(self) -> None:
        """Close the database file."""
        self._db.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Group writes into one atomic transaction (nests: only the outermost commits,
        and a migration's transaction is the outermost while it runs)."""
        if self._db.in_transaction:
            yield
            return
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    @contextlib.contextmanager
    def savepoint(self) -> Iterator[None]:
        """Inside a transaction, a part that is undone alone if it raises (the rest of
        the transaction stands); outside one, a transaction of its own."""
        if not self._db.in_transaction:
            with self.transaction():
                yield
            return
        self._db.execute("SAVEPOINT part")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK TO part")
            self._db.execute("RELEASE part")
            raise
        self._db.execute("RELEASE part")

    # Rooms -------------------------------------------------------------------------

    def save_room(self, room: RoomRecord) -> None:
        """Insert or update a room; a new room goes after the existing ones."""
        secret = None if room.secret is None else self._sealer.seal(room.secret, b"room", room.id)
        with self.transaction():
            self._db.execute(
                "INSERT INTO rooms"
                " (id, name, access, description, secret, last_seq, peer, position)"
                " VALUES (?, ?, ?, ?, ?, ?, ?,"
                " (SELECT coalesce(max(position), 0) + 1 FROM rooms))"
                " ON CONFLICT (id) DO UPDATE SET name = excluded.name,"
                " access = excluded.access, description = excluded.description,"
                " secret = excluded.secret, last_seq = max(last_seq, excluded.last_seq),"
                " peer = coalesce(excluded.peer, peer)",
                (
                    room.id,
                    room.name,
                    room.access,
                    room.description,
                    secret,
                    room.last_seq,
                    room.peer,
                ),
            )

    def rooms(self) -> list[RoomRecord]:
        """Every joined room, in the order they were joined."""
        rows = self._db.execute(
            "SELECT id, name, access, description, secret, last_seq, peer FROM rooms"
            " ORDER BY position"
        ).fetchall()
        return [
            RoomRecord(
                room_id,
                name,
                access,
                description,
                None if secret is None else self._sealer.open(secret, b"room", room_id),
                last_seq,
                peer,
            )
            for room_id, name, access, description, secret, last_seq, peer in rows
        ]

    def delete_room(self, room_id: bytes) -> None:
        """Forget a room we left: its state, outbox and history."""
        with self.transaction():
            self._db.execute("DELETE FROM rooms WHERE id = ?", (room_id,))
            self._db.execute("DELETE FROM outbox WHERE room_id = ?", (room_id,))
            self._db.execute("DELETE FROM history WHERE room_id = ?", (room_id,))
            self._db.execute("DELETE FROM annotations WHERE room_id = ?", (room_id,))

    def set_last_seq(self, room_id: bytes, seq: int) -> None:
        """Record that everything up to ``seq`` was processed (never moves backwards)."""
        self._db.execute(
            "UPDATE rooms SET last_seq = max(last_seq, ?) WHERE id = ?", (seq, room_id)
        )

    # Outbox ------------------------------------------------------------------------

    def enqueue(self, room_id: bytes, payload: bytes) -> int:
        """Queue a payload for ``room_id``; returns its outbox id (increasing)."""
        uid = random_bytes(16)
        sealed = self._sealer.seal(payload, b"outbox", uid)
        cursor = self._db.execute(
            "INSERT INTO outbox (uid, room_id, payload) VALUES (?, ?, ?)", (uid, room_id, sealed)
        )
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def set_outbox_body(self, item_id: int, body: bytes) -> None:
        """Record the encrypted body, so a resend after a lost reply sends the same bytes."""
        self._db.execute("UPDATE outbox SET body = ? WHERE id = ?", (body, item_id))

    def outbox(self, room_id: bytes | None = None) -> list[OutboxItem]:
        """Every queued message (of ``room_id`` only, if given), oldest first."""
        rows = self._db.execute(
            "SELECT id, uid, room_id, payload, body FROM outbox"
            " WHERE ?1 IS NULL OR room_id = ?1 ORDER BY id",
            (room_id,),
        ).fetchall()
        return [
            OutboxItem(item_id, room_id, self._sealer.open(payload, b"outbox", uid), body)
            for item_id, uid, room_id, payload, body in rows
        ]

    def outbox_item(self, item_id: int) -> OutboxItem | None:
        """One queued message, or None if it is no longer queued."""
        row = self._db.execute(
            "SELECT uid, room_id, payload, body FROM outbox WHERE id = ?", (item_id,)
        ).fetchone()
        if row is None:
            return None
        uid, room_id, payload, body = row
        return OutboxItem(item_id, room_id, self._sealer.open(payload, b"outbox", uid), body)

    def remove_outbox(self, item_id: int) -> None:
        """Drop a queued message once the relay confirmed it."""
        self._db.execute("DELETE FROM outbox WHERE id = ?", (item_id,))

    def queue_direct(self, recipient: bytes, body: bytes) -> int:
        """Keep a direct envelope until the relay confirms it; its id (increasing)."""
        cursor = self._db.execute(
            "INSERT INTO directs (recipient, body) VALUES (?, ?)", (recipient, body)
        )
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def directs(self) -> list[QueuedDirect]:
        """Every unconfirmed direct envelope, oldest first."""
        rows = self._db.execute("SELECT id, recipient, body FROM directs ORDER BY id").fetchall()
        return [QueuedDirect(item_id, recipient, body) for item_id, recipient, body in rows]

    def remove_direct(self, item_id: int) -> bool:
        """Drop a direct envelope the relay confirmed; False if it was not queued."""
        return self._db.execute("DELETE FROM directs WHERE id = ?", (item_id,)).rowcount > 0

    # History -----------------------------------------------------------------------

    def add_history(self, item: HistoryItem, *, mentions_me: bool = False) -> bool:
        """Store a message; False (and no change) if that room seq is already stored.

        A message from someone else past the read marker counts as unread (and as a
        mention if ``mentions_me``), so the counts include what arrived while away."""
        empty = item.deleted or not item.shown
        cursor = self._db.execute(
            "INSERT OR IGNORE INTO history"
            " (room_id, seq, sender, ts, payload, msg_id, deleted, shown)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                item.room_id,
                item.seq,
                item.sender,
                item.ts,
                b"" if empty else self._sealer.seal(item.payload, *_context(item)),
                item.msg_id or None,
                item.deleted,
                item.shown,
            ),
        )
        if cursor.rowcount != 1:
            return False
        if item.msg_id:  # relations that came first now belong to a stored message
            self._db.execute(
                "UPDATE annotations SET held = NULL"
                " WHERE room_id = ? AND msg_id = ? AND held IS NOT NULL",
                (item.room_id, item.msg_id),
            )
        if item.sender != self._me and not empty:
            self._db.execute(
                "UPDATE rooms SET unread = unread + 1, mentions = mentions + ?"
                " WHERE id = ? AND read_seq < ?",
                (int(mentions_me), item.room_id, item.seq),
            )
        return True

    def stored_seqs(self, room_id: bytes, low: int, high: int) -> set[int]:
        """The seqs from ``low`` to ``high`` of the room that are stored (processed
        before): one query for a whole batch of a catch-up."""
        rows = self._db.execute(
            "SELECT seq FROM history WHERE room_id = ? AND seq BETWEEN ? AND ?",
            (room_id, low, high),
        )
        return {seq for (seq,) in rows}

    def history(self, room_id: bytes, limit: int, before: int | None = None) -> list[HistoryItem]:
        """The last ``limit`` messages of a room (below seq ``before``), oldest first."""
        rows = self._db.execute(
            "SELECT seq, sender, ts, payload, msg_id, deleted FROM history"
            " WHERE room_id = ? AND seq < ? AND shown = 1"
            " ORDER BY seq DESC LIMIT ?",
            (room_id, 2**63 - 1 if before is None else before, limit),
        ).fetchall()
        return [self._item(room_id, row) for row in reversed(rows)]

    def history_after(self, room_id: bytes, seq: int, limit: int) -> list[HistoryItem]:
        """The first ``limit`` messages of a room from seq ``seq`` on, oldest first."""
        rows = self._db.execute(
            "SELECT seq, sender, ts, payload, msg_id, deleted FROM history"
            " WHERE room_id = ? AND seq >= ? AND shown = 1 ORDER BY seq LIMIT ?",
            (room_id, seq, limit),
        ).fetchall()
        return [self._item(room_id, row) for row in rows]

    def history_item(self, room_id: bytes, msg_id: bytes) -> HistoryItem | None:
        """The stored message named ``msg_id`` in ``room_id``, if any."""
        row = self._db.execute(
            "SELECT seq, sender, ts, payload, msg_id, deleted FROM history"
            " WHERE room_id = ? AND msg_id = ?",
            (room_id, msg_id),
        ).fetchone()
        return None if row is None else self._item(room_id, row)

    def history_at(self, room_id: bytes, seq: int) -> HistoryItem | None:
        """The stored message at ``seq`` of ``room_id``, if any."""
        row = self._db.execute(
            "SELECT seq, sender, ts, payload, msg_id, deleted FROM history"
            " WHERE room_id = ? AND seq = ? AND shown = 1",
            (room_id, seq),
        ).fetchone()
        return None if row is None else self._item(room_id, row)

    def history_page(self, after: tuple[bytes, int], limit: int) -> list[HistoryItem]:
        """Up to ``limit`` stored messages that were not deleted, after ``(room_id, seq)``
        in (room, seq) order: all of them, a page at a time (the search index)."""
        rows = self._db.execute(
            "SELECT room_id, seq, sender, ts, payload, msg_id, deleted FROM history"
            " WHERE (room_id, seq) > (?, ?) AND deleted = 0 AND shown = 1"
            " ORDER BY room_id, seq LIMIT ?",
            (*after, limit),
        ).fetchall()
        return [self._item(room_id, tuple(row)) for room_id, *row in rows]

    def erase_message(self, room_id: bytes, msg_id: bytes) -> HistoryItem | None:
        """Drop the text of a deleted message and its annotations' text; keep its row.

        Returns what was erased (None if it is not stored or already erased). An
        unread message leaves the unread (and mention) counts."""
        item = self.history_item(room_id, msg_id)
        if item is None or item.deleted:
            return None
        self._db.execute(
            "UPDATE history SET payload = x'', deleted = 1 WHERE room_id = ? AND msg_id = ?",
            (room_id, msg_id),
        )
        if item.sender != self._me:
            self._db.execute(
                "UPDATE rooms SET unread = max(unread - 1, 0),"
                " mentions = max(mentions - ?, 0) WHERE id = ? AND read_seq < ?",
                (int(self._mentions_me(item)), room_id, item.seq),
            )
        return item

    def _item(self, room_id: bytes, row: tuple[Any, ...]) -> HistoryItem:
        seq, sender, ts, payload, msg_id, deleted = row
        key = room_id + seq.to_bytes(8, "big")
        return HistoryItem(
            room_id,
            seq,
            sender,
            ts,
            b"" if deleted else self._sealer.open(payload, b"history", key),
            msg_id or b"",
            bool(deleted),
        )

    def _mentions_me(self, item: HistoryItem) -> bool:
        try:
            payload = decode_payload(item.payload)
        except CryptoError:
            return False
        return isinstance(payload, Text) and self._me in payload.mentions

    # Annotations (edits, reactions, deletes) ------------------------------------------

    def annotations(self, room_id: bytes, msg_id: bytes) -> Annotations:
        """What relations did to the message ``msg_id`` (nothing, if none named it)."""
        row = self._db.execute(
            "SELECT value FROM annotations WHERE room_id = ? AND msg_id = ?", (room_id, msg_id)
        ).fetchone()
        if row is None:
            return NONE
        return decode_annotations(self._sealer.open(row[0], b"annotations", room_id, msg_id))

    def set_annotations(self, room_id: bytes, msg_id: bytes, annotations: Annotations) -> None:
        """Replace the annotations of ``msg_id`` (sealed: edits and reactions are text).

        Those of a message not stored yet are held for it: at most ``MAX_HELD_PER_ROOM``
        per room, the least recently changed dropped first. A delete's marker is never
        dropped (it keeps a late copy of the message from being shown)."""
        sealed = self._sealer.seal(encode_annotations(annotations), b"annotations", room_id, msg_id)
        held = not annotations.deleted and self.history_item(room_id, msg_id) is None
        self._db.execute(
            "INSERT OR REPLACE INTO annotations (room_id, msg_id, value, held) VALUES (?, ?, ?,"
            " CASE WHEN ? THEN (SELECT coalesce(max(held), 0) + 1 FROM annotations"
            " WHERE room_id = ? AND held IS NOT NULL) END)",
            (room_id, msg_id, sealed, held, room_id),
        )
        if held:
            self._db.execute(
                "DELETE FROM annotations WHERE room_id = ? AND held <= ("
                "SELECT held FROM annotations WHERE room_id = ? AND held IS NOT NULL"
                " ORDER BY held DESC LIMIT 1 OFFSET ?)",
                (room_id, room_id, MAX_HELD_PER_ROOM),
            )

    # Read state --------------------------------------------------------------------

    def read_state(self, room_id: bytes) -> ReadState:
        """The read marker and unread counts of a room (zeros for an unknown room)."""
        row = self._db.execute(
            "SELECT read_seq, unread, mentions FROM rooms WHERE id = ?", (room_id,)
        ).fetchone()
        return ReadState() if row is None else ReadState(*row)

    def mark_read(self, room_id: bytes, seq: int) -> ReadState:
        """Move the read marker up to ``seq`` (never back) and recount what is after it."""
        self._db.execute(
            "UPDATE rooms SET read_seq = max(read_seq, ?) WHERE id = ?", (seq, room_id)
        )
        read_seq = self.read_state(room_id).read_seq
        after = self._db.execute(
            "SELECT seq, sender, ts, payload, msg_id, deleted FROM history"
            " WHERE room_id = ? AND seq > ? AND sender != ?"
            " AND deleted = 0 AND shown = 1",
            (room_id, read_seq, self._me),
        ).fetchall()
        items = [self._item(room_id, row) for row in after]
        mentions = sum(self._mentions_me(item) for item in items)
        self._db.execute(
            "UPDATE rooms SET unread = ?, mentions = ? WHERE id = ?",
            (len(items), mentions, room_id),
        )
        return ReadState(read_seq, len(items), mentions)

    # The crypto core's state: e2echat.crypto.CryptoStore ------------------------------

    def get(self, space: str, key: bytes) -> bytes | None:
        """The value at ``space``/``key``, or None."""
        row = self._db.execute(
            "SELECT value FROM state WHERE ns = ? AND key = ?", (space, key)
        ).fetchone()
        return None if row is None else self._sealer.open(row[0], b"state", space.encode(), key)

    def scan(self, space: str, prefix: bytes = b"") -> list[tuple[bytes, bytes]]:
        """Every ``(key, value)`` of ``space`` whose key starts with ``prefix``, by key."""
        label = space.encode()
        rows = self._state_rows(space, prefix, "key, value")
        return [(key, self._sealer.open(value, b"state", label, key)) for key, value in rows]

    def keys(self, space: str, prefix: bytes = b"") -> list[bytes]:
        """The keys of ``space`` that start with ``prefix``, by key (nothing unsealed)."""
        return [key for (key,) in self._state_rows(space, prefix, "key")]

    def _state_rows(self, space: str, prefix: bytes, columns: str) -> list[tuple[Any, ...]]:
        """The state rows of ``space`` whose key starts with ``prefix``, asked for as a
        key range the primary key answers (one chain's rows are found without reading
        every row of the space)."""
        above = _successor(prefix)
        query = _RANGE_QUERIES[columns, above is not None]
        args = (space, prefix) if above is None else (space, prefix, above)
        return self._db.execute(query, args).fetchall()

    def apply(self, writes: Sequence[Write]) -> None:
        """Apply every write (a None value deletes), atomically."""
        with self.transaction():
            for space, key, value in writes:
                if value is None:
                    self._db.execute("DELETE FROM state WHERE ns = ? AND key = ?", (space, key))
                else:
                    sealed = self._sealer.seal(value, b"state", space.encode(), key)
                    self._db.execute(
                        "INSERT OR REPLACE INTO state (ns, key, value) VALUES (?, ?, ?)",
                        (space, key, sealed),
                    )


_RANGE_QUERIES = {
    (columns, bounded): f"SELECT {columns} FROM state WHERE ns = ? AND key >= ?"  # noqa: S608
    + (" AND key < ?" if bounded else "")
    + " ORDER BY key"
    for columns in ("key", "key, value")
    for bounded in (False, True)
}
"""The queries of ``Store._state_rows``, fixed text (the columns and bounds are ours)."""


def _successor(prefix: bytes) -> bytes | None:
    """The smallest key above every key that starts with ``prefix`` (None: there is none,
    the prefix is empty or all 0xff)."""
    stripped = prefix.rstrip(b"\xff")
    if not stripped:
        return None
    return stripped[:-1] + bytes([stripped[-1] + 1])
