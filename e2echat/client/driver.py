"""The driver: owns the worker, the engine and the connection, and runs every step.

A step is always the same three moves, in this order: run the engine (on its worker
thread) with what happened, post the frames it returns to the link's writer, then
publish what it returns, bound to ``Room`` handles. Posting does not wait for the
pacer, so the next step (the next join to validate) is not held behind it; the directs
of many steps that wait for one frame slot go out together, rebatched by the outbox on
the engine's thread into ``directs`` frames. The outbox's directs and messages are
stored before they are posted, and the rest is made again on connecting, so what a
lost link dropped from the queue goes on the next one.

Everything that happens goes through here: frames read from the relay, the
once-a-second tick, connects and disconnects, and the API's calls. It also keeps the
link up: reconnection forever with backoff and jitter unless ``reconnect=False``,
going round the relay URLs it was given (``RelayRotation``).
"""

import asyncio
import contextlib
import dataclasses
import logging
import ssl
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

import msgspec
import websockets

from e2echat.client.backoff import Backoff
from e2echat.client.connection import Connection, FrameRefusedError
from e2echat.client.engine import Engine
from e2echat.client.errors import (
    AuthError,
    ConnectError,
    E2EChatError,
    NotAMember,
    NotConnected,
    RelayError,
    Replaced,
)
from e2echat.client.events import (
    ConnectionChanged,
    ConnectionReplaced,
    Event,
    Notice,
    RoomEvent,
    RoomLeft,
    RoomLost,
    UnreadChanged,
)
from e2echat.client.models import ConnectionState, Message, placed
from e2echat.client.output import Output
from e2echat.client.pacing import TokenBucket
from e2echat.client.pubsub import Hub
from e2echat.client.relayrooms import RelayRooms
from e2echat.client.relays import RelayRotation
from e2echat.client.requests import Requests
from e2echat.client.room import Room
from e2echat.client.roomstate import RoomState
from e2echat.client.tasks import cancel_and_wait
from e2echat.client.worker import Worker
from e2echat.crypto import DirectInvited
from e2echat.protocol import (
    HANDSHAKE_TIMEOUT_S,
    Challenge,
    ClientFrame,
    CloseCode,
    Error,
    ErrorCode,
    RelayFrame,
    Welcome,
)

log = logging.getLogger("e2echat")
P = ParamSpec("P")
T = TypeVar("T")
F = TypeVar("F", bound=RelayFrame)
REQUEST_TIMEOUT_S = 15.0
TICK_S = 1.0


