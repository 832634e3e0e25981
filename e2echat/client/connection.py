"""The link to the relay: dial, handshake, frames both ways, reconnect forever.

``Connection`` is the I/O half of the client: a ``websockets`` client connection with
subprotocol ``e2echat.v1`` and no compression, the handshake, a reader that routes each
frame to a waiting request (by ``id``) or to the engine, a once-a-second housekeeping
tick, pacing of outgoing frames, and reconnection with backoff and jitter. It decides
nothing about chat: the engine does, and the ``Client`` publishes what the engine says.
"""

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import TypeVar

import msgspec
import websockets
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

from e2echat.client.backoff import Backoff
from e2echat.client.engine import Engine, Output
from e2echat.client.errors import AuthError, ConnectError, E2EChatError, RelayError
from e2echat.client.events import ConnectionChanged, Event, Notice
from e2echat.client.models import ConnectionState
from e2echat.client.pacing import TokenBucket
from e2echat.client.pubsub import Hub
from e2echat.client.requests import Requests
from e2echat.client.tasks import cancel_and_wait
from e2echat.client.worker import Worker
from e2echat.protocol import (
    HANDSHAKE_TIMEOUT_S,
    MAX_RELAY_FRAME,
    SUBPROTOCOL,
    Challenge,
    ClientFrame,
    CloseCode,
    Error,
    ErrorCode,
    ProtocolError,
    RelayFrame,
    Welcome,
    decode_relay_frame,
    encode_frame,
)

log = logging.getLogger("e2echat")
F = TypeVar("F", bound=RelayFrame)
REQUEST_TIMEOUT_S = 15.0
TICK_S = 1.0


