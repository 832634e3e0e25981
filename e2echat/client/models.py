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
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar, cast

from e2echat.client.errors import InvalidInput
from e2echat.client.progress import Progress, Transfer

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


TAG_CHARS = 4
"""Hex digits of the fingerprint in a member's tag (``alice#9a92``)."""


def fingerprint_tag(fingerprint: str, chars: int = TAG_CHARS) -> str:
    """The first ``chars`` hex digits of a fingerprint: the tag that tells namesakes apart."""
    return fingerprint.replace(" ", "")[:chars]


@dataclass(frozen=True)
class Lookalike:
    """Another key whose name this member's name equals (``same_name``) or looks like
    (Unicode UTS #39 confusables: Cyrillic "a" for Latin "a", full-width letters...)."""

    key: bytes = field(repr=False)
    name: str
    fingerprint: str
    same_name: bool
    verified: bool
    """The other key is one the user verified: this member is "not the NAME you verified"."""


@dataclass(frozen=True)
class Predecessor:
    """The old key a member's key succeeds: a successor statement signed by both keys
    says it is the same person. ``verified`` means the user had verified the old key
    (and so the new key carries that verification)."""

    key: bytes = field(repr=False)
    name: str
    fingerprint: str
    verified: bool


@dataclass(frozen=True)
class Member:
    """A room member as this client knows it. An identity is its key; ``name`` is a label.

    ``validated`` means we share our keys with it (an open room's member, or a secret
    room's member whose membership proof checked); ``verified`` means the user compared
    safety numbers and marked this key as verified. ``name`` is the member's own name (the
    one its key signed, else the relay's); ``petname`` the user's own name for the key,
    shown instead (``display_name``). ``lookalikes`` lists the other keys whose names
    this one equals or resembles: show ``warning`` and the ``tag`` wherever it appears.
    """

    key: bytes = field(repr=False)
    name: str
    status: str
    status_text: str | None
    fingerprint: str
    verified: bool
    validated: bool
    is_me: bool
    petname: str | None = None
    lookalikes: tuple[Lookalike, ...] = ()
    mixed_script: bool = False
    """The name mixes letters of several scripts (as a Cyrillic "a" in "alice" would)."""
    predecessor: "Predecessor | None" = None
    """The key this one replaced by a checked successor statement (``identity rotate``)."""

    @property
    def display_name(self) -> str:
        """The user's petname for this key, else the member's own name."""
        return self.petname if self.petname is not None else self.name

    @property
    def tag(self) -> str:
        """The fingerprint's first hex digits: ``name#tag`` names one key."""
        return fingerprint_tag(self.fingerprint)

    @property
    def warning(self) -> str | None:
        """What to say next to this member's name, if it could pass for someone else's."""
        if not self.lookalikes:
            return "mixed scripts in the name" if self.mixed_script else None
        first = self.lookalikes[0]
        other = f"{first.name}#{fingerprint_tag(first.fingerprint)}"
        kind = "same name as" if first.same_name else "looks like"
        if first.verified and not self.verified:  # a key verified too is not an impostor
            return f"not the {first.name} you verified ({kind} {other})"
        return f"{kind} {other}"


class _Postable(Protocol):
    """A room handle that can post (the ``Room`` of a published message)."""

    async def send(self, text: str, *, reply_to: Any = None) -> Any: ...

    async def edit(self, message: Any, text: str) -> None: ...

    async def delete(self, message: Any) -> None: ...

    async def react(self, message: Any, emoji: str, add: bool = True) -> None: ...

    async def versions(self, message: Any) -> list["Version"]: ...


@dataclass(frozen=True)
class Quote:
    """The message a reply answers, as this client holds it.

    ``available`` is False when the original is not here (before our time, expired, not
    decrypted yet): then only ``id`` is known. A deleted original has no text.
    """

    id: bytes = field(repr=False)
    available: bool
    sender: Member | None = None
    excerpt: str = field(default="", repr=False)
    """The first line of the original's newest version, at most 80 characters."""
    seq: int = 0
    deleted: bool = False


