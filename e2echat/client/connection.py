"""The transport: one WebSocket link to the relay, frames in and out, paced.

``Connection`` knows frames and bytes, nothing of chat: a ``websockets`` client
connection with subprotocol ``e2echat.v1`` and no compression, decoding of what
arrives, and pacing of what leaves. The driver dials it, runs the handshake over it,
and decides what each frame means.
"""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import websockets
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

from e2echat.client.errors import ConnectError
from e2echat.client.pacing import TokenBucket
from e2echat.protocol import (
    HANDSHAKE_TIMEOUT_S,
    MAX_RELAY_FRAME,
    SUBPROTOCOL,
    ClientFrame,
    ProtocolError,
    RelayFrame,
    decode_relay_frame,
    encode_frame,
)

log = logging.getLogger("e2echat")


class FrameRefusedError(ConnectError):
    """A frame from the relay that does not decode (a newer relay, or a broken one)."""


class Connection:
    """One open link. Sends are paced by a ``TokenBucket`` shared across links."""

    def __init__(self, ws: ClientConnection, pacer: TokenBucket) -> None:
        self._ws = ws
        self._pacer = pacer
        self._send_lock = asyncio.Lock()
        self.open = True
        """False once the link closed (sends are then dropped)."""

    @classmethod
    @asynccontextmanager
    async def dial(cls, url: str, pacer: TokenBucket) -> AsyncIterator["Connection"]:
        """Open a link to ``url``; it is closed when the block exits."""
        async with connect(
            url,
            subprotocols=[Subprotocol(SUBPROTOCOL)],
            compression=None,
            max_size=MAX_RELAY_FRAME,
            open_timeout=HANDSHAKE_TIMEOUT_S,
        ) as ws:
            link = cls(ws, pacer)
            try:
                yield link
            finally:
                link.open = False

    async def recv(self) -> RelayFrame:
        """The next frame; ``FrameRefusedError`` if it does not decode, ``ConnectionClosed``
        when the link closed."""
        return decode(await self._ws.recv())

    async def frames(self) -> AsyncIterator[RelayFrame | FrameRefusedError]:
        """Every frame until the link closes; a frame that does not decode is yielded as
        its error, never fatal (protocol.md §10: a newer relay may send frames this
        client does not know)."""
        async for raw in self._ws:
            try:
                yield decode(raw)
            except FrameRefusedError as exc:
                yield exc

    async def send(self, frames: Sequence[ClientFrame]) -> None:
        """Send ``frames`` in order, paced; once the link is closed the rest are dropped
        (the engine re-creates what matters on the next link)."""
        if not frames:
            return
        async with self._send_lock:
            for frame in frames:
                if not self.open:
                    return
                delay = self._pacer.delay(asyncio.get_running_loop().time())
                if delay:
                    await asyncio.sleep(delay)
                try:
                    await self._ws.send(encode_frame(frame), text=True)
                except websockets.ConnectionClosed:
                    self.open = False

    @property
    def close_code(self) -> int | None:
        """The close code the relay sent, once the link closed (None before, or none sent)."""
        return self._ws.close_code

    @property
    def close_reason(self) -> str:
        return self._ws.close_reason or ""

    async def close(self) -> None:
        """Close the link (the reader then sees it end)."""
        with contextlib.suppress(websockets.WebSocketException):
            await self._ws.close()


def decode(raw: str | bytes) -> RelayFrame:
    """A relay frame from its wire text; ``FrameRefusedError`` if it is not one."""
    try:
        return decode_relay_frame(raw)
    except ProtocolError as exc:
        raise FrameRefusedError(
            f"The relay sent a frame this client refuses: {exc.message}"
        ) from None
