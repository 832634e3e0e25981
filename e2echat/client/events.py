"""Events: everything besides messages that an application may want to show.

Each is a frozen dataclass deriving from ``Event``, so a handler can ``match`` on them.
Events about one room derive from ``RoomEvent``: like ``Message`` they are generic in
``room`` (the engine names the room by id, the client binds the ``Room`` handle before
publishing, see ``models``), so a new kind of room event needs no code in the client.
"""

from dataclasses import dataclass
from typing import Generic

from e2echat.client.models import ConnectionState, Member, R


@dataclass(frozen=True)
class Event:
    """Base class of every event."""


@dataclass(frozen=True)
class RoomEvent(Event, Generic[R]):
    """Base class of the events about one room."""

    room: R


@dataclass(frozen=True)
class ConnectionChanged(Event):
    """The connection moved to ``state``; ``detail`` says why when there is a reason."""

    state: ConnectionState
    detail: str | None


@dataclass(frozen=True)
class MemberJoined(RoomEvent[R]):
    """The relay announced a new member (a secret room shares keys only once it proves)."""

    member: Member


@dataclass(frozen=True)
class MemberValidated(RoomEvent[R]):
    """We now share our keys with ``member``: it proved it knows the room secret (or the
    room is open). Messages we send from now on are readable by it."""

    member: Member


@dataclass(frozen=True)
class MemberLeft(RoomEvent[R]):
    """A member left the room; we stopped sharing keys with it and rotated."""

    member: Member


@dataclass(frozen=True)
class PresenceChanged(Event):
    """A user who shares a room with us changed status."""

    member: Member


@dataclass(frozen=True)
class Undecryptable(RoomEvent[R]):
    """A room message that was rejected or cannot be read: ``reason`` says why."""

    sender: Member | None
    seq: int
    reason: str


@dataclass(frozen=True)
class RoomJoined(RoomEvent[R]):
    """We are now a member of ``room`` (created or joined; rooms restored from the store
    are in ``Client.rooms`` as soon as the client is connected)."""


@dataclass(frozen=True)
class RoomLeft(RoomEvent[R]):
    """We left ``room``."""


@dataclass(frozen=True)
class Notice(Event):
    """A readable message for the user: a relay error that answered no request, etc."""

    text: str
