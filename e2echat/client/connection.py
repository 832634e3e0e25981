"""The transport: one WebSocket link to the relay, frames in and out, paced.

``Connection`` knows frames and bytes, nothing of chat: a ``websockets`` client
connection with subprotocol ``e2echat.v1`` and no compression, decoding of what
arrives, and a writer that paces what leaves. Posting a frame does not wait for the
pacer: frames wait in the writer's queue, and the directs frames that piled up there
meanwhile are handed to ``coalesce`` (the driver's, which asks the outbox) to go as
fewer frames. The driver dials it, runs the handshake over it, and decides what each
frame means.
"""

import asyncio
import contextlib
import logging
import ssl
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
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
    DirectSend,
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
Coalesce = Callable[[list[ClientFrame]], Awaitable[list[ClientFrame]]]
"""``Connection.coalesce``: directs frames waiting to be written, as the frames to write
instead."""
SLACK = 1.0
"""Frame tokens the writer leaves in the pacer while frames keep coming. The relay counts
a frame when it handles it: one handled sooner after the one before than it was sent
(the one before waited in a busy relay's socket) finds the relay's bucket a fraction of
a token lower than ours, and a writer that spends ours to zero is refused now and then
(``rate_limited``, a strike against the connection)."""
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


@dataclass(eq=False, slots=True)
class _Queued:
    """A frame waiting for the writer, and whoever waits for it to be written."""

    frame: ClientFrame
    waiters: list[asyncio.Future[None]] = field(default_factory=list)
    coalesced: bool = False
    """Made by ``coalesce``: asking again with nothing new would give it back as it is."""
    overtaken: bool = False
    """Directs were pulled ahead of it once: later ones wait behind it."""


def _done(entry: _Queued) -> None:
    for waiter in entry.waiters:
        if not waiter.done():
            waiter.set_result(None)


def _is_directs(frame: ClientFrame) -> bool:
    return isinstance(frame, DirectSend | DirectsSend)


class FrameRefusedError(ConnectError):
    """A frame from the relay that does not decode (a newer relay, or a broken one)."""


