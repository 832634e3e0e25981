"""The relay's engine: where state is kept (a Store) and how frames reach connections (a Broker).

The shell (sessions, handlers, the send pipeline) decides nothing here and the engine
imports no shell module: handlers ask the directory, `apply` the change it returns
through the store, and write frames to the output port, which hands fan-out to the
broker. A backend is a Store and a Broker:

- single node (today): `MemoryStore` or `SqliteStore`, with `LocalBroker`, an index of
  this process's connections;
- many nodes: a store shared by every node, with a broker that delivers to its own
  connections and publishes each frame for the other nodes, which deliver it to theirs.

Contract of a Broker, for any implementation:

- Its methods are plain calls on the event loop's hot path, never awaited: a networked
  broker queues what it publishes and flushes it from its own task, in call order.
- ``attach``/``detach`` say whether the key just came online or went offline, which the
  relay announces as presence; across nodes that means "anywhere" (with node liveness:
  a node that dies must have its keys go offline within the keepalive window).
- ``joined``/``left`` change which connections get a room's traffic, on every node;
  ``enter`` lets a freshly authenticated connection receive its rooms' traffic.
- ``to_room``/``to_keys`` get each frame encoded once (``to_room_stored`` a room message
  that a shared store's append already handed to the other nodes); a broker passes the bytes
  unchanged to ``deliver`` (the shell's write, with its slow-consumer check) for its
  local connections, skipping ``skip``, and returns how many local connections it wrote
  to (the relay's fan-out counter).
- ``unavailable`` says why the relay cannot serve now (a networked broker that lost what
  the nodes share), or None; /healthz answers 503 with it.
"""

import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, Protocol, TypeVar

from e2echat.protocol import ErrorCode, ProtocolError
from e2echat_server.change import Change
from e2echat_server.connections import Connections
from e2echat_server.directory import PresenceStatus
from e2echat_server.logs import ThrottledEvent
from e2echat_server.metrics import Metrics
from e2echat_server.store import (
    LogMovedError,
    MemoryStore,
    RoomExistsError,
    SqliteStore,
    Store,
)

C = TypeVar("C")
C_contra = TypeVar("C_contra", contravariant=True)
_T = TypeVar("_T")
UNSAVED = "The relay could not save that; try again shortly."

# Write ``data`` to connections, skipping one; return how many were written to.
Deliver = Callable[[Iterable[C], bytes, C | None], int]


class Broker(Protocol[C_contra]):
    """Live traffic between connections, and who is online (see the module docstring)."""

    def attach(self, key: bytes, conn: C_contra) -> bool:
        """A connection of ``key`` authenticated: it gets directs; True if ``key`` came online."""
        ...

    def enter(self, conn: C_contra, rooms: Iterable[bytes]) -> None:
        """Start sending ``rooms``' traffic to ``conn`` (after its mailbox flush)."""
        ...

    def detach(self, key: bytes, conn: C_contra, rooms: Iterable[bytes]) -> bool:
        """A connection closed; True if it was ``key``'s last (``key`` went offline)."""
        ...

    def joined(self, room: bytes, key: bytes) -> None:
        """``key`` joined ``room``: its connections now get the room's traffic."""
        ...

    def left(self, room: bytes, key: bytes) -> None:
        """``key`` left ``room``: its connections no longer get the room's traffic."""
        ...

    def to_room(self, room: bytes, data: bytes, skip: C_contra | None = None) -> int:
        """Deliver ``data`` to every connection in ``room`` but ``skip``."""
        ...

    def to_room_stored(self, room: bytes, data: bytes, skip: C_contra | None = None) -> int:
        """Deliver a room message the store has just appended to this relay's connections
        in ``room`` but ``skip``: a shared store's append hands it to the other relays."""
        ...

    def to_keys(self, keys: Iterable[bytes], data: bytes) -> int:
        """Deliver ``data`` to every connection of each of ``keys``."""
        ...

    def presence(
        self, key: bytes, status: PresenceStatus, text: str | None, last_seen: int | None
    ) -> None:
        """``key``'s presence was announced (its peers get the frame through ``to_keys``):
        other relays keep it in their directories."""
        ...

    async def catch_up(self) -> None:
        """Return once this relay has applied what other relays published before the
        call (a room created there a moment ago); raise ProtocolError (unavailable) if it
        cannot tell within a bounded wait."""
        ...

    def on_taken(self, taken: Callable[[bytes], None]) -> None:
        """Call ``taken(key)`` when a newer connection of ``key`` authenticated on another
        relay: one identity, one live connection, across every relay of a cluster."""
        ...

    def unavailable(self) -> str | None:
        """Why the relay cannot serve now (it lost what it shares with other relays), or
        None: /healthz says it, so that a load balancer sends clients elsewhere."""
        ...

    async def close(self) -> None:
        """Stop delivering and release what the broker holds (subscriptions, sockets)."""
        ...