class Driver:
    """Runs one client: its engine, its link to the relay, its publications."""

    def __init__(
        self,
        urls: tuple[str, ...],
        make_room: Callable[[RoomState], Room],
        *,
        reconnect: bool,
        include_own: bool,
        pacer: TokenBucket,
        backoff: Backoff,
        messages: Hub[Message[Room]],
        events: Hub[Event],
        connect_timeout: float | None = 0.0,
        tls: ssl.SSLContext | None = None,
        skip_backlog: bool = False,
        room_lost: Callable[[Room], None] | None = None,
        invited: Callable[[DirectInvited], None] | None = None,
    ) -> None:
        self._relays = RelayRotation(urls, spread=backoff.initial, rng=backoff.rng)
        self._connect_timeout = connect_timeout
        self._first_deadline: float | None = None
        """Loop time after which a failing first connection is given up."""
        self._tls = tls
        self._skip_backlog = skip_backlog
        self._room_lost = room_lost
        self._invited = invited
        self.relay_rooms = RelayRooms()
        self.up = asyncio.Event()
        """Set while connected (a lost room's rejoin waits for it)."""
        self.state = ConnectionState.CLOSED
        self._closed_because: str | None = None
        """Why the connection closed for good (a replacement), for what is asked after."""
        self.messages = messages
        self.events = events
        self._make_room = make_room
        self._reconnect = reconnect
        self._include_own = include_own
        self._pacer = pacer
        self._backoff = backoff
        self._worker: Worker | None = None
        self._engine: Engine | None = None
        self._link: Connection | None = None
        self._requests = Requests()
        self._handles: dict[bytes, Room] = {}
        self._waiters: dict[int, tuple[asyncio.Future[Message[Room]], Message[Room]]] = {}
        self._steps: set[asyncio.Task[Any]] = set()
        self._runner: asyncio.Task[None] | None = None
        self._ready: asyncio.Future[None] | None = None
        self._connected_at: float | None = None
        """Loop time of the current connection's welcome (None while not connected)."""
        self.confirmed = asyncio.Event()
        """Set whenever the relay confirmed one of our sends (``Client.flush`` waits)."""

    # Lifecycle -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The relay URL in use: connected to, or dialled next."""
        return self._relays.url

    @property
    def started(self) -> bool:
        """Whether ``start`` ran and ``shutdown`` did not yet."""
        return self._worker is not None

    async def start(self, open_engine: Callable[[], Engine]) -> None:
        """Open the engine on a new worker thread, then connect and authenticate; raise
        what ``open_engine`` raises, or ``ConnectError``/``AuthError`` if the first
        connection fails."""
        self._worker = Worker()
        try:
            self._engine = await self._worker.call(open_engine)
        except BaseException:
            self._worker.close()
            self._worker = None
            raise
        self._handles = {room_id: self._make_room(s) for room_id, s in self._engine.rooms.items()}
        loop = asyncio.get_running_loop()
        self._ready = loop.create_future()
        timeout = self._connect_timeout
        self._first_deadline = None if timeout is None else loop.time() + timeout
        self._runner = asyncio.create_task(self._run(), name="e2echat-connection")
        await self._ready

    async def stop(self, *, going_away: bool = False) -> None:
        """Let running steps finish, then close the link for good (no reconnect), with
        close code 1000, or 1001 (going away) when the program is stopping."""
        if self._steps:
            await asyncio.wait(set(self._steps), timeout=REQUEST_TIMEOUT_S)
        link = self._link
        if link is not None:
            link.leaving_code = CloseCode.GOING_AWAY if going_away else CloseCode.NORMAL
            with contextlib.suppress(TimeoutError):  # what the steps posted goes first
                async with asyncio.timeout(REQUEST_TIMEOUT_S):
                    await link.drained()
        runner, self._runner = self._runner, None
        if runner is not None:
            await cancel_and_wait(runner)
        self._set_state(ConnectionState.CLOSED, None)

    async def shutdown(self) -> None:
        """After ``stop``: end every subscription, close the store and the worker."""
        self.messages.close()
        self.events.close()
        engine, self._engine = self._engine, None
        if engine is not None:
            await self.call(engine.store.close)
        if self._worker is not None:
            self._worker.close()
            self._worker = None

    async def drop(self) -> None:
        """Close the current link; the loop reconnects (with the engine's new hello)."""
        if self._link is not None:
            await self._link.close()

    async def wait_closed(self) -> None:
        """Return when the connection loop has stopped (closed, or no reconnect)."""
        if self._runner is not None:
            await asyncio.wait([self._runner])  # never cancels the runner, nor eats our cancel

    # Steps -----------------------------------------------------------------------------

    @property
    def engine(self) -> Engine:
        """The engine (raises if the client is not connected)."""
        if self._engine is None:
            raise NotConnected("the client is not connected: use 'async with Client(...)'")
        return self._engine

    async def call(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``fn`` on the engine's worker thread."""
        if self._worker is None:
            raise NotConnected("the client is closed")
        return await self._worker.call(fn, *args, **kwargs)

    async def step(self, fn: Callable[P, Output], *args: P.args, **kwargs: P.kwargs) -> None:
        """One engine step: run it, post its frames, publish what it returns."""
        self.dispatch(await self.call(fn, *args, **kwargs))

    def dispatch(self, out: Output) -> None:
        """Post an engine output's frames to the link (in order, behind what waits
        there), then publish it."""
        link = self._link
        if link is not None:
            link.post(out.frames)
        self._publish(out)

    def shielded(self, work: Coroutine[Any, Any, T]) -> "asyncio.Future[T]":
        """Run ``work`` to completion even if the caller is cancelled.

        An engine step changes durable state (a queued message, a joined room, a rotated
        chain) and returns frames that must go out, or that change is stranded: a
        cancelled caller gets ``CancelledError`` at once, the step finishes on its own,
        and ``stop()`` waits for it.
        """
        task = asyncio.ensure_future(work)
        self._steps.add(task)
        task.add_done_callback(self._step_done)
        return asyncio.shield(task)

    def _step_done(self, task: "asyncio.Task[Any]") -> None:
        self._steps.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # retrieved here, so a step whose caller was cancelled does not warn at exit
            # (a caller still waiting gets the exception itself)
            log.debug("an e2echat step failed: %s", task.exception())

    async def request(self, frame: ClientFrame, expect: type[F]) -> F:
        """Send a request and wait for its reply; ``error`` replies raise ``RelayError``."""
        if self._link is None:
            if self.state is ConnectionState.CLOSED and self._closed_because:
                raise ConnectError(f"not connected to the relay: {self._closed_because}")
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

    def expect_confirmation(
        self, item_id: int, provisional: Message[Room]
    ) -> "asyncio.Future[Message[Room]]":
        """A future for the relay's confirmation of outbox item ``item_id``; it gets
        ``provisional`` if the connection drops first."""
        future: asyncio.Future[Message[Room]] = asyncio.get_running_loop().create_future()
        self._waiters[item_id] = (future, provisional)
        return future

    def forget_confirmation(self, item_id: int) -> None:
        """Stop waiting for ``item_id``'s confirmation."""
        self._waiters.pop(item_id, None)

    async def _send(self, frames: list[ClientFrame]) -> None:
        link = self._link
        if link is not None:
            await link.send(frames)

    async def _rebatch(self, frames: list[ClientFrame]) -> list[ClientFrame]:
        """``Connection.coalesce``: the outbox rebatches directs that wait for the pacer."""
        return await self.call(self.engine.rebatch_directs, frames)

    # Publishing --------------------------------------------------------------------------

    def rooms(self) -> list[Room]:
        """Handles of the rooms we are in, in the order we joined them."""
        # list() of a dict's keys is one step under the GIL: safe while the engine
        # thread adds or removes a room.
        handles = (self._handle(room_id) for room_id in list(self.engine.rooms))
        return [handle for handle in handles if handle is not None]

    def room(self, room_id: bytes) -> Room:
        """The handle of a joined room."""
        handle = self._handle(room_id)
        if handle is None:
            raise NotAMember("You are not a member of that room.")
        return handle

    def _handle(self, room_id: bytes) -> Room | None:
        """The room's handle: made when the room is joined or loaded, dropped when it is
        left (once that is published), so values of a step that ran before the leave
        still bind to it."""
        handle = self._handles.get(room_id)
        if handle is None:
            state = self.engine.rooms.get(room_id)
            if state is None:
                return None
            handle = self._handles[room_id] = self._make_room(state)
        return handle

    def bind_message(self, message: Message[bytes]) -> Message[Room] | None:
        """A core message with its ``Room`` handle (None if the room is unknown)."""
        room = self._handle(message.room)
        if room is None:
            return None
        return placed(message, room)

    def _bind_event(self, event: Event) -> Event | None:
        """A core event with its ``Room`` handle (events of no room pass as they are)."""
        room_id = getattr(event, "room", None)
        if not isinstance(event, RoomEvent) or not isinstance(room_id, bytes):
            return event
        handle = self._handle(room_id)
        if isinstance(event, RoomLeft):
            self._handles.pop(room_id, None)
        if handle is None:
            return None
        message = getattr(event, "message", None)
        if isinstance(message, Message):  # an edit or reaction carries the message as now
            return dataclasses.replace(  # type: ignore[call-arg]
                event, room=handle, message=placed(message, handle)
            )
        return dataclasses.replace(event, room=handle)

    def _live(self, message: Message[Room]) -> Message[Room] | None:
        """``message`` marked live, or as backlog; None for backlog that is skipped."""
        if message.own or self.relay_rooms.is_live(message.room.id, message.seq):
            return dataclasses.replace(message, live=True)
        return None if self._skip_backlog else message

    def _publish(self, out: Output) -> None:
        if self._invited is not None:
            for invitation in out.invitations:
                self._invited(invitation)
        if out.confirmed or out.related:
            self.confirmed.set()
        for item_id, message in out.confirmed:
            bound = self.bind_message(message)
            waiter = self._waiters.pop(item_id, None)
            if bound is None:
                continue
            if waiter is not None and not waiter[0].done():
                waiter[0].set_result(bound)
            if self._include_own:
                self.messages.publish(bound)
        for item_id in out.related:  # an edit, delete or reaction: nothing new to show
            waiter = self._waiters.pop(item_id, None)
            if waiter is not None and not waiter[0].done():
                waiter[0].set_result(waiter[1])
        for message in out.messages:
            if self._include_own or not message.own:
                bound = self.bind_message(message)
                if bound is not None and (bound := self._live(bound)) is not None:
                    self.messages.publish(bound)
        for event in out.events:
            bound_event = self._bind_event(event)
            if bound_event is not None:
                self.events.publish(bound_event)
                if isinstance(bound_event, RoomLost) and self._room_lost is not None:
                    self._room_lost(bound_event.room)
        for room_id, read in out.read.items():
            room = self._handle(room_id)
            if room is not None:
                self.events.publish(UnreadChanged(room, read.unread, read.mentions, read.read_seq))

    def _lost(self) -> None:
        """The connection dropped: sends waiting for the relay's reply return queued."""
        waiters, self._waiters = self._waiters, {}
        for future, provisional in waiters.values():
            if not future.done():
                future.set_result(provisional)

    # The connection loop --------------------------------------------------------------

    async def _run(self) -> None:
        detail: str | None = None
        ended: str | None = None  # the URL whose connection or try ``detail`` is about
        while True:
            ever = self._ready is not None and self._ready.done()
            self._set_state(
                ConnectionState.RECONNECTING if ever else ConnectionState.CONNECTING,
                detail,
                ended,
            )
            try:
                detail = await self._session()
            except Replaced as exc:
                self.events.publish(ConnectionReplaced(str(exc)))
                self._set_state(ConnectionState.CLOSED, str(exc))
                return
            except (OSError, TimeoutError, E2EChatError, websockets.WebSocketException) as exc:
                error = exc if isinstance(exc, E2EChatError) else ConnectError(_describe(exc))
                if self._fail_first(error):
                    return
                detail = str(error)
            except Exception as exc:
                # A bug must not kill the connection for good: log it, reconnect.
                log.exception("internal error in the e2echat connection")
                error = E2EChatError(f"internal error ({type(exc).__name__}); reconnecting")
                if self._fail_first(error):
                    return
                detail = str(error)
            if self._connected_at is not None:
                lasted = asyncio.get_running_loop().time() - self._connected_at
                self._backoff.connection_ended(lasted)
                if lasted >= self._backoff.stable:
                    self._relays.stable()
                self._connected_at = None
            first_pending = self._ready is not None and not self._ready.done()
            if not self._reconnect and not first_pending:
                self._set_state(ConnectionState.CLOSED, detail)
                return
            ended = self.url
            round_over = self._relays.advance()
            delay = self._backoff.next_delay() if round_over else self._relays.pause()
            if first_pending:
                if self._first_deadline is not None:
                    left = self._first_deadline - asyncio.get_running_loop().time()
                    delay = max(0.0, min(delay, left))
                failed = f"{ended}: " if ended != self.url else ""  # another node's try
                log.info("%s%s; trying %s in %.1f s", failed, detail, self.url, delay)
            await asyncio.sleep(delay)

    def _fail_first(self, error: E2EChatError) -> bool:
        """Fail a pending first connection with ``error`` when it is refused (a refused
        identity is refused by every node) or once every URL failed and the connect
        timeout is over; True if it failed. Until then the first connection retries
        with the same backoff as reconnects (a bot started before its relay waits)."""
        if isinstance(error, AuthError):
            return self._fail_ready(error)
        if len(self._relays.urls) - 1 - self._relays.failures > 0:
            return False  # another URL is still untried
        deadline = self._first_deadline
        if deadline is None or asyncio.get_running_loop().time() < deadline:
            return False
        return self._fail_ready(error)

    def _fail_ready(self, error: E2EChatError) -> bool:
        """If the first connection is still pending, fail it with ``error``; True if so."""
        if self._ready is None or self._ready.done():
            return False
        self._set_state(ConnectionState.CLOSED, str(error))
        self._ready.set_exception(error)
        return True

    async def _session(self) -> str:
        """One connection: handshake, then every frame until it closes; why it ended."""
        async with Connection.dial(self.url, self._pacer, self._tls) as link:
            welcome = await self._handshake(link)
            self.relay_rooms.welcomed(welcome.rooms)
            self._link = link
            ticker: asyncio.Task[None] | None = None
            try:
                out = await self.call(self.engine.welcome, welcome)
                self._set_state(ConnectionState.CONNECTED, None)
                self._connected_at = asyncio.get_running_loop().time()
                if self._ready is not None and not self._ready.done():
                    self._ready.set_result(None)
                self.dispatch(out)
                if self._invited is not None:  # kept across a crash or a failed join
                    for invitation in await self.call(self.engine.pending_invites):
                        self._invited(invitation)
                ticker = asyncio.create_task(self._tick_forever(), name="e2echat-tick")
                try:
                    async with contextlib.aclosing(link.batches()) as batches:
                        async for batch in batches:
                            await self._receive(batch)
                except websockets.ConnectionClosed:
                    if link.close_code != CloseCode.REPLACED:
                        raise
                if link.close_code == CloseCode.REPLACED:
                    raise Replaced(
                        "this identity connected from another place, which now holds the"
                        f" connection ({link.close_reason or 'replaced'}); not reconnecting"
                    )
                return closed_detail(link.close_code, link.close_reason)
            finally:
                self._link = None
                if ticker is not None:
                    await cancel_and_wait(ticker)
                # Before the engine hears of it: a rebatch the writer asked for runs
                # first (the worker runs calls in order), on this link's batches.
                await link.stop_writing()
                self._requests.fail_all(ConnectError("the connection to the relay was lost"))
                await self.call(self.engine.disconnected)
                self._lost()

    async def _handshake(self, link: Connection) -> Welcome:
        try:
            async with asyncio.timeout(HANDSHAKE_TIMEOUT_S):
                challenge = await link.recv()
                if not isinstance(challenge, Challenge):
                    raise ConnectError("the relay did not start with a challenge")
                limits = challenge.limits
                if limits.share_rate is not None and limits.share_burst is not None:
                    link.share_pacer = TokenBucket(limits.share_rate, limits.share_burst)
                if limits.max_directs is not None:  # without ``directs`` nothing merges
                    link.coalesce = self._rebatch
                hello = await self.call(self.engine.hello, challenge)
                await link.send([hello])
                reply = await link.recv()
        except websockets.ConnectionClosed as exc:
            if exc.rcvd is not None and exc.rcvd.code == CloseCode.AUTH_FAILED:
                raise AuthError(exc.rcvd.reason or "the relay refused our identity") from None
            raise
        if isinstance(reply, Error) and reply.code == ErrorCode.RATE_LIMITED:
            # Temporary (e.g. too many new identities from our address): retry, don't blame us.
            raise ConnectError(f"the relay asks us to wait: {reply.message}")
        if isinstance(reply, Error) and reply.code in (ErrorCode.UNAVAILABLE, ErrorCode.INTERNAL):
            # The relay failed (its store could not save us): retry, the identity is fine.
            raise ConnectError(f"the relay cannot serve us now: {reply.message}")
        if isinstance(reply, Error):
            raise AuthError(f"the relay refused our identity: {reply.message}")
        if not isinstance(reply, Welcome):
            raise ConnectError("the relay did not answer hello with welcome")
        return reply

    async def _receive(self, batch: list[RelayFrame | FrameRefusedError]) -> None:
        """Handle frames in the order they came: a run of frames for the engine goes to
        it in one step; a reply to a waiting request resolves it (once the frames before
        it are handled and published). A frame that does not decode is logged and
        ignored; a run the engine fails on is dropped, not the connection."""
        run: list[RelayFrame] = []
        for frame in batch:
            if isinstance(frame, FrameRefusedError) or self._requests.awaits(frame):
                await self._step_frames(run)
                run = []
                if isinstance(frame, FrameRefusedError):
                    log.warning(
                        "ignored a relay frame: %r", str(frame)
                    )  # repr: no raw control chars
                    self.events.publish(Notice(str(frame)))
                else:
                    self._requests.resolve(frame)
            else:
                run.append(frame)
        await self._step_frames(run)

    async def _step_frames(self, frames: list[RelayFrame]) -> None:
        if not frames:
            return
        try:
            out = await self.call(self.engine.receive_all, frames)
        except Exception:
            kinds = sorted({type(frame).__name__ for frame in frames})
            log.exception(
                "internal error handling %d frames (%s); they were dropped",
                len(frames),
                ", ".join(kinds),
            )
            return
        self.dispatch(out)

    async def _tick_forever(self) -> None:
        """Housekeeping once a second: crypto timers, mailbox ack, outbox retries."""
        while True:
            await asyncio.sleep(TICK_S)
            try:
                out = await self.call(self.engine.tick)
                out.extend(await self.call(self.engine.flush_outbox))
                self.dispatch(out)
            except Exception:
                log.exception("internal error in e2echat housekeeping")

    def _set_state(
        self, state: ConnectionState, detail: str | None, ended: str | None = None
    ) -> None:
        """Enter ``state``; ``detail`` says why, about ``ended`` when that is another URL
        than the one now in use (the node that died, not the one dialled next)."""
        if state is ConnectionState.CONNECTED:
            self.up.set()
        else:
            self.up.clear()
        if state is ConnectionState.CLOSED:
            self._closed_because = detail
        if state is not self.state:
            self.state = state
            if state is not ConnectionState.CONNECTING:  # the rest are worth a line at INFO
                reason = f": {detail}" if detail else ""
                if ended is not None and ended != self.url:
                    log.info("%s to %s after %s%s", state.value, self.url, ended, reason)
                else:
                    log.info("%s %s%s", state.value, self.url, reason)
            self.events.publish(ConnectionChanged(state, detail))


def closed_detail(code: int | None, reason: str) -> str:
    """Why the relay ended a connection, as a log line says it."""
    if code == CloseCode.GOING_AWAY:
        what = "1001, going away: the relay is restarting or stopping"
    else:
        what = f"{code}, {reason}" if reason else f"{code}"
    return f"the relay closed the connection ({what})"


def _describe(exc: BaseException) -> str:
    if isinstance(exc, websockets.ConnectionClosed):  # it was reached, then it ended
        if exc.rcvd is not None:
            return closed_detail(exc.rcvd.code, exc.rcvd.reason)
        return "the connection to the relay was lost (no close frame)"
    text = str(exc) or type(exc).__name__
    if isinstance(exc, ssl.SSLCertVerificationError):
        text += " (a relay with its own CA: Client(..., ssl='ca.pem'))"
    return f"cannot reach the relay: {text}"
