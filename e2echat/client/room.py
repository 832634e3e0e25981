"""``Room``: a handle on one joined room; reads are local, the async methods do I/O.

A handle reads the engine's ``RoomState`` (whose roster snapshot is replaced, never
mutated) and does its I/O through ``RoomOps``, which the client implements: the handle
depends on no client module, so nothing imports in a circle.
"""

from typing import Protocol

from e2echat.client.errors import WrongAccess
from e2echat.client.models import Member, Message
from e2echat.client.roomstate import RoomState
from e2echat.crypto.roomsecret import Invite, RoomSecret


class RoomOps(Protocol):
    """What a room handle asks of the client."""

    url: str

    async def _send(self, room: "Room", text: str) -> Message["Room"]: ...

    async def _members(self, room: "Room") -> list[Member]: ...

    async def _leave(self, room: "Room") -> None: ...

    async def _history(self, room: "Room", limit: int) -> list[Message["Room"]]: ...


class Room:
    """A room we joined. Get it from ``Client.create``, ``Client.join`` or ``Client.rooms``.

    ``secret`` is False for an open room: anyone the relay admits can read new messages.
    """

    def __init__(self, client: RoomOps, state: RoomState) -> None:
        self._client = client
        self._state = state

    @property
    def id(self) -> bytes:
        """The relay-assigned 16-byte room id."""
        return self._state.record.id

    @property
    def name(self) -> str:
        """The room's name on the relay (unique there)."""
        return self._state.record.name

    @property
    def description(self) -> str:
        """The description given at creation."""
        return self._state.record.description

    @property
    def secret(self) -> bool:
        """True for password and invite rooms; False for open rooms."""
        return self._state.record.access != "open"

    @property
    def last_seq(self) -> int:
        """Every message up to this room seq has been processed."""
        return self._state.sync.floor

    @property
    def member_list(self) -> list[Member]:
        """The members as last known (no I/O); ``members()`` asks the relay."""
        return list(self._state.member_list)

    @property
    def joined(self) -> bool:
        """False once we left the room."""
        return self._state.joined

    async def send(self, text: str) -> Message["Room"]:
        """Encrypt and send ``text``; ``@name`` mentions of members are resolved.

        Offline, the message waits in the outbox and goes out in order on reconnect;
        the returned message then has ``seq`` 0.
        """
        return await self._client._send(self, text)

    async def members(self) -> list[Member]:
        """The member list, fresh from the relay."""
        return await self._client._members(self)

    async def leave(self) -> None:
        """Leave the room; its keys and history are deleted from this device."""
        await self._client._leave(self)

    async def history(self, limit: int = 100) -> list[Message["Room"]]:
        """The last ``limit`` messages from the local store, oldest first."""
        return await self._client._history(self, limit)

    def invite(self) -> str:
        """The invite string of an invite room (anyone holding it can join and read)."""
        record = self._state.record
        if record.access != "invite" or record.secret is None:
            raise WrongAccess(f"room {record.name!r} is not an invite room: it has no invite")
        return str(Invite(self._client.url, record.name, RoomSecret(record.secret)))

    def __repr__(self) -> str:
        kind = self._state.record.access
        return f"Room(name={self.name!r}, {kind}, members={len(self._state.member_list)})"
