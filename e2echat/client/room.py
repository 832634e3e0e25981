"""``Room``: a handle on one joined room; reads are local, the async methods do I/O.

A handle reads the engine's ``RoomState`` (whose roster snapshot is replaced, never
mutated) and does its I/O through ``RoomOps``, which the client implements: the handle
depends on no client module, so nothing imports in a circle.
"""

from pathlib import Path
from typing import Protocol

from e2echat.client.errors import WrongAccess
from e2echat.client.models import Member, Message
from e2echat.client.roomstate import RoomState
from e2echat.client.transfer import Progress
from e2echat.crypto.roomsecret import Invite, RoomSecret


class RoomOps(Protocol):
    """What a room handle asks of the client."""

    url: str

    async def _send(self, room: "Room", text: str) -> Message["Room"]: ...

    async def _members(self, room: "Room") -> list[Member]: ...

    async def _leave(self, room: "Room") -> None: ...

    async def _history(self, room: "Room", limit: int) -> list[Message["Room"]]: ...

    async def _send_file(
        self, room: "Room", path: Path, caption: str, progress: Progress | None
    ) -> Message["Room"]: ...

    async def _download(
        self,
        room: "Room",
        message: Message["Room"],
        folder: Path | None,
        progress: Progress | None,
    ) -> Path: ...


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

    async def send_file(
        self, path: str | Path, *, caption: str = "", progress: Progress | None = None
    ) -> Message["Room"]:
        """Encrypt a file under a fresh key, upload it, then send the message that carries
        its key, name and hash (the relay sees none of them). Returns the message.

        ``progress(done, total)`` is called as blob bytes go out. A dropped connection
        resumes the upload; a file that cannot be read, or changes while it is read, is
        a ``TransferError`` and nothing is sent.
        """
        return await self._client._send_file(self, Path(path), caption, progress)

    async def download(
        self,
        message: Message["Room"],
        folder: str | Path | None = None,
        *,
        progress: Progress | None = None,
    ) -> Path:
        """Fetch, check and save ``message``'s file (see ``Message.download``)."""
        target = Path(folder) if folder is not None else None
        return await self._client._download(self, message, target, progress)

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
