"""A malicious relay for tests: a WebSocket proxy that can rewrite what the relay says.

It sits between one client and the real relay, decodes every relay-to-client frame and
passes it through ``rewrite`` (which returns the frames to deliver instead: none, the
same, altered, duplicated, or extra ones), and records every client-to-relay frame so a
test can check what a client sent (for example: no key share to a ghost member); those
``withhold`` picks never reach the relay.
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.typing import Subprotocol

from e2echat.protocol import (
    SUBPROTOCOL,
    ClientFrame,
    DirectSend,
    DirectsSend,
    RelayFrame,
    decode_client_frame,
    decode_relay_frame,
    encode_frame,
)

Rewrite = Callable[[RelayFrame], list[RelayFrame]]


class EvilProxy:
    """Forwards to ``upstream``; ``rewrite`` may be replaced at any time by the test."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.rewrite: Rewrite = lambda frame: [frame]
        self.withhold: Callable[[ClientFrame], bool] = lambda frame: False
        """Client frames for which this is true are recorded but never reach the relay."""
        self.sent: list[ClientFrame] = []
        self._clients: list[ServerConnection] = []
        self.accepted = 0
        """Connections accepted so far (a client that reconnects counts again)."""
        self.url = ""

    def directs_to(self, key: bytes, since: int = 0) -> list[bytes]:
        """The envelopes the client sent ``key`` (singly or in a batch) from frame
        ``since`` on."""
        bodies = []
        for frame in self.sent[since:]:
            if isinstance(frame, DirectSend) and frame.to == key:
                bodies.append(frame.body)
            elif isinstance(frame, DirectsSend):
                bodies += [item.body for item in frame.items if item.to == key]
        return bodies

    async def inject(self, frame: RelayFrame) -> None:
        """Send ``frame`` to every connected client as if the relay had said it."""
        for conn in self._clients:
            await conn.send(encode_frame(frame), text=True)

    async def inject_raw(self, text: str) -> None:
        """Send ``text`` to every connected client as a frame, however malformed."""
        for conn in self._clients:
            await conn.send(text, text=True)

    async def close_all(self) -> None:
        """Drop every client connection, as a relay going away would."""
        for conn in list(self._clients):
            await conn.close()

    async def _handle(self, downstream: ServerConnection) -> None:
        self._clients.append(downstream)
        self.accepted += 1
        try:
            protocols = [Subprotocol(SUBPROTOCOL)]
            async with connect(self.upstream, subprotocols=protocols, compression=None) as upstream:

                async def up() -> None:
                    async for raw in downstream:
                        frame = decode_client_frame(raw)
                        self.sent.append(frame)
                        if not self.withhold(frame):
                            await upstream.send(raw, text=True)

                async def down() -> None:
                    async for raw in upstream:
                        for frame in self.rewrite(decode_relay_frame(raw)):
                            await downstream.send(encode_frame(frame), text=True)

                tasks = [asyncio.create_task(up()), asyncio.create_task(down())]
                await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                for task in tasks:
                    task.cancel()
        finally:
            self._clients.remove(downstream)


@contextlib.asynccontextmanager
async def evil_proxy(upstream: str) -> AsyncIterator[EvilProxy]:
    """Run an ``EvilProxy`` on a free loopback port."""
    proxy = EvilProxy(upstream)
    async with serve(
        proxy._handle,
        "127.0.0.1",
        0,
        subprotocols=[Subprotocol(SUBPROTOCOL)],
        compression=None,
    ) as server:
        port = server.sockets[0].getsockname()[1] if server.sockets else 0
        proxy.url = f"ws://127.0.0.1:{port}/"
        yield proxy
