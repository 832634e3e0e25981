"""Events: everything besides messages that an application may want to show.

Each is a frozen dataclass deriving from ``Event``, so a handler can ``match`` on them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from e2echat.client.models import ConnectionState, Member

if TYPE_CHECKING:
    from e2echat.client.room import Room


@dataclass(frozen=True)
class Event:
    """Base class of every event."""


@dataclass(frozen=True)
class ConnectionChanged(Event):
    """The connection moved to ``state``; ``detail`` says why when there is a reason."""

    state: ConnectionState
    detail: str | None


@dataclass(frozen=True)
class MemberJoined(Event):
    """The relay announced a new member (a secret room shares keys only once it proves)."""

    room: Room
    member: Member


@dataclass(frozen=True)
class MemberValidated(Event):
    """We now share our keys with ``member``: it proved it knows the room secret (or the
    room is open). Messages we send from now on are readable by it."""

    room: Room
    member: Member


@dataclass(frozen=True)
class MemberLeft(Event):
    """A member left the room; we stopped sharing keys with it and rotated."""

    room: Room
    member: Member


@dataclass(frozen=True)
class PresenceChanged(Event):
    """A user who shares a room with us changed status."""

    member: Member


@dataclass(frozen=True)
class Undecryptable(Event):
    """A room message that was rejected or cannot be read: ``reason`` says why."""

    room: Room
    sender: Member | None
    seq: int
    reason: str


@dataclass(frozen=True)
class RoomJoined(Event):
    """We are now a member of ``room`` (created or joined; rooms restored from the store
    are in ``Client.rooms`` as soon as the client is connected)."""

    room: Room


@dataclass(frozen=True)
class RoomLeft(Event):
    """We left ``room``."""

    room: Room


@dataclass(frozen=True)
class Notice(Event):
    """A readable message for the user: a relay error that answered no request, etc."""

    text: str