class Connection:
    """One relay, one identity: connects on ``open`` and keeps reconnecting until ``close``.

    ``publish`` receives every engine output once its frames are sent; ``lost`` is called
    whenever a connection ends (so the client can settle what was waiting on it).
    """

    def __init__(
        self,
        url: str,
        engine: Engine,
        worker: Worker,
        events: Hub[Event],
        publish: Callable[[Output], None],
        lost: Callable[[], None],
        *,
        reconnect: bool,
        pacer: TokenBucket,
        backoff: Backoff,
    ) -> None:
        self.url = url
        self.state = ConnectionState.CLOSED
        self._engine = engine
        self._worker = worker
        self._events = events
        self._publish = publish
        self._lost = lost
        self._reconnect = reconnect
        self._pacer = pacer
        self._backoff = backoff
        self._send_lock = asyncio.Lock()
        self._requests = Requests()
        self._ws: ClientConnection | None = None
        self._runner: asyncio.Task[None] | None = None
        self._ready: asyncio.Future[None] | None = None
        self._connected_at: float | None = None
        """Loop time of the current connection's welcome (None while not connected)."""

    async def open(self) -> None:
        """Connect and authenticate; raise ``ConnectError``/``AuthError`` if that fails."""
        self._ready = asyncio.get_running_loop().create_future()
        self._runner = asyncio.create_task(self._run(), name="e2echat-connection")
        await self._ready

    async def close(self) -> None:
        """Stop for good: the current connection is closed, no reconnect follows."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await cancel_and_wait(runner)
        self._set_state(ConnectionState.CLOSED, None)

    async def drop(self) -> None:
        """Close the current connection; the loop reconnects (with the engine's new hello)."""
        if self._ws is not None:
            await self._ws.close()

    async def wait_closed(self) -> None:
        """Return when the connection loop has stopped (closed, or no reconnect)."""
        if self._runner is not None:
            await asyncio.wait([self._runner])  # never cancels the runner, nor eats our cancel

    # The loop ----------------------------------------------------------------------------

    async def _run(self) -> None:
        detail: str | None = None
        while True:
            ever = self._ready is not None and self._ready.done()
            self._set_state(
                ConnectionState.RECONNECTING if ever else ConnectionState.CONNECTING, detail
            )
            try:
                await self._session()
                detail = "the relay closed the connection"
            except (OSError, TimeoutError, E2EChatError, websockets.WebSocketException) as exc:
                error = exc if isinstance(exc, E2EChatError) else ConnectError(_describe(exc))
                if self._fail_ready(error):
                    return
                detail = str(error)
            except Exception as exc:
                # A bug must not kill the connection for good: log it, reconnect.
                log.exception("internal error in the e2echat connection")
                error = E2EChatError(f"internal error ({type(exc).__name__}); reconnecting")
                if self._fail_ready(error):
                    return
                detail = str(error)
            if self._connected_at is not None:
                loop_time = asyncio.get_running_loop().time()
                self._backoff.connection_ended(loop_time - self._connected_at)
                self._connected_at = None
            if not self._reconnect:
                self._set_state(ConnectionState.CLOSED, detail)
                return
            await asyncio.sleep(self._backoff.next_delay())

    def _fail_ready(self, error: E2EChatError) -> bool:
        """If the first connection is still pending, fail it with ``error``; True if so."""
        if self._ready is None or self._ready.done():
            return False
        self._set_state(ConnectionState.CLOSED, str(error))
        self._ready.set_exception(error)
        return True

    async def _session(self) -> None:
        """One connection: handshake, then every frame until it closes."""
        async with connect(
            self.url,
            subprotocols=[Subprotocol(SUBPROTOCOL)],
            compression=None,
            max_size=MAX_RELAY_FRAME,
            open_timeout=HANDSHAKE_TIMEOUT_S,
        ) as ws:
            welcome = await self._handshake(ws)
            self._ws = ws
            ticker: asyncio.Task[None] | None = None
            try:
                out = await self._worker.call(self._engine.welcome, welcome)
                self._set_state(ConnectionState.CONNECTED, None)
                self._connected_at = asyncio.get_running_loop().time()
                if self._ready is not None and not self._ready.done():
                    self._ready.set_result(None)
                await self.dispatch(out)
                ticker = asyncio.create_task(self._tick_forever(), name="e2echat-tick")
                async for raw in ws:
                    await self._receive(raw)
            finally:
                self._ws = None
                if ticker is not None:
                    await cancel_and_wait(ticker)
                self._requests.fail_all(ConnectError("the connection to the relay was lost"))
                await self._worker.call(self._engine.disconnected)
                self._lost()

    async def _handshake(self, ws: ClientConnection) -> Welcome:
        try:
            async with asyncio.timeout(HANDSHAKE_TIMEOUT_S):
                challenge = _decode(await ws.recv())
                if not isinstance(challenge, Challenge):
                    raise ConnectError("the relay did not start with a challenge")
                hello = await self._worker.call(self._engine.hello, challenge)
                await ws.send(encode_frame(hello), text=True)
                reply = _decode(await ws.recv())
        except websockets.ConnectionClosed as exc:
            if exc.rcvd is not None and exc.rcvd.code == CloseCode.AUTH_FAILED:
                raise AuthError(exc.rcvd.reason or "the relay refused our identity") from None
            raise
        if isinstance(reply, Error) and reply.code == ErrorCode.RATE_LIMITED:
            # Temporary (e.g. too many new identities from our address): retry, don't blame us.
            raise ConnectError(f"the relay asks us to wait: {reply.message}")
        if isinstance(reply, Error):
            raise AuthError(f"the relay refused our identity: {reply.message}")
        if not isinstance(reply, Welcome):
            raise ConnectError("the relay did not answer hello with welcome")
        return reply

    async def _receive(self, raw: str | bytes) -> None:
        """Route one frame. A frame that does not decode is logged and ignored, never
        fatal (protocol.md §10: a newer relay may send frames this client does not
        know); a frame the engine fails on is dropped, not the connection."""
        try:
            frame = _decode(raw)
        except ConnectError as exc:
            log.warning("ignored a relay frame: %r", str(exc))  # repr: no raw control chars
            self._events.publish(Notice(str(exc)))
            return
        if self._requests.resolve(frame):
            return
        try:
            out = await self._worker.call(self._engine.receive, frame)
        except Exception:
            log.exception(
                "internal error handling a %s frame; it was dropped", type(frame).__name__
            )
            return
        await self.dispatch(out)

    async def _tick_forever(self) -> None:
        """Housekeeping once a second: crypto timers, mailbox ack, outbox retries."""
        while True:
            await asyncio.sleep(TICK_S)
            try:
                out = await self._worker.call(self._engine.tick)
                out.extend(await self._worker.call(self._engine.flush_outbox))
                await self.dispatch(out)
            except Exception:
                log.exception("internal error in e2echat housekeeping")

    def _set_state(self, state: ConnectionState, detail: str | None) -> None:
        if state is not self.state:
            self.state = state
            self._events.publish(ConnectionChanged(state, detail))

    # Output ------------------------------------------------------------------------------

    async def dispatch(self, out: Output) -> None:
        """Send the engine's frames, then hand the output over to be published."""
        await self._send(out.frames)
        self._publish(out)

    async def _send(self, frames: list[ClientFrame]) -> None:
        """Send ``frames`` in order, paced; while disconnected they are dropped (the
        engine re-creates what matters: the outbox, syncs, shares)."""
        if not frames:
            return
        async with self._send_lock:
            for frame in frames:
                ws = self._ws
                if ws is None:
                    return
                delay = self._pacer.delay(asyncio.get_running_loop().time())
                if delay:
                    await asyncio.sleep(delay)
                with contextlib.suppress(websockets.ConnectionClosed):
                    await ws.send(encode_frame(frame), text=True)

    async def request(self, frame: ClientFrame, expect: type[F]) -> F:
        """Send a request and wait for its reply; ``error`` replies raise ``RelayError``."""
        if self._ws is None:
            raise ConnectError("not connected to the relay (reconnecting)")
        request_id, future = self._requests.new()
        try:
            await self._send([msgspec.structs.replace(frame, id=request_id)])
            async with asyncio.timeout(REQUEST_TIMEOUT_S):
                reply = await future
        except TimeoutError:
            raise ConnectError("the relay did not answer in time") from None
        finally:
            self._requests.forget(request_id)
        if isinstance(reply, Error):
            raise RelayError(reply.code, reply.message)
        if not isinstance(reply, expect):
            raise ConnectError(f"the relay answered with an unexpected {type(reply).__name__}")
        return reply


def _decode(raw: str | bytes) -> RelayFrame:
    try:
        return decode_relay_frame(raw)
    except ProtocolError as exc:
        raise ConnectError(f"The relay sent a frame this client refuses: {exc.message}") from None


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"cannot reach the relay: {text}"
