"""The transport: one WebSocket link to the relay, frames in and out, paced.

``Connection`` knows frames and bytes, nothing of chat: a ``websockets`` client
connection with subprotocol ``e2echat.v1`` and no compression, decoding of what
arrives, and pacing of what leaves. The driver dials it, runs the handshake over it,
and decides what each frame means.
"""

import asyncio
import contextlib
import logging
import ssl
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import websockets
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

from e2echat.client.errors import ConnectError, InvalidInput
from e2echat.client.pacing import TokenBucket
from e2echat.client.tasks import cancel_and_wait
from e2echat.protocol import (
    HANDSHAKE_TIMEOUT_S,
    MAX_RELAY_FRAME,
    SUBPROTOCOL,
    ClientFrame,
    CloseCode,
    DirectsSend,
    ProtocolError,
    RelayFrame,
    decode_relay_frame,
    encode_frame,
)

log = logging.getLogger("e2echat")
CLOSE_TIMEOUT_S = 2.0
"""How long a close waits for the relay's answering close frame."""
TLS_PROBE_TIMEOUT_S = 2.0
BATCH_LIMIT = 500
"""At most this many frames are handed on in one list (``Connection.batches``)."""
READ_AHEAD = 2000
"""Frames read off the socket ahead of their handling, at most."""
TlsOption = ssl.SSLContext | Path | str | None
"""``Client(ssl=...)``: a context, or the path of a CA file (PEM) to trust."""


def tls_context(option: TlsOption) -> ssl.SSLContext | None:
    """The ``SSLContext`` for ``wss://`` URLs (None: the system's default trust).

    A CA file is read at once, so a wrong path is refused before any I/O.
    """
    if option is None or isinstance(option, ssl.SSLContext):
        return option
    if not isinstance(option, str | Path):
        raise TypeError(f"ssl= takes an SSLContext or a CA file path, not {option!r}")
    try:
        return ssl.create_default_context(cafile=str(option))
    except (OSError, ssl.SSLError) as exc:
        raise InvalidInput(f"cannot use {option} as a CA file: {exc}") from None


@dataclass(frozen=True)
class _End:
    """The link closed; ``error`` is how, unless it closed normally."""

    error: websockets.ConnectionClosed | None


class FrameRefusedError(ConnectError):
    """A frame from the relay that does not decode (a newer relay, or a broken one)."""


