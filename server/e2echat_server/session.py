"""What the relay knows about one WebSocket connection while it is open."""

import asyncio
from dataclasses import dataclass
from weakref import WeakKeyDictionary

from websockets.asyncio.server import ServerConnection

from e2echat_server.ratelimit import ConnectionLimiter, TokenBucket


class AbuseError(Exception):
    """The connection keeps misbehaving: close it with 4429."""


class SlowConsumerError(Exception):
    """The client did not read a bulk reply in time: its connection was aborted."""


@dataclass(slots=True, eq=False)
class Session:
    """One WebSocket connection: its peer, its pace, its key once authenticated."""

    conn: ServerConnection
    ip: str
    limiter: ConnectionLimiter
    started: float
    key: bytes = b""
    frames_in: int = 0
    errors: int = 0
    inflight: int = 0  # pipelined sends not yet acknowledged
    drained: asyncio.Future[None] | None = None  # set when ``inflight`` falls to 0
    signals: TokenBucket | None = None  # the budget of ephemeral frames, from the first
    shares: TokenBucket | None = None  # the budget of `directs` envelopes, from the first


# The client address of each connection, resolved from its request (see proxies.py).
_clients: WeakKeyDictionary[ServerConnection, str] = WeakKeyDictionary()
# The address a trusted load balancer's PROXY header gave (see proxied.py).
_proxied: WeakKeyDictionary[ServerConnection, str] = WeakKeyDictionary()


def remote(conn: ServerConnection) -> str:
    """The TCP peer's address (a proxy's, behind one), or the address a trusted load
    balancer's PROXY header gave for it."""
    found = _proxied.get(conn)
    if found is not None:
        return found
    address = conn.remote_address
    return str(address[0]) if address else "-"


def remember_proxied(conn: ServerConnection, address: str) -> None:
    """Record the client address a trusted PROXY header named."""
    _proxied[conn] = address


def remember_client(conn: ServerConnection, address: str) -> None:
    """Record the client address found in the connection's request headers."""
    _clients[conn] = address


def peer(conn: ServerConnection) -> str:
    """The connection's client address, for limits and logs: the TCP peer, or the client
    a trusted proxy named for it."""
    return _clients.get(conn) or remote(conn)
