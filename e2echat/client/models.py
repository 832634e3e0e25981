"""The plain values the library hands to applications: members, messages, summaries.

They are frozen dataclasses so an application can keep, compare and hash them freely;
they hold no secrets (keys here are public keys) and message text only in ``text``,
which is left out of the repr so that logging a message never logs what it says. Reprs
show a key as its fingerprint, never as raw bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from e2echat.client.room import Room


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


@dataclass(frozen=True)
class Message:
    """A decrypted room message. ``sent_at`` is the relay's timestamp (UTC)."""

    text: str = field(repr=False)
    sender: Member
    room: Room
    mentions: tuple[Member, ...]
    mentions_me: bool
    seq: int
    sent_at: datetime
    own: bool


@dataclass(frozen=True)
class RoomSummary:
    """A listed room as anyone may see it before joining."""

    name: str
    secret: bool
    description: str
    member_count: int