class Connection:
    """One open link. Sends are paced by a ``TokenBucket`` shared across links."""

    def __init__(self, ws: ClientConnection, pacer: TokenBucket) -> None:
        self._ws = ws
        self._pacer = pacer
        self.share_pacer: TokenBucket | None = None
        """The relay's announced budget of ``directs`` envelopes (set from its challenge)."""
        self._send_lock = asyncio.Lock()
        self.open = True
        """False once the link closed (sends are then dropped)."""
        self.leaving_code = CloseCode.NORMAL
        """The close code we send when the block exits: 1001 when the program stops."""

    @classmethod
    @asynccontextmanager
    async def dial(
        cls, url: str, pacer: TokenBucket, tls: ssl.SSLContext | None = None
    ) -> AsyncIterator["Connection"]:
        """Open a link to ``url``; it is closed when the block exits, with
        ``leaving_code`` whatever ended the block (websockets' own context manager
        would send 1011, an internal error, when a cancellation ends it)."""
        try:
            ws = await connect(
                url,
                subprotocols=[Subprotocol(SUBPROTOCOL)],
                compression=None,
                max_size=MAX_RELAY_FRAME,
                open_timeout=HANDSHAKE_TIMEOUT_S,
                close_timeout=CLOSE_TIMEOUT_S,
                ssl=tls_option(url, tls),
            )
        except websockets.InvalidMessage:
            if url.startswith("ws://") and await speaks_tls(url):
                raise ConnectError(
                    f"{url} answers in TLS: use {'wss://' + url.removeprefix('ws://')}"
                ) from None
            raise
        link = cls(ws, pacer)
        try:
            yield link
        finally:
            link.open = False
            with contextlib.suppress(websockets.WebSocketException, OSError):
                await ws.close(link.leaving_code)

    async def recv(self) -> RelayFrame:
        """The next frame; ``FrameRefusedError`` if it does not decode, ``ConnectionClosed``
        when the link closed."""
        return decode(await self._ws.recv())

    async def batches(
        self, limit: int = BATCH_LIMIT
    ) -> AsyncGenerator[list[RelayFrame | FrameRefusedError], None]:
        """Every frame until the link closes, in order, in lists of at most ``limit``:
        each list holds the first frame that came and whatever else arrived meanwhile.

        A reader task keeps taking frames off the socket while the previous list is
        handled, so a catch-up of thousands of messages is handled in large steps (one
        store transaction each), and a lone live frame goes on alone, at once. A frame
        that does not decode is yielded as its error, never fatal (protocol.md §10: a
        newer relay may send frames this client does not know). ``ConnectionClosed`` is
        raised after the last frame.
        """
        queue: asyncio.Queue[RelayFrame | FrameRefusedError | _End] = asyncio.Queue(READ_AHEAD)
        reader = asyncio.create_task(self._read_into(queue), name="e2echat-reader")
        try:
            while True:
                item = await queue.get()
                batch: list[RelayFrame | FrameRefusedError] = []
                while not isinstance(item, _End):
                    batch.append(item)
                    if len(batch) == limit or queue.empty():
                        break
                    item = queue.get_nowait()
                if batch:
                    yield batch
                if isinstance(item, _End):
                    if item.error is not None:
                        raise item.error
                    return
        finally:
            await cancel_and_wait(reader)

    async def _read_into(
        self, queue: "asyncio.Queue[RelayFrame | FrameRefusedError | _End]"
    ) -> None:
        error: websockets.ConnectionClosed | None = None
        try:
            async for raw in self._ws:
                try:
                    await queue.put(decode(raw))
                except FrameRefusedError as exc:
                    await queue.put(exc)
        except websockets.ConnectionClosed as exc:
            error = exc
        await queue.put(_End(error))

    async def send(self, frames: Sequence[ClientFrame]) -> None:
        """Send ``frames`` in order, paced; once the link is closed the rest are dropped
        (the engine re-creates what matters on the next link)."""
        if not frames:
            return
        async with self._send_lock:
            for frame in frames:
                if not self.open:
                    return
                now = asyncio.get_running_loop().time()
                delay = self._pacer.delay(now)
                if isinstance(frame, DirectsSend) and self.share_pacer is not None:
                    delay = max(delay, self.share_pacer.delay(now, len(frame.items)))
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
        with contextlib.suppress(websockets.WebSocketException, OSError):
            await self._ws.close(self.leaving_code)


def tls_option(url: str, tls: ssl.SSLContext | None) -> ssl.SSLContext | bool | None:
    """``connect``'s ``ssl`` argument: for ``wss://`` the given context, else the
    system's trust (True; websockets refuses None there); None for ``ws://``."""
    if not url.startswith("wss://"):
        return None
    return True if tls is None else tls


async def speaks_tls(url: str) -> bool:
    """Whether the peer at a ``ws://`` URL completes a TLS handshake (it then is a
    ``wss://`` port). Only asked after a plain handshake failed; nothing is sent in
    the TLS session, so its certificate need not be trusted."""
    parts = urlsplit(url)
    probe = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    probe.check_hostname = False
    probe.verify_mode = ssl.CERT_NONE
    try:
        async with asyncio.timeout(TLS_PROBE_TIMEOUT_S):
            _, writer = await asyncio.open_connection(parts.hostname, parts.port or 80, ssl=probe)
    except (OSError, TimeoutError, ValueError):
        return False
    writer.close()
    with contextlib.suppress(OSError, ssl.SSLError):
        await writer.wait_closed()
    return True


def decode(raw: str | bytes) -> RelayFrame:
    """A relay frame from its wire text; ``FrameRefusedError`` if it is not one."""
    try:
        return decode_relay_frame(raw)
    except ProtocolError as exc:
        raise FrameRefusedError(
            f"The relay sent a frame this client refuses: {exc.message}"
        ) from None
