"""The relay's live directory: users, rooms, memberships, sequence counters. Pure.

Every request is decided here, synchronously, so that a check and the change it guards
happen in one step of the event loop (no other request can slip in between). Refusals
raise ProtocolError and change nothing. An operation that must outlive the process
returns a `Change`: the store write that makes it durable and its undo, which the shell
runs (`Engine.apply`) without knowing what the change was.
"""

import hmac
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from heapq import nlargest
from typing import Any, Literal, cast

import msgspec
from nacl.encoding import RawEncoder
from nacl.hash import blake2b

from e2echat.protocol import (
    CreateRoom,
    ErrorCode,
    JoinRoom,
    Presence,
    ProtocolError,
    RoomInfo,
    RoomSummary,
    RosterEntry,
    SecretAccess,
    SignedPrekey,
)
from e2echat.protocol.constants import BANNED_FROM_ROOM, MAX_LIST_ITEMS
from e2echat.protocol.roomlog import (
    EMPTY_HEAD,
    LogEntry,
    LogError,
    LogState,
    apply_entry,
    parse_entry,
)
from e2echat_server.change import Change
from e2echat_server.ratelimit import TokenBucket
from e2echat_server.store import (
    Envelope,
    MemberRecord,
    RoomDeletionRecord,
    RoomRecord,
    Snapshot,
    Store,
    UserRecord,
)

PresenceStatus = Literal["online", "away", "busy", "offline"]
OFFLINE: PresenceStatus = "offline"
# A presence change (a status frame, or going online or offline) is broadcast to everyone
# sharing a room (up to rooms x members connections): cheap for the sender, not for the
# relay, so each user's presence broadcasts share one budget.
STATUS_RATE = 0.5  # per second
STATUS_BURST = 10
_ENCODER = msgspec.json.Encoder()


@dataclass(slots=True)
class UserState:
    """A known key: its latest name and prekey, and its presence."""

    key: bytes
    name: str
    prekey: SignedPrekey
    last_seen: int | None = None
    status: PresenceStatus = OFFLINE
    text: str | None = None
    mailbox_seq: int = 0
    mailbox_count: int = 0
    sessions: int = 0  # connections authenticated (or authenticating) as this key
    presence_budget: TokenBucket | None = None  # made on the first presence change
    presence_pending: bool = False  # a change was not broadcast: a catch-up is owed
    stored: bool = True  # the store holds this name and prekey (False until first written)
    name_statement: bytes | None = None  # ``name`` signed by ``key``, stored with the rest

    def record(self) -> UserRecord:
        prekey = self.prekey
        return UserRecord(
            self.key,
            self.name,
            prekey.id,
            prekey.key,
            prekey.sig,
            self.last_seen,
            self.name_statement,
        )


@dataclass(slots=True)
class Room:
    """A room and its members (key -> joined ms). ``seq`` is the last message's number."""

    record: RoomRecord
    members: dict[bytes, int] = field(default_factory=dict)
    seq: int = 0
    last_ts: int = 0
    log: LogState | None = None  # the membership log as validated here (no join tags)
    log_read: int = -1
    """How many of the log's stored entries this relay has read or appended (-1: none read
    yet); ``log`` holds them, up to a damaged one."""
    log_seen: int = 0
    """The longest the log is known to be in the store (a relay sharing it announced it)."""
    listed: dict[bytes, bytes] = field(default_factory=dict)
    """Each member's encoded ``RosterEntry``, in ``members``' order (see ``listed_members``)."""
    relist: set[bytes] = field(default_factory=set)
    """Members whose ``listed`` entry is to be encoded anew (what is listed of them changed)."""

    @property
    def log_stale(self) -> bool:
        """The log was never read, or the store holds more of it than this relay read."""
        return self.log_read < 0 or self.log_read < self.log_seen


@dataclass(frozen=True, slots=True)
class DirectoryLimits:
    max_members: int
    max_rooms_per_user: int
    mailbox_max: int


def _presence_budget(user: UserState, now: float) -> TokenBucket:
    if user.presence_budget is None:
        user.presence_budget = TokenBucket.full(STATUS_RATE, STATUS_BURST, now)
    return user.presence_budget


