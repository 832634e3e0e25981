"""An in-memory ``ChatBackend`` for widget tests, screenshots and the TUI benchmark.

It behaves like a tiny relay plus library in one object: deterministic keys,
fingerprints and times, rooms that can be joined (with a password or an invite),
and helpers (``deliver``, ``arrive``, ``depart``, ...) that push events into the app
the way the real library would. It holds no cryptography and makes no I/O.
"""

import asyncio
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from e2echat_tui.backend import ChatListener, MemberView

EPOCH = datetime(2026, 1, 2, 9, 30, tzinfo=UTC)


class FakeRelayError(Exception):
    """A refusal from the fake relay; ``str()`` is the readable sentence."""


def fake_key(name: str) -> bytes:
    """A stable 32-byte key for ``name`` (tests refer to people by name)."""
    seed = name.encode()
    return (seed * (32 // max(len(seed), 1) + 1))[:32]


def fake_fingerprint(key: bytes) -> str:
    return " ".join(f"{zlib.crc32(key[i:] + key[:i]) % 10**5:05d}" for i in range(4))


@dataclass(frozen=True, slots=True)
class FakeMember:
    key: bytes
    name: str
    status: str = "online"
    status_text: str | None = None
    fingerprint: str = ""
    verified: bool = False
    validated: bool = True
    is_me: bool = False


@dataclass(frozen=True, slots=True)
class FakeMessage:
    text: str
    sender: FakeMember
    room: "FakeRoom"
    sent_at: datetime
    mentions_me: bool = False
    own: bool = False
    seq: int = 0


@dataclass(frozen=True, slots=True)
class FakeSummary:
    name: str
    secret: bool
    description: str
    member_count: int


@dataclass(eq=False)
class FakeRoom:
    """A room on the fake relay; ``member_list`` is what the relay announced."""

    backend: "FakeBackend" = field(repr=False)
    name: str
    secret: bool = False
    description: str = ""
    password: str | None = field(default=None, repr=False)
    listed: bool = True
    member_list: list[FakeMember] = field(default_factory=list)
    stored: list[FakeMessage] = field(default_factory=list)

    async def send(self, text: str) -> FakeMessage:
        self.backend.sent.append((self.name, text))
        return self.backend.record(self, self.backend.me, text, own=True)

    async def members(self) -> list[FakeMember]:
        return list(self.member_list)

    async def leave(self) -> None:
        self.backend.joined.remove(self)
        self.member_list = [m for m in self.member_list if not m.is_me]

    def invite(self) -> str:
        if not self.secret or self.password is not None:
            raise FakeRelayError(f"{self.name} has no invite: only invite-secret rooms do")
        return f"{self.backend.url}/{self.name}#{zlib.crc32(self.name.encode()):08x}"

    async def history(self, limit: int = 100) -> list[FakeMessage]:
        return self.stored[-limit:] if limit else []


class FakeBackend:
    """A scripted chat session for user ``name``."""

    expected_errors: tuple[type[Exception], ...] = (FakeRelayError,)

    def __init__(self, name: str = "alice", url: str = "ws://relay.example:8765") -> None:
        key = fake_key(name)
        self.me = FakeMember(key, name, fingerprint=fake_fingerprint(key), is_me=True)
        self.url = url
        self.state = "connected"
        self.directory: dict[str, FakeRoom] = {}
        self.joined: list[FakeRoom] = []
        self.sent: list[tuple[str, str]] = []
        self.statuses: list[tuple[str, str | None]] = []
        self.verified: list[str] = []
        self.unverified: list[str] = []
        self.listening = asyncio.Event()
        self._listener: ChatListener | None = None
        self._seq = 0

    # ------------------------------------------------------------ ChatBackend

    @property
    def name(self) -> str:
        return self.me.name

    @property
    def fingerprint(self) -> str:
        return self.me.fingerprint

    @property
    def rooms(self) -> list[FakeRoom]:
        return list(self.joined)

    async def create(
        self, name: str, password: str | None = None, *, secret: bool = False
    ) -> FakeRoom:
        if name in self.directory:
            raise FakeRelayError(f"the room name {name} is taken (name_taken)")
        return self.add_room(name, secret=secret, password=password)

    async def join(
        self, name: str, password: str | None = None, invite: str | None = None
    ) -> FakeRoom:
        room = self.directory.get(name)
        if room is None:
            raise FakeRelayError(f"there is no room called {name} (no_such_room)")
        if room.secret:
            proof = password if room.password is not None else invite
            expected = room.password if room.password is not None else room.invite()
            if proof != expected:
                raise FakeRelayError(f"wrong password or invite for {name} (forbidden)")
        if room not in self.joined:
            self.joined.append(room)
            room.member_list.append(self.me)
        return room

    async def list_rooms(self) -> list[FakeSummary]:
        return [
            FakeSummary(room.name, room.secret, room.description, len(room.member_list))
            for room in self.directory.values()
            if room.listed
        ]

    async def set_status(self, status: str, text: str | None = None) -> None:
        self.statuses.append((status, text))
        self._replace_me(replace(self.me, status=status, status_text=text))

    def safety_number(self, member: MemberView) -> str:
        value = int.from_bytes(sorted([self.me.key, member.key])[0][:25] + member.key[:1])
        digits = f"{value % 10**60:060d}"
        return " ".join(digits[i : i + 5] for i in range(0, 60, 5))

    async def mark_verified(self, member: MemberView) -> None:
        self.verified.append(member.name)
        self._update(member.key, verified=True)

    async def unverify(self, member: MemberView) -> None:
        self.unverified.append(member.name)
        self._update(member.key, verified=False)

    async def rename(self, name: str) -> None:
        if not name or len(name) > 32:
            raise FakeRelayError("a name is 1 to 32 printable characters")
        self._replace_me(replace(self.me, name=name))

    def looks_like_invite(self, secret: str) -> bool:
        return secret.startswith(("ws://", "wss://")) and "#" in secret

    async def run(self, listener: ChatListener) -> None:
        self._listener = listener
        self.listening.set()
        await asyncio.Event().wait()  # events are pushed by the helpers below

    # ------------------------------------------------------------ scripting

    @property
    def listener(self) -> ChatListener:
        if self._listener is None:
            raise RuntimeError("the app has not started listening yet")
        return self._listener

    def member(self, name: str, **fields: object) -> FakeMember:
        """A member with a stable key and fingerprint (``fields`` override the rest)."""
        key = fake_key(name)
        return replace(FakeMember(key, name, fingerprint=fake_fingerprint(key)), **fields)  # type: ignore[arg-type]

    def add_room(
        self,
        name: str,
        *,
        secret: bool = False,
        password: str | None = None,
        description: str = "",
        members: Sequence[FakeMember] = (),
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
        sender: FakeMember,
        text: str,
        *,
        own: bool = False,
        at: datetime | None = None,
    ) -> FakeMessage:
        """Store a message in ``room`` without announcing it (history)."""
        self._seq += 1
        message = FakeMessage(
            text,
            sender,
            room,
            at or EPOCH + timedelta(minutes=self._seq),
            mentions_me=not own and f"@{self.me.name}" in text,
            own=own,
            seq=self._seq,
        )
        room.stored.append(message)
        return message

    def deliver(self, room: str, sender: str, text: str) -> FakeMessage:
        """A message from ``sender`` arrives in ``room`` now."""
        target = self.directory[room]
        member = next((m for m in target.member_list if m.name == sender), None)
        message = self.record(target, member or self.member(sender), text)
        self.listener.message_received(message)
        return message

    def arrive(self, room: str, member: FakeMember) -> None:
        target = self.directory[room]
        target.member_list.append(member)
        self.listener.member_joined(target, member)

    def validate(self, room: str, name: str) -> None:
        """``name`` proved the secret of ``room``: keys are now shared with it."""
        self._update(fake_key(name), validated=True)
        target = self.directory[room]
        self.listener.member_validated(
            target, next(m for m in target.member_list if m.name == name)
        )

    def depart(self, room: str, name: str) -> None:
        target = self.directory[room]
        member = next(m for m in target.member_list if m.name == name)
        target.member_list.remove(member)
        self.listener.member_left(target, member)

    def change_presence(self, name: str, status: str) -> None:
        self._update(fake_key(name), status=status)
        member = next(m for r in self.joined for m in r.member_list if m.name == name)
        self.listener.presence_changed(member)

    def change_connection(self, state: str, detail: str | None = None) -> None:
        self.state = state
        self.listener.connection_changed(state, detail)

    def _replace_me(self, me: FakeMember) -> None:
        for room in self.directory.values():
            room.member_list = [me if m.is_me else m for m in room.member_list]
        self.me = me

    def _update(self, key: bytes, **fields: object) -> None:
        for room in self.directory.values():
            room.member_list = [
                replace(m, **fields) if m.key == key else m  # type: ignore[arg-type]
                for m in room.member_list
            ]
