"""A test double of the library's public surface (``e2echat.Client`` and ``Room``).

The app is written against ``e2echat.Client``; this stands in for it in widget tests,
snapshots and the TUI benchmark, handing out the library's own value types
(``e2echat.Member``, ``Message``, ``RoomSummary``, the events) with deterministic keys,
fingerprints and times. Rooms can be joined with a password or an invite; scripting
helpers (``deliver``, ``arrive``, ``depart``, ``emit``, ...) publish messages and events
to the app's subscriptions the way the library does. No cryptography, no I/O.
"""

import asyncio
import zlib
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Generic, TypeVar

from e2echat import (
    ConnectionChanged,
    ConnectionState,
    E2EChatError,
    Event,
    FileInfo,
    InvalidReaction,
    Member,
    MemberJoined,
    MemberLeft,
    MemberRenamed,
    MemberValidated,
    Message,
    MessageDeleted,
    MessageEdited,
    MessageSent,
    NotAllowed,
    PresenceChanged,
    Quote,
    Reaction,
    ReactionsChanged,
    RelayError,
    RoomChanged,
    RoomSummary,
    SecretRequired,
    SendFailed,
    UnreadChanged,
    Version,
    WrongAccess,
)
from e2echat.client.texts import check_description
from e2echat.crypto import PayloadError, check_emoji, is_one_emoji

EPOCH = datetime(2026, 1, 2, 9, 30, tzinfo=UTC)
T = TypeVar("T")