def token_matches(token: bytes, verifier: bytes) -> bool:
    """Whether BLAKE2b-256(token) is ``verifier``, compared in constant time."""
    digest = blake2b(token, digest_size=32, encoder=RawEncoder)
    return hmac.compare_digest(digest, verifier)


class Directory:
    """Users, rooms and memberships in memory, with the rules that govern them."""

    def __init__(self, limits: DirectoryLimits) -> None:
        self.limits = limits
        self.users: dict[bytes, UserState] = {}
        self.texted: dict[bytes, None] = {}
        """Keys whose user has a status text now (an ordered set)."""
        self.rooms: dict[bytes, Room] = {}
        self.by_name: dict[str, bytes] = {}
        self.rooms_of: dict[bytes, set[bytes]] = {}
        # Users with no session, by the time (ms) their last one ended, oldest first (they
        # are appended as they go idle): the candidates for `forget`, found without a scan.
        self.idle: OrderedDict[bytes, int] = OrderedDict()

    @classmethod
    def from_snapshot(cls, snapshot: Snapshot, limits: DirectoryLimits, now: int) -> "Directory":
        """The directory as stored; users idle since their ``last_seen`` (else ``now``, ms)."""
        directory = cls(limits)
        for u in snapshot.users:
            directory.users[u.key] = UserState(
                u.key,
                u.name,
                SignedPrekey(id=u.prekey_id, key=u.prekey, sig=u.prekey_sig),
                u.last_seen,
                name_statement=u.name_statement,
                mailbox_seq=snapshot.mailbox_seqs.get(u.key, 0),
                mailbox_count=snapshot.mailbox_counts.get(u.key, 0),
            )
        for r in snapshot.rooms:
            directory._insert_room(r, snapshot.room_seqs.get(r.id, 0))
        for m in snapshot.members:
            if m.room in directory.rooms and m.key in directory.users:
                directory._add_member(m.room, m.key, m.joined)
        idle_since = sorted(
            (u.last_seen if u.last_seen is not None else now, u.key) for u in snapshot.users
        )
        directory.idle.update((key, since) for since, key in idle_since)
        return directory

    # Users -----------------------------------------------------------------------

    def authenticate(
        self, key: bytes, name: str, prekey: SignedPrekey, statement: bytes | None = None
    ) -> tuple[UserState, Change | None]:
        """Record a verified hello; return the user and the change to store, if any.

        The user has one more session from here on, until `release`: it cannot be forgotten.
        ``statement`` is ``name`` signed by ``key`` (checked by the caller).
        """
        user = self.users.get(key)
        if user is None:
            user = self.users[key] = UserState(
                key, name, prekey, sessions=1, stored=False, name_statement=statement
            )
        else:
            user.sessions += 1
            self.idle.pop(key, None)
        held = user.name_statement is not None or statement is None
        if user.stored and user.name == name and user.prekey == prekey and held:
            return user, None  # a statement of the same name is kept: one write per rename
        return user, self._profile_change(user, name, prekey, statement)

    def rename(self, key: bytes, name: str, statement: bytes) -> Change:
        """``key`` calls itself ``name`` now (``statement`` checked by the caller)."""
        user = self.users[key]
        return self._profile_change(user, name, user.prekey, statement)

    def _profile_change(
        self, user: UserState, name: str, prekey: SignedPrekey, statement: bytes | None
    ) -> Change:
        """Set ``user``'s name, prekey and name statement; undone, they are as before.

        Without a new statement the old one is kept only while it names the same name:
        a relay never lists a statement of another name.
        """
        before = user.name, user.prekey, user.name_statement
        if statement is None and name == user.name:
            statement = user.name_statement
        user.name, user.prekey, user.name_statement = name, prekey, statement
        self._listing_changed(user.key)
        record = user.record()

        def undo() -> None:
            if user.stored:  # a new user keeps its values: `stored` says they need writing
                user.name, user.prekey, user.name_statement = before
                self._listing_changed(user.key)

        def commit() -> None:
            user.stored = True

        return Change("put_user", lambda store: store.put_user(record), undo, commit)

    def release(self, key: bytes, now: int) -> None:
        """One session of ``key`` ended (``now`` in ms); with its last, the user is idle."""
        user = self.users[key]
        user.sessions -= 1
        if not user.sessions:
            self.idle[key] = now

    def has_idle_before(self, cutoff: int) -> bool:
        """Whether some user has been idle since ``cutoff`` (ms) or earlier."""
        return bool(self.idle) and next(iter(self.idle.values())) <= cutoff

    def forget(self, cutoff: int, limit: int) -> list[bytes]:
        """Drop up to ``limit`` users idle since ``cutoff`` or earlier, oldest first; their keys.

        A user in a room or with mail waiting is kept, and leaves the idle list: while
        offline it can neither leave a room nor empty its mailbox, so it stays kept until
        its next session ends and puts it back. A forgotten key is simply new again.
        """
        forgotten: list[bytes] = []
        for _ in range(limit):
            if not self.has_idle_before(cutoff):
                break
            key, _since = self.idle.popitem(last=False)
            if self.rooms_of.get(key) or self.users[key].mailbox_count:
                continue
            del self.users[key]
            self.rooms_of.pop(key, None)
            forgotten.append(key)
        return forgotten

    def forgetting(self, cutoff: int, limit: int) -> tuple[list[bytes], Change]:
        """`forget`, with the change that deletes the same users from the store.

        Its undo is nothing: users the store failed to delete stay forgotten in memory and
        are loaded again at the next start, to be forgotten again later.
        """
        keys = self.forget(cutoff, limit)
        return keys, Change("forget_users", lambda store: store.forget_users(keys))

    def set_prekey(self, key: bytes, prekey: SignedPrekey) -> Change:
        user = self.users[key]
        return self._profile_change(user, user.name, prekey, None)

    def went_online(self, key: bytes) -> None:
        """``key``'s first connection is live: it shows online, without a status text."""
        self._set_presence(self.users[key], "online", None)

    def went_offline(self, key: bytes, now: int) -> Change:
        """``key``'s last connection ended at ``now`` (ms); the change records ``last_seen``.

        Nothing to undo: if the write fails the store keeps an older ``last_seen``.
        """
        user = self.users[key]
        self._set_presence(user, OFFLINE, None)
        user.last_seen = now
        return Change("set_last_seen", lambda store: store.set_last_seen(key, now))

    def set_status(self, key: bytes, status: PresenceStatus, text: str | None, now: float) -> bool:
        """Apply a user's status change; False if it changes nothing (nothing to broadcast).

        Raises `rate_limited` once the user's status budget is spent (shared by all of the
        user's connections), without changing anything.
        """
        user = self.users[key]
        if (user.status, user.text) == (status, text):
            return False
        if not _presence_budget(user, now).take(now):
            raise ProtocolError(
                ErrorCode.RATE_LIMITED,
                f"Too many status changes: at most {STATUS_RATE:g} per second; try again soon.",
            )
        self._set_presence(user, status, text)
        user.presence_pending = False  # this broadcast carries the latest state
        return True

    def _set_presence(self, user: UserState, status: PresenceStatus, text: str | None) -> None:
        """Set a user's presence, keeping ``texted`` (who has a status text) in step."""
        user.status, user.text = status, text
        if text is None:
            self.texted.pop(user.key, None)
        else:
            self.texted[user.key] = None
        self._listing_changed(user.key)

    def presence_due(self, key: bytes, now: float) -> float | None:
        """After ``key`` went online or offline: None if the change may be broadcast now.

        Otherwise (the user's presence budget is spent, say by a reconnect loop) the change
        stays unannounced, the user owes peers a catch-up, and the answer is the seconds
        until the budget allows it: the relay then broadcasts whatever the state is by then.
        """
        user = self.users[key]
        budget = _presence_budget(user, now)
        if budget.take(now):
            user.presence_pending = False
            return None
        user.presence_pending = True
        return budget.wait(now)

    def peers(self, key: bytes) -> set[bytes]:
        """Every other key that shares at least one room with ``key``."""
        found: set[bytes] = set()
        for room_id in self.rooms_of.get(key, ()):
            found.update(self.rooms[room_id].members)
        found.discard(key)
        return found

    # Rooms -----------------------------------------------------------------------

    def _insert_room(self, record: RoomRecord, seq: int) -> Room:
        room = Room(record, seq=seq)
        self.rooms[record.id] = room
        self.by_name[record.name] = record.id
        return room

    def _check_room_quota(self, key: bytes) -> None:
        if len(self.rooms_of.get(key, ())) >= self.limits.max_rooms_per_user:
            raise ProtocolError(
                ErrorCode.QUOTA_EXCEEDED,
                "You are in as many rooms as this relay allows"
                f" ({self.limits.max_rooms_per_user}); leave one before creating or joining"
                " another.",
            )

    def create_room(
        self, key: bytes, frame: CreateRoom, room_id: bytes, now: int
    ) -> tuple[Room, Change]:
        """Create the room with ``key`` as its first member, or raise."""
        if frame.name in self.by_name:
            raise ProtocolError(ErrorCode.NAME_TAKEN, f"A room named {frame.name!r} exists.")
        max_members = frame.max_members or self.limits.max_members
        if max_members > self.limits.max_members:
            raise ProtocolError(
                ErrorCode.BAD_FRAME,
                f"This relay allows at most {self.limits.max_members} members per room.",
            )
        self._check_room_quota(key)
        secret = isinstance(frame.access, SecretAccess)
        record = RoomRecord(
            id=room_id,
            name=frame.name,
            description=frame.description,
            max_members=max_members,
            listed=frame.listed,
            access_kind="secret" if secret else "open",
            verifier=frame.access.verifier if isinstance(frame.access, SecretAccess) else None,
            salt=frame.access.salt if isinstance(frame.access, SecretAccess) else None,
            created=now,
        )
        room = self._insert_room(record, 0)
        self._add_member(room_id, key, now)
        creator = MemberRecord(room_id, key, now)
        return room, Change(
            "create_room",
            lambda store: store.create_room(record, creator),
            lambda: self._drop_room(room_id),
        )

    def _drop_room(self, room_id: bytes) -> None:
        """Forget a room entirely (undo of a failed create, or its last member left).

        With relays sharing a store, another relay's notice may have dropped it first, or
        given its name to the room that won a race to create it: neither is undone here.
        """
        room = self.rooms.pop(room_id, None)
        if room is None:
            return
        if self.by_name.get(room.record.name) == room_id:
            del self.by_name[room.record.name]
        for key in room.members:
            self.rooms_of[key].discard(room_id)

    def _restore_room(self, room: Room) -> None:
        """Put back a room removed by ``_drop_room`` (undo when the store write failed)."""
        self.rooms[room.record.id] = room
        self.by_name[room.record.name] = room.record.id
        for key in room.members:
            self.rooms_of.setdefault(key, set()).add(room.record.id)

    def _check_join(self, key: bytes, frame: JoinRoom) -> tuple[Room, bool]:
        """The room ``key`` may join by ``frame``, and whether it is already a member."""
        room = self.lookup(frame.name)
        if key in room.members:
            return room, True
        record = room.record
        if room.log is not None and key in room.log.banned:
            raise ProtocolError(ErrorCode.FORBIDDEN, BANNED_FROM_ROOM)
        if record.verifier is not None and (
            frame.token is None or not token_matches(frame.token, record.verifier)
        ):
            raise ProtocolError(
                ErrorCode.FORBIDDEN, "This room needs its secret: check the password or invite."
            )
        if len(room.members) >= record.max_members:
            raise ProtocolError(
                ErrorCode.ROOM_FULL, f"The room is full ({record.max_members} members)."
            )
        self._check_room_quota(key)
        return room, False

    def join(self, key: bytes, frame: JoinRoom, now: int) -> tuple[Room, Change | None]:
        """Add ``key`` to the room ``frame`` names, or raise; no change if already a member."""
        room, already = self._check_join(key, frame)
        if already:
            return room, None
        room_id = room.record.id
        self._add_member(room_id, key, now)
        member = MemberRecord(room_id, key, now)
        decided_on = max(room.log_read, 0)  # the store's log as this relay has read it
        return room, Change(
            "add_member",
            lambda store: store.add_member(member, decided_on),
            lambda: self._remove_member(room_id, key),
        )

    def leave(self, key: bytes, room_id: bytes) -> tuple[Room, Change]:
        """Remove ``key`` from its room ``room_id``, or raise; the last member drops the room
        (then ``room.members`` is empty and the name is free at once)."""
        room = self.member_room(key, room_id)
        joined = room.members[key]
        self._remove_member(room_id, key)
        last = not room.members
        if last:
            self._drop_room(room_id)

        def undo() -> None:
            if last:
                self._restore_room(room)
            self._add_member(room_id, key, joined)

        return room, Change(
            "remove_member", lambda store: store.remove_member(room_id, key, last), undo
        )

    def delete_room(self, deletion: RoomDeletionRecord) -> tuple[Room, Change]:
        """Drop a room with all its members (the operator's ``admin delete``): its name is
        free at once; the store drops its members, history and membership log, and keeps
        ``deletion`` for each member it had, to tell it after its next ``welcome``."""
        room_id = deletion.room
        room = self.rooms.get(room_id)
        if room is None:
            raise ProtocolError(ErrorCode.NO_SUCH_ROOM, "There is no room with that id.")
        members = list(room.members)  # never empty: the last member's leave drops a room
        self._drop_room(room_id)
        return room, Change(
            "delete_room",
            lambda store: store.delete_room(room_id, deletion, members),
            lambda: self._restore_room(room),
        )

    # The membership log ------------------------------------------------------------------

    def load_log(self, room_id: bytes, start: int, entries: list[bytes]) -> None:
        """Adopt the room's stored log entries from position ``start`` on (validated again:
        a damaged entry ends the log). Only what extends the entries already read counts: a
        read answered after a later one, or after this relay's own append, changes nothing."""
        room = self.rooms[room_id]
        read = max(room.log_read, 0)
        if start > read:
            return
        fresh = entries[read - start :]
        state = room.log
        for entry in fresh:
            try:
                state, _ = apply_entry(state, entry)
            except LogError:
                break
        room.log, room.log_read = state, read + len(fresh)
        if state is not None:
            self._follow_log(room, state)

    def check_log_append(
        self, key: bytes, room_id: bytes, entry: bytes
    ) -> tuple[LogState, LogEntry]:
        """The log after ``key`` appends ``entry`` (signed by ``key``), or raise.

        The same rules every member applies, without the join tags (the relay has no room
        secret): a relay that refuses an unauthorised or mis-chained entry spares members
        the work, and it acts on removals only when they are authorised.
        """
        room = self.member_room(key, room_id)
        head = room.log.position if room.log is not None else EMPTY_HEAD
        try:
            claimed = parse_entry(entry)
            if claimed.seq != head.length or claimed.prev != head.head:
                raise ProtocolError(
                    ErrorCode.LOG_CONFLICT,
                    f"The room's log has {head.length} entries: fetch them and sign again.",
                )
            state, parsed = apply_entry(room.log, entry)
        except LogError as exc:
            raise ProtocolError(ErrorCode.FORBIDDEN, f"Log entry refused: {exc}.") from None
        if parsed.author != key:
            raise ProtocolError(ErrorCode.FORBIDDEN, "Append only log entries you signed.")
        return state, parsed

    def log_appended(self, room_id: bytes, state: LogState) -> None:
        """The store holds the new entry: the log is ``state`` (unless a read answered
        meanwhile already brought this entry, and maybe later ones)."""
        room = self.rooms[room_id]
        if room.log_read == state.length - 1:
            room.log, room.log_read = state, state.length
            self._follow_log(room, state)

    def log_grew(self, room_id: bytes, length: int) -> None:
        """The store holds at least ``length`` entries of the room's log (a relay sharing
        it appended): read it again before the next decision on it."""
        room = self.rooms.get(room_id)
        if room is not None:
            room.log_seen = max(room.log_seen, length)

    @staticmethod
    def _follow_log(room: Room, state: LogState) -> None:
        """Admit joiners with the secret of the log's current epoch (after a kick, a ban, a
        password change or revoked invites the old token no longer opens the room)."""
        if state.secret and room.record.verifier != state.verifier:
            room.record = replace(room.record, verifier=state.verifier, salt=state.salt or None)

    def _add_member(self, room_id: bytes, key: bytes, joined: int) -> None:
        room = self.rooms[room_id]
        room.members[key] = joined
        room.listed[key] = b""  # its place, in the order of ``members``; encoded when listed
        room.relist.add(key)
        self.rooms_of.setdefault(key, set()).add(room_id)

    def _remove_member(self, room_id: bytes, key: bytes) -> None:
        room = self.rooms[room_id]
        room.members.pop(key, None)
        room.listed.pop(key, None)
        room.relist.discard(key)
        self.rooms_of.get(key, set()).discard(room_id)

    def lookup(self, name: str) -> Room:
        room_id = self.by_name.get(name)
        if room_id is None:
            raise ProtocolError(ErrorCode.NO_SUCH_ROOM, f"There is no room named {name!r}.")
        return self.rooms[room_id]

    def member_room(self, key: bytes, room_id: bytes) -> Room:
        """The room ``room_id`` if ``key`` is a member of it, or raise."""
        room = self.rooms.get(room_id)
        if room is None:
            raise ProtocolError(ErrorCode.NO_SUCH_ROOM, "There is no room with that id.")
        if key not in room.members:
            raise ProtocolError(ErrorCode.NOT_MEMBER, "You are not a member of that room.")
        return room

    def listed(self) -> list[Room]:
        """The listed rooms, the biggest first, no more than a `rooms` frame may carry."""
        listed = (room for room in self.rooms.values() if room.record.listed)
        return nlargest(MAX_LIST_ITEMS, listed, key=lambda room: len(room.members))

    # Sequence numbers --------------------------------------------------------------

    def next_message(self, room: Room, now: int) -> tuple[int, int]:
        """The next (seq, ts) of ``room``; ts never goes backwards within a room."""
        room.seq += 1
        room.last_ts = max(room.last_ts, now)
        return room.seq, room.last_ts

    def numbered(self, room: Room, seq: int, ts: int) -> None:
        """A shared store numbered a message of ``room`` (seq, ts): count from there on."""
        room.seq = max(room.seq, seq)
        room.last_ts = max(room.last_ts, ts)

    def post_direct(
        self, to: bytes, sender: bytes, body: bytes, now: int
    ) -> tuple[Envelope, Change]:
        """Queue a direct for ``to`` (``now`` in ms), or raise if unknown or full.

        Undone, the entry no longer counts against the mailbox; its seq stays used (a gap
        clients never see: they acknowledge by seq).
        """
        self._check_recipient(to, 1)
        return self._queue_direct(to, sender, body, now)

    def post_directs(
        self, sender: bytes, items: list[tuple[bytes, bytes]], now: int
    ) -> list[tuple[Envelope, Change]]:
        """Queue the ``(to, body)`` items of one `directs` frame, all or none.

        Every recipient is checked before any is queued (known, not full, and a member of
        a room ``sender`` is in: a batch is for a room's key shares, and a relay that lets
        anyone fill any mailbox at the share rate would hand out a flooding tool).
        """
        shared = self.rooms_of.get(sender, set())
        recipients = [to for to, _ in items]
        if len(set(recipients)) != len(recipients):
            raise ProtocolError(ErrorCode.BAD_FRAME, "A `directs` frame names a recipient twice.")
        for to in recipients:
            if shared.isdisjoint(self.rooms_of.get(to, ())):
                raise ProtocolError(
                    ErrorCode.FORBIDDEN,
                    "A `directs` recipient is in no room with you; send it a single `direct`.",
                )
            self._check_recipient(to, 1)
        return [self._queue_direct(to, sender, body, now) for to, body in items]

    def _check_recipient(self, to: bytes, count: int) -> None:
        """Raise unless ``to`` is known and its mailbox has room for ``count`` more."""
        user = self.users.get(to)
        if user is None:
            raise ProtocolError(
                ErrorCode.FORBIDDEN,
                "The recipient is unknown: this relay has never seen that key authenticate.",
            )
        if user.mailbox_count + count > self.limits.mailbox_max:
            raise ProtocolError(
                ErrorCode.UNAVAILABLE, "The recipient's mailbox is full; try again later."
            )

    def _queue_direct(
        self, to: bytes, sender: bytes, body: bytes, now: int
    ) -> tuple[Envelope, Change]:
        user = self.users[to]
        user.mailbox_seq += 1
        user.mailbox_count += 1
        entry = Envelope(user.mailbox_seq, now, sender, body)

        async def persist(store: Store) -> Envelope:
            stored = await store.mailbox_put(to, entry) or entry
            user.mailbox_seq = max(user.mailbox_seq, stored.seq)  # a shared store's number
            return stored

        def undo() -> None:
            user.mailbox_count -= 1

        return entry, Change("mailbox_put", persist, undo)

    def mailbox_acked(self, key: bytes, removed: int) -> None:
        """The store deleted ``removed`` of ``key``'s mailbox entries."""
        user = self.users[key]
        user.mailbox_count = max(0, user.mailbox_count - removed)

    # What other relays sharing the store changed (their notices: see bus.py) ----------

    def follow_user(self, record: UserRecord, now: int) -> None:
        """Another relay stored this user's name and prekey (``now`` in ms)."""
        prekey = SignedPrekey(id=record.prekey_id, key=record.prekey, sig=record.prekey_sig)
        user = self.users.get(record.key)
        statement = record.name_statement
        if user is None:
            self.users[record.key] = UserState(
                record.key, record.name, prekey, record.last_seen, name_statement=statement
            )
            self.idle[record.key] = now
        else:
            user.name, user.prekey, user.name_statement = record.name, prekey, statement
            self._listing_changed(record.key)

    def follow_forgotten(self, keys: list[bytes]) -> None:
        """Another relay forgot these users (the store refuses any that is online anywhere)."""
        for key in keys:
            user = self.users.get(key)
            if user is None or user.sessions or self.rooms_of.get(key):
                continue
            del self.users[key]
            self.idle.pop(key, None)
            self.rooms_of.pop(key, None)

    def follow_room(self, record: RoomRecord, creator: bytes) -> None:
        """Another relay created this room with its creator as first member.

        The store decided any race for the name: a room of that name held here (one this
        relay is still trying to create) gives way, and its failed create undoes nothing.
        """
        if record.id in self.rooms:
            return
        holder = self.by_name.get(record.name)
        if holder is not None:
            self._drop_room(holder)
        self._insert_room(record, 0)
        if creator in self.users:
            self._add_member(record.id, creator, record.created)

    def follow_join(self, room_id: bytes, key: bytes, joined: int) -> bool:
        """Another relay added ``key`` to the room; False if this relay knows neither."""
        if room_id not in self.rooms or key not in self.users:
            return False
        self._add_member(room_id, key, joined)
        return True

    def follow_leave(self, room_id: bytes, key: bytes, dropped: bool) -> None:
        """Another relay removed ``key`` from the room (``dropped``: its last member)."""
        if room_id not in self.rooms:
            return
        self._remove_member(room_id, key)
        if dropped:
            self._drop_room(room_id)

    def follow_presence(
        self, key: bytes, status: PresenceStatus, text: str | None, last_seen: int | None
    ) -> None:
        """Another relay announced this user's presence."""
        user = self.users.get(key)
        if user is not None:
            self._set_presence(user, status, text)
            if last_seen is not None:
                user.last_seen = last_seen

    # Views -------------------------------------------------------------------------

    def member(self, key: bytes, joined: int) -> RosterEntry:
        user = self.users[key]
        return RosterEntry(
            key=key,
            name=user.name,
            status=user.status,
            prekey=user.prekey,
            joined=joined,
            name_statement=user.name_statement,
        )

    def _listing_changed(self, key: bytes) -> None:
        """What a room lists of ``key`` changed: its rooms encode its entry anew."""
        for room_id in self.rooms_of.get(key, ()):
            room = self.rooms.get(room_id)
            if room is not None:
                room.relist.add(key)

    def status_texts(self, room_ids: Iterable[bytes]) -> list[Presence]:
        """A ``presence`` for each member of these rooms who has a status text, once per
        key: a roster entry carries no text, so a client that connected after a member
        set one learns it from these (protocol.md section 7)."""
        members = (key for room_id in room_ids for key in self._texted_in(room_id))
        return self.status_texts_of(dict.fromkeys(members))

    def _texted_in(self, room_id: bytes) -> Iterable[bytes]:
        """The members of ``room_id`` with a status text, walking whichever is smaller:
        the room or the users with a text (a join into a large room, where few have one,
        costs no walk of the whole room)."""
        room = self.rooms.get(room_id)
        if room is None:
            return ()
        if len(self.texted) < len(room.members):
            return [key for key in self.texted if key in room.members]
        return [key for key in room.members if key in self.texted]

    def status_texts_of(self, keys: Iterable[bytes]) -> list[Presence]:
        """A ``presence`` for each of ``keys`` that has a status text."""
        users = (self.users.get(key) for key in keys)
        return [
            Presence(key=user.key, status=user.status, text=user.text)
            for user in users
            if user is not None and user.text is not None
        ]

    def listed_members(self, room: Room) -> list[RosterEntry]:
        """``room``'s members for a frame, already encoded: the JSON array that encoding
        ``list[RosterEntry]`` gives, byte for byte (a ``msgspec.Raw``, written as it is).

        Each member's entry is encoded once per change of what is listed of it (its name,
        status, prekey, name statement; a join or leave), never per reply: every join
        lists the whole room to the joiner, and encoding n members made that reply the
        relay's largest cost per join, growing with the room. The value is for encoding,
        not for reading.
        """
        for key in room.relist:
            room.listed[key] = _ENCODER.encode(self.member(key, room.members[key]))
        room.relist.clear()
        listed = msgspec.Raw(b"[" + b",".join(room.listed.values()) + b"]")
        return cast(list[RosterEntry], listed)

    def room_info(self, room: Room) -> RoomInfo:
        """``room`` with its members (as ``listed_members`` gives them: for encoding)."""
        return self._room_info(room, self.listed_members(room))

    def _room_info(self, room: Room, members: list[RosterEntry] | None) -> RoomInfo:
        """``room`` with ``members``, or partial (no members) if None."""
        return RoomInfo(
            **_public_fields(room),
            members=[] if members is None else members,
            seq=room.seq,
            partial=members is None,
        )

    def welcome_rooms(self, key: bytes, budget: int) -> list[RoomInfo]:
        """``key``'s rooms for `welcome`: with their members while the members' encoded
        size in total stays within ``budget`` bytes, partial from the first room that
        would exceed it on (protocol.md section 4). Encoding stops there too, so the
        work, like the frame, is bounded by the budget rather than by rooms x members."""
        infos = []
        left = budget
        for room_id in self.rooms_of.get(key, ()):
            room = self.rooms[room_id]
            members = None
            if left >= 0:
                members = self.listed_members(room)
                # each member's bytes and its separating comma: the array less one bracket
                left -= len(cast(msgspec.Raw, members)) - 1
            infos.append(self._room_info(room, members if left >= 0 else None))
        return infos

    def summary(self, room: Room) -> RoomSummary:
        return RoomSummary(**_public_fields(room), member_count=len(room.members))


def _public_fields(room: Room) -> dict[str, Any]:
    """What anyone may know of a room: the fields RoomInfo and RoomSummary share."""
    r = room.record
    return {
        "id": r.id,
        "name": r.name,
        "description": r.description,
        "max_members": r.max_members,
        "listed": r.listed,
        "access_kind": r.access_kind,
        "salt": r.salt,
    }
