"""The storage interface of the relay, and the records that cross it.

The relay keeps its live directory (users, rooms, members, counters) in memory and writes
through to a Store; it reads the Store back only at start-up (`load`) and for the two
things too big to keep in memory: room history and mailboxes. Every write method returns
only once the write is durable, so an acknowledgement sent after it can be trusted.

The interface is deliberately small and free of SQL so that a Redis/Valkey store (streams
for history and mailboxes, hashes and sets for the directory) can implement it as well.
"""

from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Literal, Protocol


class RoomExistsError(ValueError):
    """``create_room`` found the room's id or name taken (another relay won the race)."""


class LogMovedError(RuntimeError):
    """``add_member`` found the room's membership log longer than the join was decided
    against (another relay sharing the store appended a kick, a ban or a new secret)."""


@dataclass(frozen=True, slots=True)
class UserRecord:
    """A key the relay has seen authenticate, with its display name and latest prekey;
    ``name_statement`` is ``name`` signed by ``key`` (opaque here, checked on arrival),
    kept so that members listed after a restart still carry the signed name."""

    key: bytes
    name: str
    prekey_id: int
    prekey: bytes
    prekey_sig: bytes
    last_seen: int | None = None
    name_statement: bytes | None = None


@dataclass(frozen=True, slots=True)
class RoomRecord:
    """A room's settings. ``verifier`` is BLAKE2b of the join token (secret rooms only)."""

    id: bytes
    name: str
    description: str
    max_members: int
    listed: bool
    access_kind: Literal["open", "secret"]
    verifier: bytes | None
    salt: bytes | None
    created: int


@dataclass(frozen=True, slots=True)
class MemberRecord:
    room: bytes
    key: bytes
    joined: int


@dataclass(frozen=True, slots=True)
class Envelope:
    """One opaque body with the relay's sequence number, time (ms) and sender key."""

    seq: int
    ts: int
    sender: bytes
    body: bytes


@dataclass(frozen=True, slots=True)
class RoomDeletionRecord:
    """The operator deleted ``room`` at ``ts`` (ms) for ``reason``: a notice kept for each
    member it had, told after each of its ``welcome``s until ``expires`` (ms)."""

    room: bytes
    reason: str
    ts: int
    expires: int


Retraction = Literal["removed", "absent", "foreign"]
"""What `Store.retract` did: removed the body, found none at that seq, or found someone
else's (and removed nothing)."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything the relay keeps in memory, as of start-up."""

    users: list[UserRecord]
    rooms: list[RoomRecord]
    members: list[MemberRecord]
    room_seqs: dict[bytes, int]
    mailbox_seqs: dict[bytes, int]
    mailbox_counts: dict[bytes, int]


class Store(Protocol):
    """Durable state of one relay. Every write is durable once its awaitable completes."""

    async def load(self) -> Snapshot:
        """Read back the directory and counters (once, at start-up)."""
        ...

    async def put_user(self, user: UserRecord) -> None:
        """Insert or replace a user's name, prekey and last_seen."""
        ...

    async def set_last_seen(self, key: bytes, ts: int) -> None: ...

    async def create_room(self, room: RoomRecord, creator: MemberRecord) -> None:
        """Create a room with its first member, atomically; RoomExistsError if its id or
        name is taken (a shared store: another relay created it first), writing nothing."""
        ...

    async def add_member(self, member: MemberRecord, log_length: int) -> None:
        """Add a membership if the room's membership log still has ``log_length`` entries
        (the log the admission was decided against), atomically; LogMovedError, writing
        nothing, if it has another length."""
        ...

    async def remove_member(self, room: bytes, key: bytes, drop_room: bool) -> None:
        """Remove a membership; with ``drop_room`` also the room, every other member, its
        history and its membership log (the last member left, or the operator deleted it)."""
        ...

    async def delete_room(
        self, room: bytes, deletion: RoomDeletionRecord, members: list[bytes]
    ) -> None:
        """Drop the room as its last member's ``remove_member`` does (``members`` is every
        member it has, at least one) and keep ``deletion`` for each of them (replacing an
        older notice of the same room), as one write."""
        ...

    async def deletions(self, key: bytes, now: int) -> list[RoomDeletionRecord]:
        """``key``'s room deletion notices that expire after ``now`` (ms), oldest first."""
        ...

    async def prune_deletions(self, now: int) -> int:
        """Delete the deletion notices expired at ``now`` (ms); return how many (a store
        that expires them by itself answers 0)."""
        ...

    def append(self, room: bytes, message: Envelope, keep: int) -> Awaitable[Envelope | None]:
        """Store a message (its seq becomes the room's seq); keep only the last ``keep``.

        The answer is None if the message was stored as given. A store shared by several
        relays numbers messages itself, atomically: it answers the envelope as stored,
        whose seq (above every earlier one) and ts (never below an earlier one) may differ
        from the ones given, and hands the stored message to the other relays in the same
        write (each delivers it to its own connections), so the relay that appended
        delivers it to its own connections only (`Broker.to_room_stored`).

        The one hot write, so not necessarily a coroutine: a store may return a future
        (SqliteStore does) and spare the relay a task per message.
        """
        ...

    async def history(self, room: bytes, after: int, not_before: int, limit: int) -> list[Envelope]:
        """Up to ``limit`` messages with seq > ``after`` and ts >= ``not_before``, in order."""
        ...

    async def prune(self, not_before: int) -> int:
        """Delete room messages older than ``not_before`` (ms); return how many."""
        ...

    async def retract(self, room: bytes, seq: int, sender: bytes) -> Retraction:
        """Delete message ``seq`` of ``room`` if ``sender`` sent it (a sender's delete)."""
        ...

    async def mailbox_put(self, to: bytes, entry: Envelope) -> Envelope | None:
        """Queue a direct body for ``to`` (its seq becomes the mailbox's seq).

        None if stored as given; a shared store answers the entry as it numbered it.
        """
        ...

    async def log_append(self, room: bytes, position: int, entry: bytes) -> bool:
        """Store ``entry`` at ``position`` of the room's membership log if that is the
        log's head (its length), atomically; False, storing nothing, if another entry is
        there already (another append won: the caller re-reads the log) or the log is
        shorter."""
        ...

    async def log_entries(self, room: bytes, after: int, limit: int) -> list[bytes]:
        """Up to ``limit`` log entries of ``room`` from position ``after`` on, in order."""
        ...

    async def latest_seq(self, room: bytes) -> int | None:
        """The room's latest seq, if other relays may have numbered messages since this
        one loaded its directory (a shared store); None if the directory's count is exact."""
        ...

    async def mailbox(self, key: bytes, after: int, limit: int) -> list[Envelope]:
        """Up to ``limit`` queued entries for ``key`` with seq > ``after``, in order."""
        ...

    async def mailbox_ack(self, key: bytes, upto: int) -> int:
        """Delete ``key``'s entries with seq <= ``upto``; return how many were deleted."""
        ...

    async def forget_users(self, keys: list[bytes]) -> None:
        """Delete these users (record, mailbox counter, mailbox entries and room deletion
        notices), as if never seen.

        The caller passes only users that are in no room: memberships are not looked up
        (SQLite has no index on a member's key, and the relay knows this in memory).
        Keys the store does not hold are ignored.
        """
        ...

    async def close(self) -> None:
        """Finish pending writes and release the storage (checkpoint, close files)."""
        ...