class Connection:
    """One open link. What is sent is queued and written by one writer task, paced by
    a ``TokenBucket`` shared across links."""

    def __init__(self, ws: ClientConnection, pacer: TokenBucket) -> None:
        self._ws = ws
        self._pacer = pacer
        self.share_pacer: TokenBucket | None = None
        """The relay's announced budget of ``directs`` envelopes (set from its challenge)."""
        self.coalesce: Coalesce | None = None
        """Makes fewer frames of the directs frames waiting to be written (set by the
        driver: the outbox numbers batches, on the engine's thread)."""
        self._queue: deque[_Queued] = deque()
        self._queued = asyncio.Event()
        self.open = True
        """False once the link closed (sends are then dropped)."""
        self.leaving_code = CloseCode.NORMAL
        """The close code we send when the block exits: 1001 when the program stops."""
        self._writer = asyncio.create_task(self._write(), name="e2echat-writer")

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
            await link.stop_writing()
            with contextlib.suppress(websockets.WebSocketException, OSError):
                await ws.close(link.leaving_code)

    async def stop_writing(self) -> None:
        """Stop the writer (what is still queued is dropped) and drop later posts; any
        ``coalesce`` it asked for was submitted before this returns."""
        self.open = False
        await cancel_and_wait(self._writer)

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

    def post(self, frames: Sequence[ClientFrame]) -> None:
        """Queue ``frames`` for the writer and return at once; once the link is closed
        they are dropped (the engine re-creates what matters on the next link)."""
        if not self.open:
            return
        self._queue.extend(_Queued(frame) for frame in frames)
        if self._queue:
            self._queued.set()

    async def send(self, frames: Sequence[ClientFrame]) -> None:
        """Queue ``frames`` and return once they are written (or dropped, the link
        closed): a request's timeout starts when it is on its way."""
        self.post(frames)
        await self.drained()

    async def drained(self) -> None:
        """Return once everything queued so far is written (or dropped)."""
        if not self._queue:
            return
        written: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue[-1].waiters.append(written)
        await written

    async def _write(self) -> None:
        """The writer: queued frames in order, each when the pacer has a token for it.

        While it waits, frames pile up; before a directs frame goes, the directs frames
        queued are handed to ``coalesce``, so directs posted by many steps within one
        frame slot go as few ``directs`` frames."""
        loop = asyncio.get_running_loop()
        try:
            while True:
                await self._queued.wait()
                wait = self._pacer.wait(loop.time(), min(1 + SLACK, self._pacer.burst))
                if wait:
                    await asyncio.sleep(wait)
                    continue
                await self._coalesce_head()
                entry = self._queue[0]
                now = loop.time()
                self._pacer.delay(now)
                frame = entry.frame
                if isinstance(frame, DirectsSend) and self.share_pacer is not None:
                    await self._pace_shares(len(frame.items))
                if self.open:
                    try:
                        await self._ws.send(encode_frame(frame), text=True)
                    except websockets.ConnectionClosed:
                        self.open = False
                self._queue.popleft()
                _done(entry)
                if not self.open:
                    self._drop_queued()
                if not self._queue:
                    self._queued.clear()
        except Exception:
            log.exception("internal error writing to the relay; closing the link")
            await self.close()
        finally:
            self.open = False
            self._drop_queued()

    async def _pace_shares(self, items: int) -> None:
        """Wait until the share budget holds ``items`` envelopes and the same slack as
        the frame pacer's (``SLACK`` frames' time of envelopes), then take ``items``.

        The relay counts a batch's envelopes when it handles the frame, so the two
        buckets drift apart as the frame buckets do; and a refused batch goes again as
        single directs, at the frame rate: 128 of them take four seconds."""
        shares, loop = self.share_pacer, asyncio.get_running_loop()
        assert shares is not None
        slack = SLACK / self._pacer.rate * shares.rate
        wait = shares.wait(loop.time(), min(items + slack, shares.burst))
        if wait:
            await asyncio.sleep(wait)
        shares.delay(loop.time(), items)

    async def _coalesce_head(self) -> None:
        """When the head of the queue is a directs frame: every directs frame queued
        goes as what ``coalesce`` makes of them, at the head.

        Directs overtake the other frames that wait (never each other): a direct
        depends on no frame of ours that is not yet written, and a message depends only
        on directs queued before it, which stay before it. A frame is overtaken by one
        such run at most: directs queued behind a frame that was overtaken once wait
        behind it, or directs coming steadily would hold it back for ever (a relay
        without ``directs``, whose directs a rebatch cannot merge). The frames stay
        queued while ``coalesce`` is asked."""
        if self.coalesce is None or not self._queue or not _is_directs(self._queue[0].frame):
            return
        run: list[_Queued] = []
        passed: list[_Queued] = []  # frames a direct of the run is behind
        between: list[_Queued] = []
        for entry in self._queue:
            if _is_directs(entry.frame):
                run.append(entry)
                passed += between
                between = []
            elif entry.overtaken:
                break
            else:
                between.append(entry)
        if len(run) < 2 or all(entry.coalesced for entry in run):
            return
        try:
            frames = await self.coalesce([entry.frame for entry in run])
        except Exception:
            log.exception("internal error rebatching %d directs frames", len(run))
            return
        if not frames:
            return
        for entry in passed:
            entry.overtaken = True
        merged = [_Queued(frame, coalesced=True) for frame in frames]
        pulled = set(run)
        kept: list[_Queued] = []
        for entry in self._queue:
            if entry not in pulled:
                kept.append(entry)
            else:  # whoever waits for the frames up to it waits for the last kept before it
                (kept[-1] if kept else merged[-1]).waiters.extend(entry.waiters)
        self._queue = deque(merged + kept)

    def _drop_queued(self) -> None:
        """The link closed: nothing queued will be written; whoever waits is told."""
        while self._queue:
            _done(self._queue.popleft())
        self._queued.clear()

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