def fake_key(name: str) -> bytes:
    """A stable 32-byte key for ``name`` (tests refer to people by name)."""
    seed = name.encode()
    return (seed * (32 // max(len(seed), 1) + 1))[:32]


def fake_fingerprint(key: bytes) -> str:
    """Sixteen groups of four hex digits, laid out like the library's fingerprints."""
    return " ".join(f"{zlib.crc32(key[i:] + key[:i]) & 0xFFFF:04x}" for i in range(16))


def fake_member(name: str, **fields: object) -> Member:
    """A member with a stable key and fingerprint (``fields`` override the rest)."""
    key = fake_key(name)
    member = Member(
        key=key,
        name=name,
        status="online",
        status_text=None,
        fingerprint=fake_fingerprint(key),
        verified=False,
        validated=True,
        is_me=False,
    )
    return replace(member, **fields)  # type: ignore[arg-type]


class FakeSubscription(Generic[T]):
    """What ``Client.messages()``/``events()`` return: an async iterator from now on."""

    def __init__(self, chat: "FakeChat") -> None:
        self.items: deque[T] = deque()
        self._wakeup = asyncio.Event()
        self._chat = chat

    def put(self, item: T) -> None:
        self.items.append(item)
        self._wakeup.set()

    def __aiter__(self) -> "FakeSubscription[T]":
        return self

    async def __anext__(self) -> T:
        self._chat.listening.set()
        while not self.items:
            self._wakeup.clear()
            await self._wakeup.wait()
        return self.items.popleft()


@dataclass(eq=False)
class FakeRoom:
    """A room of the fake relay, with ``e2echat.Room``'s public surface."""

    chat: "FakeChat" = field(repr=False)
    name: str
    secret: bool = False
    description: str = ""
    password: str | None = field(default=None, repr=False)
    listed: bool = True
    member_list: list[Member] = field(default_factory=list)
    stored: list[Message] = field(default_factory=list)
    peer: bytes | None = None
    log: list[RoomChanged] = field(default_factory=list)
    """The membership log's changes (``changes()``); ``roles`` and ``epoch`` follow it."""
    roles: dict[bytes, str] = field(default_factory=dict)
    banned: frozenset[bytes] = frozenset()
    frozen: str | None = None
    unread: int = 0
    mentions: int = 0
    read_seq: int = 0
    versions_of: dict[bytes, list[Version]] = field(default_factory=dict)
    my_role: str = "owner"

    @property
    def access(self) -> str:
        return "password" if self.password is not None else "invite" if self.secret else "open"

    @property
    def epoch(self) -> int:
        return max((c.epoch for c in self.log), default=0)

    @property
    def log_head(self) -> tuple[int, bytes]:
        return len(self.log), bytes(range(32)) if self.log else bytes(32)

    async def changes(self) -> list[RoomChanged]:
        return list(self.log)

    def change(
        self, kind: str, author: Member, subject: Member | None = None, **fields: object
    ) -> None:
        """Append a change to the log, as a validated entry would (roles follow)."""
        epoch = self.epoch + (kind in ("kick", "ban", "rotate"))
        created = int((EPOCH + timedelta(minutes=len(self.log))).timestamp() * 1000)
        values: dict[str, object] = {"role": None, "description": None, **fields}
        self.log.append(
            RoomChanged(
                self,
                kind,
                author,
                subject,
                epoch=epoch,
                position=len(self.log),
                created=created,
                **values,
            )  # type: ignore[arg-type]
        )
        if kind == "create":
            self.roles[author.key] = "owner"
        elif kind == "join":
            self.roles[author.key] = "member"
        elif subject is not None and kind in ("kick", "ban"):
            self.roles.pop(subject.key, None)
            if kind == "ban":
                self.banned |= {subject.key}
        elif subject is not None and kind == "role":
            self.roles[subject.key] = str(fields["role"])

    @property
    def joined(self) -> bool:
        return self in self.chat.joined

    async def send(self, text: str, *, reply_to: Message | None = None) -> Message:
        """As the library's: offline, the message waits in the outbox and comes back with
        seq 0 (``FakeChat.flush_outbox`` sends it, ``give_up`` drops it)."""
        self.chat.sent.append((self.name, text))
        self.chat.send_ids += 1
        if self.chat.state is not ConnectionState.CONNECTED:
            at = EPOCH + timedelta(minutes=self.chat._seq + 1)
            pending = Message(
                text, self.chat.me, self, (), False, 0, at, True, send_id=self.chat.send_ids
            )  # type: ignore[arg-type]
            self.chat.outbox.append(pending)
            return pending
        message = self.chat.record(self, self.chat.me, text, own=True)
        message = self.stored[-1] = replace(message, send_id=self.chat.send_ids)
        if reply_to is not None:
            quote = Quote(reply_to.id, True, reply_to.sender, reply_to.text, reply_to.seq)
            message = replace(message, reply_to=quote)
            self.stored[-1] = message
        return message

    def _stored(self, message: Message) -> int:
        return next(i for i, m in enumerate(self.stored) if m.id == message.id)

    async def edit(self, message: Message, text: str) -> None:
        if not message.own:
            raise NotAllowed("That cannot be done: only its sender may edit a message.")
        index = self._stored(message)
        old = self.stored[index]
        self.versions_of.setdefault(old.id, [Version(old.text, old.sent_at)])
        self.versions_of[old.id].append(Version(text, old.sent_at))
        self.stored[index] = replace(old, text=text, edited=True)
        self.chat.edits.append((message.id, text))
        self.chat.emit(MessageEdited(self, self.stored[index]))  # type: ignore[arg-type]

    async def delete(self, message: Message) -> None:
        if not message.own:
            raise NotAllowed("That cannot be done: only its sender may delete a message.")
        index = self._stored(message)
        self.stored[index] = replace(self.stored[index], text="", deleted=True)
        self.chat.deletes.append(message.id)
        self.chat.emit(MessageDeleted(self, message.id, message.seq))  # type: ignore[arg-type]

    async def react(self, message: Message, emoji: str, add: bool = True) -> None:
        """As the library's: one emoji is added, any reaction withdrawn."""
        try:
            check_emoji(emoji)
        except PayloadError as exc:
            raise InvalidReaction(str(exc)) from None
        if add and not is_one_emoji(emoji):
            raise InvalidReaction("a reaction is one emoji, such as 👍")
        self.chat.reactions.append((message.id, emoji, add))
        self.chat.react(self, message, self.chat.me, emoji, add)

    async def versions(self, message: Message) -> list[Version]:
        return list(self.versions_of.get(message.id, []))

    async def mark_read(self, message: Message | None = None) -> None:
        newest = max((m.seq for m in self.stored), default=0)
        self.read_seq = max(self.read_seq, newest if message is None else message.seq)
        self.unread = self.mentions = 0
        self.chat.marked.append(self.name)
        self.chat.emit(UnreadChanged(self, 0, 0, self.read_seq))  # type: ignore[arg-type]

    async def members(self) -> list[Member]:
        return list(self.member_list)

    async def set_description(self, description: str) -> None:
        """As the library's: admins and owners only, the library's limits."""
        if self.my_role == "member":
            raise NotAllowed("You are not allowed to do that: a member cannot describe.")
        check_description(description)
        self.description = description

    def check_secret_change(self) -> None:
        if self.my_role == "member":
            raise NotAllowed("You are not allowed to do that: a member cannot change it.")

    async def change_password(self, password: str) -> None:
        """As the library's: a password room's admins and owners only."""
        if self.password is None:
            raise WrongAccess(f"Room {self.name!r} has no password to change.")
        self.check_secret_change()
        self.password = password

    async def leave(self) -> None:
        self.chat.joined.remove(self)
        self.member_list = [m for m in self.member_list if not m.is_me]

    def invite(self) -> str:
        if not self.secret or self.password is not None:
            raise E2EChatError(f"room {self.name!r} is not an invite room: it has no invite")
        return f"{self.chat.url}/{self.name}#{zlib.crc32(self.name.encode()):08x}"

    async def history(self, limit: int = 100) -> list[Message]:
        return self.stored[-limit:] if limit else []

    async def pending(self) -> list[Message]:
        return [message for message in self.chat.outbox if message.room is self]


class FakeChat:
    """A scripted, connected ``e2echat.Client`` for user ``name``."""

    def __init__(self, name: str = "alice", url: str = "ws://relay.example:8765") -> None:
        self.me = fake_member(name, is_me=True)
        self.url = url
        self.state = ConnectionState.CONNECTED
        self.directory: dict[str, FakeRoom] = {}
        self.joined: list[FakeRoom] = []
        self.sent: list[tuple[str, str]] = []
        self.send_ids = 0
        self.outbox: list[Message] = []
        """Our messages sent offline, not confirmed yet (each with its ``send_id``)."""
        self.statuses: list[tuple[str, str | None]] = []
        self.verified: list[str] = []
        self.unverified: list[str] = []
        self.edits: list[tuple[bytes, str]] = []
        self.deletes: list[bytes] = []
        self.reactions: list[tuple[bytes, str, bool]] = []
        self.marked: list[str] = []
        self.petnames: list[tuple[str, str | None]] = []
        self.listening = asyncio.Event()
        self._message_subscriptions: list[FakeSubscription[Message]] = []
        self._event_subscriptions: list[FakeSubscription[Event]] = []
        self._seq = 0

    # ------------------------------------------------------------ Client's surface

    @property
    def name(self) -> str:
        return self.me.name

    @property
    def key(self) -> bytes:
        return self.me.key

    @property
    def fingerprint(self) -> str:
        return self.me.fingerprint

    @property
    def rooms(self) -> list[FakeRoom]:
        return list(self.joined)

    def get_room(self, name: str) -> FakeRoom | None:
        return next((room for room in self.joined if room.name == name), None)

    def messages(self, *, bounded: bool = True) -> FakeSubscription[Message]:
        subscription: FakeSubscription[Message] = FakeSubscription(self)
        self._message_subscriptions.append(subscription)
        return subscription

    def events(self, *, bounded: bool = True) -> FakeSubscription[Event]:
        subscription: FakeSubscription[Event] = FakeSubscription(self)
        self._event_subscriptions.append(subscription)
        return subscription

    async def create(
        self, name: str, password: str | None = None, *, secret: bool = False
    ) -> FakeRoom:
        if name in self.directory:
            raise RelayError("name_taken", f"the room name {name} is taken")
        return self.add_room(name, secret=secret, password=password)

    async def join(
        self, name: str, password: str | None = None, invite: str | None = None
    ) -> FakeRoom:
        room = self.directory.get(name)
        if room is None:
            raise RelayError("no_such_room", f"there is no room called {name}")
        if room.secret and password is None and invite is None:
            if room.password is not None:
                raise SecretRequired(f"Room {name!r} needs its password.", "password")
            raise SecretRequired(f"Room {name!r} opens with an invite only now.", "invite")
        if room.secret:
            proof = password if room.password is not None else invite
            expected = room.password if room.password is not None else room.invite()
            if proof != expected:
                raise RelayError("forbidden", f"wrong password or invite for {name}")
        if room not in self.joined:
            self.joined.append(room)
            room.member_list.append(self.me)
        return room

    async def list_rooms(self) -> list[RoomSummary]:
        return [
            RoomSummary(room.name, room.secret, room.description, len(room.member_list))
            for room in self.directory.values()
            if room.listed
        ]

    async def set_status(self, status: str, text: str | None = None) -> None:
        self.statuses.append((status, text))
        self._replace_me(replace(self.me, status=status, status_text=text))

    def safety_number(self, member: Member) -> str:
        value = int.from_bytes(sorted([self.me.key, member.key])[0][:25] + member.key[:1])
        digits = f"{value % 10**60:060d}"
        return " ".join(digits[i : i + 5] for i in range(0, 60, 5))

    async def mark_verified(self, member: Member) -> None:
        self.verified.append(member.name)
        self._update(member.key, verified=True)

    async def unverify(self, member: Member) -> None:
        self.unverified.append(member.name)
        self._update(member.key, verified=False)

    async def set_petname(self, member: Member, petname: str | None) -> None:
        self.petnames.append((member.name, petname))
        self._update(member.key, petname=petname)

    async def rename(self, name: str) -> None:
        if not name or len(name) > 32:
            raise E2EChatError("a name is 1 to 32 printable characters")
        self._replace_me(replace(self.me, name=name))

    # ------------------------------------------------------------ scripting

    def pending(self) -> int:
        """Published items the app has not taken yet."""
        subscriptions = [*self._message_subscriptions, *self._event_subscriptions]
        return sum(len(each.items) for each in subscriptions)

    def member(self, name: str, **fields: object) -> Member:
        return fake_member(name, **fields)

    def emit(self, event: Event) -> None:
        """Publish ``event`` to every ``events()`` subscription."""
        for subscription in self._event_subscriptions:
            subscription.put(event)

    def add_room(
        self,
        name: str,
        *,
        secret: bool = False,
        password: str | None = None,
        description: str = "",
        members: Sequence[Member] = (),
        joined: bool = True,
        listed: bool = True,
    ) -> FakeRoom:
        secret = secret or password is not None
        room = FakeRoom(self, name, secret, description, password, listed, list(members))
        self.directory[name] = room
        if joined:
            room.member_list.insert(0, self.me)
            self.joined.append(room)
        return room

    def record(
        self,
        room: FakeRoom,
        sender: Member,
        text: str,
        *,
        own: bool = False,
        at: datetime | None = None,
    ) -> Message:
        """Store a message in ``room`` without announcing it (history)."""
        self._seq += 1
        mentions_me = not own and f"@{self.me.name}" in text
        message = Message(
            text=text,
            sender=sender,
            room=room,  # type: ignore[arg-type]
            mentions=(self.me,) if mentions_me else (),
            mentions_me=mentions_me,
            seq=self._seq,
            sent_at=at or EPOCH + timedelta(minutes=self._seq),
            own=own,
            id=sender.key + self._seq.to_bytes(20, "big"),
        )
        room.stored.append(message)
        return message

    def record_file(
        self, room: FakeRoom, sender: Member, name: str, size: int, media_type: str, caption: str
    ) -> Message:
        """Store a file message (as a sender's client could label it) in ``room``."""
        message = self.record(room, sender, caption)
        info = FileInfo(name, size, media_type, blob=bytes(16), key=bytes(32), hash=bytes(32))
        stored = replace(message, file=info)
        room.stored[-1] = stored
        return stored

    def flush_outbox(self) -> list[Message]:
        """The relay confirms every queued message: each is stored, and published as the
        library does, in a ``MessageSent``."""
        sent = []
        for pending in self.outbox:
            room: FakeRoom = pending.room  # type: ignore[assignment]
            stored = self.record(room, self.me, pending.text, own=True)
            stored = room.stored[-1] = replace(stored, send_id=pending.send_id)
            self.emit(MessageSent(room, stored))  # type: ignore[arg-type]
            sent.append(stored)
        self.outbox.clear()
        return sent

    def give_up(self, message: Message, reason: str) -> None:
        """The library drops queued ``message`` (a refusal no resend cures)."""
        self.outbox.remove(message)
        self.emit(SendFailed(message.room, message.send_id, reason))

    def publish(self, message: Message) -> None:
        for subscription in self._message_subscriptions:
            subscription.put(message)

    def deliver(self, room: str, sender: str, text: str) -> Message:
        """A message from ``sender`` arrives in ``room`` now."""
        target = self.directory[room]
        member = next((m for m in target.member_list if m.name == sender), None)
        message = self.record(target, member or self.member(sender), text)
        target.unread += 1  # as the library counts what others sent past the read marker
        target.mentions += message.mentions_me
        self.publish(message)
        self.emit(UnreadChanged(target, target.unread, target.mentions, target.read_seq))  # type: ignore[arg-type]
        return message

    def react(
        self, room: FakeRoom, message: Message, member: Member, emoji: str, add: bool
    ) -> None:
        """``member`` adds (or takes back) ``emoji`` on ``message``, as published."""
        index = room._stored(message)
        held = {r.emoji: list(r.members) for r in room.stored[index].reactions}
        who = [m for m in held.get(emoji, []) if m.key != member.key]
        held[emoji] = [*who, member] if add else who
        reactions = tuple(Reaction(e, tuple(ms)) for e, ms in held.items() if ms)
        room.stored[index] = replace(room.stored[index], reactions=reactions)
        changed = ReactionsChanged(room, room.stored[index], member, emoji, add)
        self.emit(changed)  # type: ignore[arg-type]

    def arrive(self, room: str, member: Member) -> None:
        target = self.directory[room]
        target.member_list.append(member)
        self.emit(MemberJoined(target, member))  # type: ignore[arg-type]

    def validate(self, room: str, name: str) -> None:
        """``name`` proved the secret of ``room``: keys are now shared with it."""
        self._update(fake_key(name), validated=True)
        target = self.directory[room]
        member = next(m for m in target.member_list if m.name == name)
        self.emit(MemberValidated(target, member))  # type: ignore[arg-type]

    def depart(self, room: str, name: str) -> None:
        target = self.directory[room]
        member = next(m for m in target.member_list if m.name == name)
        target.member_list.remove(member)
        self.emit(MemberLeft(target, member))  # type: ignore[arg-type]

    def change_presence(self, name: str, status: str) -> None:
        self._update(fake_key(name), status=status)
        member = next(m for r in self.joined for m in r.member_list if m.name == name)
        self.emit(PresenceChanged(member))

    def rename_member(self, name: str, new_name: str) -> None:
        """``name`` signed a new name: every room lists it, and the library says so."""
        self._update(fake_key(name), name=new_name)
        member = next(m for r in self.joined for m in r.member_list if m.key == fake_key(name))
        self.emit(MemberRenamed(member, name))

    def change_connection(self, state: ConnectionState, detail: str | None = None) -> None:
        self.state = state
        self.emit(ConnectionChanged(state, detail))

    def _replace_me(self, me: Member) -> None:
        for room in self.directory.values():
            room.member_list = [me if m.is_me else m for m in room.member_list]
        self.me = me

    def _update(self, key: bytes, **fields: object) -> None:
        for room in self.directory.values():
            room.member_list = [
                replace(m, **fields) if m.key == key else m  # type: ignore[arg-type]
                for m in room.member_list
            ]
