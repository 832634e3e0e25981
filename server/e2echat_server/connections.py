"""Live connections by key and by room: who gets which traffic. Pure and generic.

Fan-out reads ``in_room`` on every message, so the relay keeps that set ready rather
than walking a room's members and looking up their connections each time.
"""

from collections.abc import Container, Iterable, Iterator, Sized
from collections.abc import Set as AbstractSet
from typing import Generic, Protocol, TypeVar

C = TypeVar("C")


class Keyed(Container[bytes], Sized, Iterable[bytes], Protocol):
    """What ``among`` walks from either side: a set of keys, or a dict by key."""


def among(keys: Iterable[bytes], present: Keyed) -> Iterator[bytes]:
    """The keys of ``keys`` that ``present`` holds, walking the smaller side: a presence
    change goes to every peer of a key, thousands in a large room, of whom a few are
    online (on this relay, or on another)."""
    if isinstance(keys, AbstractSet) and len(keys) > len(present):
        return (key for key in present if key in keys)
    return (key for key in keys if key in present)


_EMPTY: frozenset[object] = frozenset()


class Connections(Generic[C]):
    """Live connections by key and by room."""

    def __init__(self) -> None:
        self._by_key: dict[bytes, set[C]] = {}
        self._by_room: dict[bytes, set[C]] = {}

    def attach(self, key: bytes, conn: C) -> bool:
        """Add a connection of ``key`` (it receives directs); True if the key just came online.

        It receives no room traffic until ``enter`` (the relay flushes the mailbox first).
        """
        conns = self._by_key.setdefault(key, set())
        first = not conns
        conns.add(conn)
        return first

    def enter(self, conn: C, rooms: Iterable[bytes]) -> None:
        """Start sending ``rooms``' traffic to ``conn``."""
        for room in rooms:
            self._by_room.setdefault(room, set()).add(conn)

    def detach(self, key: bytes, conn: C, rooms: Iterable[bytes]) -> bool:
        """Remove a connection; True if it was the key's last one (it went offline)."""
        conns = self._by_key.get(key)
        if conns is None or conn not in conns:
            return False
        conns.discard(conn)
        for room in rooms:
            self._discard(room, conn)
        if conns:
            return False
        del self._by_key[key]
        return True

    def online_keys(self) -> list[bytes]:
        """The keys with a live connection."""
        return list(self._by_key)

    def join(self, room: bytes, key: bytes) -> None:
        """``key`` joined ``room``: its live connections now receive the room's traffic."""
        conns = self._by_key.get(key)
        if conns:
            self._by_room.setdefault(room, set()).update(conns)

    def leave(self, room: bytes, key: bytes) -> None:
        for conn in self._by_key.get(key, ()):
            self._discard(room, conn)

    def _discard(self, room: bytes, conn: C) -> None:
        members = self._by_room.get(room)
        if members is not None:
            members.discard(conn)
            if not members:
                del self._by_room[room]

    def of(self, key: bytes) -> set[C] | frozenset[C]:
        return self._by_key.get(key) or _EMPTY  # type: ignore[return-value]

    def of_keys(self, keys: Iterable[bytes]) -> set[C]:
        """Every live connection of ``keys`` (``among`` the keys connected)."""
        found: set[C] = set()
        for key in among(keys, self._by_key):
            found.update(self._by_key[key])
        return found

    def in_room(self, room: bytes) -> set[C] | frozenset[C]:
        return self._by_room.get(room) or _EMPTY  # type: ignore[return-value]

    def online(self, key: bytes) -> bool:
        return key in self._by_key
