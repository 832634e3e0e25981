"""What the relay knows about one WebSocket connection while it is open."""

import asyncio
from dataclasses import dataclass

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


def peer(conn: ServerConnection) -> str:
    """The connection's remote address, for limits and logs."""
    address = conn.remote_address
    return str(address[0]) if address else "-"
