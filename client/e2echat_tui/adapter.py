"""``ChatBackend`` over the real library: ``e2echat.Client``, through its public API only.

The library's ``Room``, ``Member`` and ``Message`` objects already fit the TUI's views,
so they pass through untouched; this module only turns the event stream into
``ChatListener`` calls and implements ``/nick``, which the library has no call for:
the relay learns a name in ``hello``, so a new name means a new connection (same
identity, same store, so rooms and history carry over).
"""

import asyncio
from collections.abc import AsyncIterable, Callable, Sequence
from types import TracebackType
from typing import Self

from e2echat import (
    Client,
    ConnectionChanged,
    E2EChatError,
    Event,
    Member,
    MemberJoined,
    MemberLeft,
    MemberValidated,
    Message,
    Notice,
    PresenceChanged,
    Room,
    RoomJoined,
    RoomLeft,
    RoomSummary,
    Undecryptable,
)
from e2echat_tui.backend import ChatListener, MemberView

ClientFactory = Callable[[str], Client]


def _member(member: MemberView) -> Member:
    if not isinstance(member, Member):
        raise TypeError("a LibraryBackend only knows members that the library reported")
    return member


def dispatch(event: Event, listener: ChatListener) -> None:
    """Hand one library event to the matching listener method."""
    match event:
        case ConnectionChanged(state=state, detail=detail):
            listener.connection_changed(str(state), detail)
        case MemberJoined(room=room, member=member):
            listener.member_joined(room, member)
        case MemberValidated(room=room, member=member):
            listener.member_validated(room, member)
        case MemberLeft(room=room, member=member):
            listener.member_left(room, member)
        case PresenceChanged(member=member):
            listener.presence_changed(member)
        case Undecryptable(room=room, sender=sender, seq=seq, reason=reason):
            listener.undecryptable(room, sender, seq, reason)
        case RoomJoined(room=room):
            listener.room_joined(room)
        case RoomLeft(room=room):
            listener.room_left(room)
        case Notice(text=text):
            listener.notice(text)


class LibraryBackend:
    """A connected ``e2echat.Client`` as a ``ChatBackend``; use ``async with``.

    ``connect(name)`` builds a (not yet connected) client for a display name; it is
    called again by ``rename``.
    """

    expected_errors: tuple[type[Exception], ...] = (E2EChatError,)

    def __init__(self, connect: ClientFactory, name: str) -> None:
        self._connect = connect
        self._client = connect(name)
        self._reopened = asyncio.Event()
        self._retired: set[Client] = set()  # renamed away from: their closing is expected

    async def __aenter__(self) -> Self:
        self._subscribe()
        await self._client.connect()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._client.close()

    def _subscribe(self) -> None:
        # Subscribing before connecting: no message or event of this session is missed;
        # the app skips what it already loaded from history (by seq).
        self._events = self._client.events()
        self._messages = self._client.messages()

    @property
    def name(self) -> str:
        return self._client.name

    @property
    def fingerprint(self) -> str:
        return self._client.fingerprint

    @property
    def url(self) -> str:
        return self._client.url

    @property
    def state(self) -> str:
        return str(self._client.state)

    @property
    def rooms(self) -> list[Room]:
        return self._client.rooms

    async def create(self, name: str, password: str | None = None, *, secret: bool = False) -> Room:
        return await self._client.create(name, password, secret=secret)

    async def join(self, name: str, password: str | None = None, invite: str | None = None) -> Room:
        return await self._client.join(name, password, invite)

    async def list_rooms(self) -> Sequence[RoomSummary]:
        return await self._client.list_rooms()

    async def set_status(self, status: str, text: str | None = None) -> None:
        await self._client.set_status(status, text)

    def safety_number(self, member: MemberView) -> str:
        return self._client.safety_number(_member(member))

    async def mark_verified(self, member: MemberView) -> None:
        await self._client.mark_verified(_member(member))

    async def unverify(self, member: MemberView) -> None:
        await self._client.unverify(_member(member))

    @staticmethod
    def looks_like_invite(secret: str) -> bool:
        """Invites are ``ws(s)://relay/room#secret``; anything else is a password."""
        return secret.startswith(("ws://", "wss://")) and "#" in secret

    async def rename(self, name: str) -> None:
        """Reconnect under ``name``; if that fails, reconnect under the old name and raise."""
        old = self._client
        fresh = self._connect(name)  # validates the name before anything is closed
        self._retired.add(old)
        await old.close()
        self._client = fresh
        self._subscribe()
        try:
            await fresh.connect()
        except E2EChatError:
            self._client = self._connect(old.name)
            self._subscribe()
            await self._client.connect()
            raise
        finally:
            self._reopened.set()

    async def run(self, listener: ChatListener) -> None:
        """Pump events and messages; after a rename, carry on with the new connection."""
        while True:
            self._reopened.clear()
            events, messages = self._events, self._messages
            client = self._client
            async with asyncio.TaskGroup() as group:
                group.create_task(self._pump_events(client, events, listener))
                group.create_task(self._pump_messages(messages, listener))
            await self._reopened.wait()  # both streams ended: a rename, or the end

    async def _pump_events(
        self, client: Client, events: AsyncIterable[Event], listener: ChatListener
    ) -> None:
        async for event in events:
            if isinstance(event, ConnectionChanged) and client in self._retired:
                continue  # a renamed-away connection closing is not news: the new one is
            dispatch(event, listener)
        self._retired.discard(client)

    @staticmethod
    async def _pump_messages(
        messages: AsyncIterable[Message[Room]], listener: ChatListener
    ) -> None:
        async for message in messages:
            listener.message_received(message)
