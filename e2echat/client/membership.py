"""Public views of a room's membership log: signed entries as ``RoomChanged`` events.

The entries were validated by the crypto core (signatures, chain, the author's role);
this module only names what they say, in the terms of the library's API.
"""

from collections.abc import Callable

from e2echat.client import events as ev
from e2echat.client.models import Member
from e2echat.crypto.roomlog import Kind, LogEntry, Role

KIND_NAMES = {
    Kind.CREATE: "create",
    Kind.JOIN: "join",
    Kind.ADMIT: "admit",
    Kind.LEAVE: "leave",
    Kind.REMOVE: "kick",
    Kind.BAN: "ban",
    Kind.ROLE: "role",
    Kind.ROTATE: "rotate",
    Kind.DESCRIBE: "describe",
}
ROLE_NAMES = {Role.MEMBER: "member", Role.ADMIN: "admin", Role.OWNER: "owner"}
ROLES_BY_NAME = {name: role for role, name in ROLE_NAMES.items()}
_ABOUT_OTHERS = frozenset({Kind.ADMIT, Kind.REMOVE, Kind.BAN, Kind.ROLE})
"""Kinds whose subject is another key than the author."""


def room_changed(
    room_id: bytes, entry: LogEntry, member: Callable[[bytes], Member]
) -> "ev.RoomChanged[bytes]":
    """The public event of one validated entry; ``member`` names a key."""
    return ev.RoomChanged(
        room_id,
        KIND_NAMES[entry.kind],
        member(entry.author),
        member(entry.subject) if entry.kind in _ABOUT_OTHERS else None,
        ROLE_NAMES[entry.role] if entry.kind == Kind.ROLE else None,
        entry.epoch,
        entry.description if entry.kind in (Kind.CREATE, Kind.DESCRIBE) else None,
        entry.seq,
        entry.created,
    )