@dataclass(frozen=True)
class Reaction:
    """One emoji under a message and who holds it."""

    emoji: str
    members: tuple[Member, ...]

    @property
    def count(self) -> int:
        return len(self.members)


@dataclass(frozen=True)
class Version:
    """One version of an edited message: the original first, then each edit."""

    text: str = field(repr=False)
    sent_at: datetime


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

    ``id`` is its signed name (empty until the relay confirmed our own message). An
    ``edited`` message shows its newest version in ``text``; a ``deleted`` one has no
    text; ``unsupported`` names the kind of a message this version cannot show.

    ``send_id`` numbers our own message as this client sent it (unique in the store):
    the message ``send`` returned and the one of its ``MessageSent`` (or the
    ``SendFailed`` that ends it) carry the same; 0 for others' messages and for history.
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
    id: bytes = field(default=b"", repr=False)
    reply_to: Quote | None = None
    edited: bool = False
    deleted: bool = False
    reactions: tuple[Reaction, ...] = ()
    unsupported: str | None = None
    send_id: int = 0
    live: bool = False
    """True for a message published as it came: sent after this client connected (or
    joined the room), or our own. False for backlog, what the relay already held (a
    bot's ``Client(skip_backlog=True)`` leaves it out), and for history and search."""

    def download(
        self,
        folder: Path | None = None,
        *,
        progress: Progress | None = None,
    ) -> Transfer[Path]:
        """Fetch, check and save this message's file under ``folder`` (default: the
        platform's downloads folder), never replacing a file.

        Returns a running ``Transfer``: ``await`` it for the saved path, iterate it (or
        pass ``progress``) for ``TransferProgress``, ``cancel()`` it to stop and remove
        what was written. Raises ``TransferError``.
        """
        room: Any = self.room
        if self.file is None or not hasattr(room, "download"):
            raise InvalidInput("This message carries no file.")
        transfer: Transfer[Path] = room.download(self, folder, progress=progress)
        return transfer

    async def reply(self: "Message[_Postable]", text: str) -> "Message[Any]":
        """Answer this message in its room: the reply quotes it and mentions its sender
        (``mentions_me`` is True on their side), e.g. ``await msg.reply("4")``."""
        sent: Message[Any] = await self.room.send(text, reply_to=self)
        return sent

    async def edit(self: "Message[_Postable]", text: str) -> None:
        """Replace the text of our own message (every member sees "(edited)")."""
        await self.room.edit(self, text)

    async def delete(self: "Message[_Postable]") -> None:
        """Delete our own message: every member drops its text, the relay its copy."""
        await self.room.delete(self)

    async def react(self: "Message[_Postable]", emoji: str) -> None:
        """Add our ``emoji`` reaction (one emoji: ``InvalidReaction`` otherwise)."""
        await self.room.react(self, emoji)

    async def unreact(self: "Message[_Postable]", emoji: str) -> None:
        """Withdraw our ``emoji`` reaction."""
        await self.room.react(self, emoji, add=False)

    async def versions(self: "Message[_Postable]") -> list[Version]:
        """Every version of this message, the original first (one if never edited)."""
        return await self.room.versions(self)


def key_of(member: Member | bytes) -> bytes:
    """The public key ``member`` names: a ``Member``'s, or a 32-byte key as given.

    Anything else raises ``InvalidInput`` (a name is not a key: namesakes are other
    people), so an action on a member is refused before any I/O.
    """
    if isinstance(member, Member):
        return member.key
    if isinstance(member, bytes) and len(member) == 32:
        return member
    if isinstance(member, bytes):
        raise InvalidInput(
            f"A member is a Member or a 32-byte public key, not {len(member)} bytes."
        )
    raise InvalidInput(
        f"A member is a Member or a 32-byte public key, not {type(member).__name__}."
    )


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
