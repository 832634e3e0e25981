"""Rooms' membership-log entries, kept encoded: every joiner fetches a room's whole log,
and an entry never changes once stored (its position is its own, in every store), so
each is encoded once instead of once per joiner, and its page is read from memory.

What is kept is a prefix of each room's log, as the store gave it or as this relay
appended it; a page the prefix does not hold in full comes from the store (with relays
sharing a store, the log may have grown elsewhere). Memory is bounded: past
``max_bytes`` the rooms read least recently are dropped whole (a deleted room's entries
too, in time: room ids are never reused, and its members are gone, so none is served).
"""

from collections import OrderedDict
from typing import cast

import msgspec

from e2echat.protocol import LogEntries

_ENCODER = msgspec.json.Encoder()
MAX_BYTES = 64 << 20
"""Encoded entries kept, at most, in bytes (about 190,000 entries of a few hundred bytes)."""


class LogPages:
    """Encoded log entries by room and position (see the module's docstring)."""

    def __init__(self, max_bytes: int = MAX_BYTES) -> None:
        self._max_bytes = max_bytes
        self._bytes = 0
        self._rooms: OrderedDict[bytes, list[bytes]] = OrderedDict()

    def page(self, room: bytes, after: int, limit: int, request: str | None) -> LogEntries | None:
        """The reply of ``limit`` entries from ``after`` on, if all of them are held (its
        entries already encoded: for encoding, not for reading); else None."""
        held = self._rooms.get(room)
        if held is None or after + limit > len(held):
            return None
        self._rooms.move_to_end(room)
        listed = msgspec.Raw(b"[" + b",".join(held[after : after + limit]) + b"]")
        return LogEntries(room=room, start=after, entries=cast(list[bytes], listed), id=request)

    def add(self, room: bytes, start: int, entries: list[bytes]) -> None:
        """``room``'s stored entries from position ``start`` on; kept where they extend
        the held prefix."""
        held = self._rooms.setdefault(room, [])
        self._rooms.move_to_end(room)
        new = entries[len(held) - start :] if start <= len(held) else []
        for entry in new:
            encoded = _ENCODER.encode(entry)
            held.append(encoded)
            self._bytes += len(encoded)
        while self._bytes > self._max_bytes and self._rooms:
            _, dropped = self._rooms.popitem(last=False)
            self._bytes -= sum(len(encoded) for encoded in dropped)