class LocalBroker(Generic[C]):
    """The single-node broker: every connection is in this process."""

    def __init__(self, deliver: Deliver[C]) -> None:
        self.connections: Connections[C] = Connections()
        self._deliver = deliver

    def attach(self, key: bytes, conn: C) -> bool:
        return self.connections.attach(key, conn)

    def enter(self, conn: C, rooms: Iterable[bytes]) -> None:
        self.connections.enter(conn, rooms)

    def detach(self, key: bytes, conn: C, rooms: Iterable[bytes]) -> bool:
        return self.connections.detach(key, conn, rooms)

    def joined(self, room: bytes, key: bytes) -> None:
        self.connections.join(room, key)

    def left(self, room: bytes, key: bytes) -> None:
        self.connections.leave(room, key)

    def to_room(self, room: bytes, data: bytes, skip: C | None = None) -> int:
        return self._deliver(self.connections.in_room(room), data, skip)

    def to_room_stored(self, room: bytes, data: bytes, skip: C | None = None) -> int:
        return self._deliver(self.connections.in_room(room), data, skip)

    def to_keys(self, keys: Iterable[bytes], data: bytes) -> int:
        return self._deliver(self.connections.of_keys(keys), data, None)

    def presence(
        self, key: bytes, status: PresenceStatus, text: str | None, last_seen: int | None
    ) -> None:
        """The directory already holds it: no other relay to tell."""

    async def catch_up(self) -> None:
        """One relay: there is no other to wait for."""

    def on_taken(self, taken: Callable[[bytes], None]) -> None:
        """One relay: no connection opens anywhere else."""

    def unavailable(self) -> str | None:
        """One relay: it serves while it runs (a failing store fails the requests)."""
        return None

    async def close(self) -> None:
        """Nothing to release: the connections close with the server."""


@dataclass(slots=True, eq=False)
class Engine(Generic[C]):
    """A store and a broker, and the one path every store call takes."""

    store: Store
    broker: Broker[C]
    metrics: Metrics
    # A store that is down fails every request: one line per operation per window.
    store_failures: ThrottledEvent = field(
        default_factory=lambda: ThrottledEvent("store_failed", logging.ERROR)
    )

    def store_failed(self, operation: str, error: str) -> None:
        """Log a failed store call, throttled per operation and error type: a second kind
        of failure while the first floods is news, and must not wait for its window."""
        self.store_failures.log(f"{operation} {error}", op=operation, error=error)

    async def call(self, operation: str, work: Awaitable[_T]) -> _T:
        """Await a store call, timing it; a failure becomes `unavailable` (and is logged)."""
        start = time.perf_counter()
        try:
            return await work
        except RoomExistsError:  # another relay sharing the store created it first
            raise ProtocolError(ErrorCode.NAME_TAKEN, "A room of that name exists.") from None
        except LogMovedError:  # the caller decides again on the log as it is now
            raise
        except Exception as exc:
            self.store_failed(operation, type(exc).__name__)
            raise ProtocolError(ErrorCode.UNAVAILABLE, UNSAVED) from None
        finally:
            self.metrics.observe_store(operation, time.perf_counter() - start)

    async def apply(self, change: Change) -> object:
        """Make a directory change durable and commit it, or undo it and raise `unavailable`
        (or the store's LogMovedError, for the caller to decide again).

        Returns the store's answer (a shared store's numbering of a direct, say).
        """
        try:
            stored = await self.call(change.operation, change.persist(self.store))
        except (ProtocolError, LogMovedError):
            change.undo()
            raise
        change.commit()
        return stored

    async def close(self) -> None:
        await self.broker.close()
        await self.store.close()


async def open_store(
    memory: bool,
    data_dir: Path,
    fsync: bool,
    *,
    create: bool = False,
    repair: bool = False,
    commit_window_s: float,
) -> Store:
    """The single-node store the settings ask for: in memory, or SQLite under ``data_dir``
    (locked; ``create``, ``repair`` and ``commit_window_s`` as in `SqliteStore.open`)."""
    if memory:
        return MemoryStore()
    synchronous = "FULL" if fsync else "NORMAL"
    return await SqliteStore.open(
        data_dir, synchronous, create=create, repair=repair, commit_window_s=commit_window_s
    )
