"""The plain values the library hands to applications: members, messages, summaries.

They are frozen dataclasses so an application can keep, compare and hash them freely;
they hold no secrets (keys here are public keys) and message text only in ``text``,
which is left out of the repr so that logging a message never logs what it says. Reprs
show a key as its fingerprint, never as raw bytes.

A ``Message`` (like every room event) is generic in its ``room``: the engine makes it
with the room's id, and the client binds it to the ``Room`` handle before publishing,
so the core never builds or imports a shell object. Applications only ever see
``Message[Room]``.
"""

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar, cast

from e2echat.client.errors import InvalidInput

R = TypeVar("R")
"""What a value names its room by: the room id in the engine, the ``Room`` handle in
what applications receive."""
T = TypeVar("T")


class ConnectionState(StrEnum):
    """Where the connection to the relay stands."""

    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    CLOSED = "closed"


@dataclass(frozen=True)
class Member:
    """A room member as this client knows it.

    ``validated`` means we share our keys with it (an open room's member, or a secret
    room's member whose membership proof checked); ``verified`` means the user compared
    safety numbers and marked the key as verified.
    """

    key: bytes = field(repr=False)
    name: str
    status: str
    status_text: str | None
    fingerprint: str
    verified: bool
    validated: bool
    is_me: bool


class _Postable(Protocol):
    """A room handle that can post (the ``Room`` of a published message)."""

    async def send(self, text: str) -> Any: ...


@dataclass(frozen=True)
class FileInfo:
    """An encrypted file a message carries: ``name`` and ``media_type`` are the sender's
    labels (shown escaped, saved made safe). Like a message's text, the name is left
    out of the repr, and the key that opens the file is never shown."""

    name: str = field(repr=False)
    size: int
    media_type: str
    blob: bytes = field(repr=False)
    key: bytes = field(repr=False)
    hash: bytes = field(repr=False)


@dataclass(frozen=True)
class Message(Generic[R]):
    """A decrypted room message. ``sent_at`` is the relay's timestamp (UTC).

    ``file`` is set for a file message, whose ``text`` is its caption (maybe empty);
    fetch the file with ``await message.download(folder)``.
    """

    text: str = field(repr=False)
    sender: Member
    room: R
    mentions: tuple[Member, ...]
    mentions_me: bool
    seq: int
    sent_at: datetime
    own: bool
    file: FileInfo | None = None

    async def download(
        self,
        folder: "Path | None" = None,
        *,
        progress: "Callable[[int, int], object] | None" = None,
    ) -> "Path":
        """Fetch, check and save this message's file under ``folder`` (default: the
        platform's downloads folder), never replacing a file; returns the saved path.

        ``progress(done, total)`` is called as bytes arrive. Raises ``TransferError``.
        """
        room: Any = self.room
        if self.file is None or not hasattr(room, "download"):
            raise InvalidInput("This message carries no file.")
        path: Path = await room.download(self, folder, progress=progress)
        return path

    async def reply(self: "Message[_Postable]", text: str) -> "Message[Any]":
        """Answer in the same room, mentioning this message's sender (``mentions_me`` is
        True on their side), e.g. ``await msg.reply("4")`` sends ``@alice 4``."""
        sent: Message[Any] = await self.room.send(f"@{self.sender.name} {text}")
        return sent


def placed(message: Message[Any], room: T) -> Message[T]:
    """``message`` with its room named by ``room`` (the client binds its handles so)."""
    return cast("Message[T]", dataclasses.replace(message, room=room))


@dataclass(frozen=True)
class RoomSummary:
    """A listed room as anyone may see it before joining."""

    name: str
    secret: bool
    description: str
    member_count: int
