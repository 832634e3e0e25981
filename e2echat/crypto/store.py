"""Persistence of the crypto state behind a deliberately tiny key-value interface.

The crypto core never touches a database: it reads records with ``get``/``scan``
(``keys`` to count them) and hands every change of one operation to ``apply`` as a
batch, which the store must apply atomically (all or nothing). Values are opaque
msgpack bytes holding secrets; the client's SQLite store (issue 5) encrypts them at
rest. ``MemoryStore`` is the reference implementation used by the tests.
"""

from collections.abc import Sequence
from typing import NamedTuple, Protocol


class Write(NamedTuple):
    """Set ``space``/``key`` to ``value``, or delete it when ``value`` is None."""

    space: str
    key: bytes
    value: bytes | None

    def __repr__(self) -> str:
        # values are encoded records holding chain keys: never print them
        value = "None" if self.value is None else f"<{len(self.value)} bytes, redacted>"
        return f"Write(space={self.space!r}, key={self.key.hex()}, value={value})"


class CryptoStore(Protocol):
    """What the crypto core needs from a store. Spaces are short ASCII names."""

    def get(self, space: str, key: bytes) -> bytes | None:
        """The value at ``space``/``key``, or None."""
        ...

    def scan(self, space: str, prefix: bytes = b"") -> list[tuple[bytes, bytes]]:
        """Every ``(key, value)`` of ``space`` whose key starts with ``prefix``, by key order."""
        ...

    def keys(self, space: str, prefix: bytes = b"") -> list[bytes]:
        """The keys ``scan`` would return, without reading (or unsealing) a value."""
        ...

    def apply(self, writes: Sequence[Write]) -> None:
        """Apply every write, atomically."""
        ...


class MemoryStore:
    """An in-memory ``CryptoStore`` (tests, throwaway sessions)."""

    def __init__(self) -> None:
        self._data: dict[str, dict[bytes, bytes]] = {}

    def get(self, space: str, key: bytes) -> bytes | None:
        return self._data.get(space, {}).get(key)

    def scan(self, space: str, prefix: bytes = b"") -> list[tuple[bytes, bytes]]:
        items = self._data.get(space, {}).items()
        return sorted((k, v) for k, v in items if k.startswith(prefix))

    def keys(self, space: str, prefix: bytes = b"") -> list[bytes]:
        return sorted(k for k in self._data.get(space, {}) if k.startswith(prefix))

    def apply(self, writes: Sequence[Write]) -> None:
        for space, key, value in writes:
            bucket = self._data.setdefault(space, {})
            if value is None:
                bucket.pop(key, None)
            else:
                bucket[key] = value

    def snapshot(self) -> dict[str, dict[bytes, bytes]]:
        """A deep copy of the contents (tests compare states before and after)."""
        return {space: dict(bucket) for space, bucket in self._data.items() if bucket}

    def __repr__(self) -> str:
        return f"MemoryStore(spaces={sorted(self._data)})"
