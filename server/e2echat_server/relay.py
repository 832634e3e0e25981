"""The relay: a thin websockets shell around the Directory, the Registry and a Store.

Decisions live in the pure modules (directory, registry, ratelimit, handshake, http);
this module moves bytes: it reads frames, asks the directory, awaits the store, and
writes replies and fan-out. Replies and fan-out are written without waiting, after a
check of the recipient's send buffer, so a slow consumer is dropped instead of stalling
anyone; bulk replies (welcome, sync, the mailbox flush) wait for the client to drain.
"""

import asyncio
import contextlib
import logging
import ssl
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from nacl.utils import random as random_bytes
from websockets.asyncio.server import Server, ServerConnection, broadcast, serve
from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode as WsCloseCode
from websockets.http11 import Request, Response
from websockets.typing import Origin, Subprotocol

from e2echat.protocol import (
    MAX_SYNC_LIMIT,
    PROTOCOL_VERSION,
    SUBPROTOCOL,
    Ack,
    Challenge,
    ClientFrame,
    CloseCode,
    CreateRoom,
    DirectDelivery,
    DirectSend,
    Error,
    ErrorCode,
    Hello,
    JoinRoom,
    LeaveRoom,
    ListRooms,
    Lookup,
    MemberJoined,
    MemberLeft,
    MembersList,
    MembersRequest,
    Message,
    Ok,
    PrekeyUpdate,
    Presence,
    ProtocolError,
    RelayFrame,
    RelayLimits,
    RoomList,
    RoomReply,
    Send,
    Sent,
    SetStatus,
    SummaryReply,
    Sync,
    Synced,
    User,
    Welcome,
    decode_client_frame,
    encode_frame,
)
from e2echat_server.config import RelayConfig
from e2echat_server.directory import OFFLINE, Directory, DirectoryLimits
from e2echat_server.frames import printable, request_id
from e2echat_server.handshake import prekey_signed, verify_hello
from e2echat_server.http import info_document, route
from e2echat_server.logs import ACCESS, LOGGER, crash_site, event, fingerprint
from e2echat_server.metrics import Metrics
from e2echat_server.ratelimit import AddressBudgets, ConnectionLimiter, Verdict
from e2echat_server.registry import Registry
from e2echat_server.store import Envelope, MemberRecord, MemoryStore, SqliteStore, Store
from e2echat_server.version import __version__

_T = TypeVar("_T")
# Sync and the mailbox flush read the store in pages of this many bodies (at most ~3 MiB
# at the largest body), and send each page before reading the next: one request never
# holds a whole history in memory, nor the store's single thread for long.
_READ_PAGE = 64
_PRUNE_EVERY_S = 60.0  # history pruning, forgetting idle users, dropping refilled buckets
# Idle users examined per event-loop step while forgetting: the sweep yields in between,
# so forgetting a million users never holds the loop (or the store's thread) for long.
_FORGET_BATCH = 1000
_MAX_INFLIGHT = 64  # pipelined sends per connection before its reading pauses
_OVERSIZE_FACTOR = 4  # frames up to 4x max_frame get `too_large`; bigger ones close 1009
# Frames received but not yet read by the session, per connection, before websockets stops
# reading the socket: at most 4 x max_size (1 MiB by default) instead of the default 16.
_MAX_QUEUE = 4
_UNSAVED = "The relay could not save that; try again shortly."


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class _AbuseError(Exception):
    """The connection keeps misbehaving: close it with 4429."""


@dataclass(slots=True, eq=False)
class Session:
    """One WebSocket connection and what the relay knows about it."""

    conn: ServerConnection
    ip: str
    limiter: ConnectionLimiter
    started: float
    key: bytes = b""
    frames_in: int = 0
    errors: int = 0
    inflight: int = 0  # pipelined sends not yet acknowledged
    drained: asyncio.Future[None] | None = None  # set when ``inflight`` falls to 0


class Relay:
    """An e2echat relay. Embed it with ``async with Relay(config) as relay: relay.url``.

    ``store`` overrides the store the config would open (tests, custom backends).
    """

    def __init__(self, config: RelayConfig | None = None, *, store: Store | None = None) -> None:
        self.config = config or RelayConfig()
        self.metrics = Metrics()
        self._store = store
        self._directory: Directory | None = None
        self._registry: Registry[ServerConnection] = Registry()
        self._per_ip: Counter[str] = Counter()
        self._new_keys = AddressBudgets(
            self.config.new_keys_per_ip / 3600, self.config.new_keys_burst
        )
        self._catch_ups: dict[bytes, asyncio.TimerHandle] = {}
        self._server: Server | None = None
        self._pruner: asyncio.Task[None] | None = None
        self._inflight: deque[tuple[asyncio.Future[None], Session, Send, Envelope, float]] = deque()
        self._limits = RelayLimits(
            max_frame=self.config.max_frame,
            max_body=self.config.max_body,
            max_members=self.config.max_members,
            history=self.config.history_count,
            mailbox=self.config.mailbox_max,
        )
        self._info = info_document(self.config, __version__)
        self._handlers: dict[type[Any], Callable[[Session, Any], Awaitable[None]]] = {
            CreateRoom: self._create_room,
            JoinRoom: self._join_room,
            LeaveRoom: self._leave_room,
            MembersRequest: self._members,
            ListRooms: self._list_rooms,
            Lookup: self._lookup,
            PrekeyUpdate: self._prekey,
            DirectSend: self._direct,
            Ack: self._ack,
            Sync: self._sync,
            SetStatus: self._status,
            Hello: self._hello_again,
        }

    # Lifecycle ---------------------------------------------------------------------

    @property
    def directory(self) -> Directory:
        if self._directory is None:
            raise RuntimeError("the relay is not started")
        return self._directory

    @property
    def store(self) -> Store:
        if self._store is None:
            raise RuntimeError("the relay is not started")
        return self._store

    @property
    def port(self) -> int:
        """The bound TCP port (useful with port 0)."""
        if self._server is None:
            raise RuntimeError("the relay is not started")
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    @property
    def url(self) -> str:
        """``ws://host:port/`` (``wss://`` with TLS), as a client should dial it."""
        scheme = "wss" if self.config.tls_cert else "ws"
        host = self.config.host
        host = f"[{host}]" if ":" in host else host
        return f"{scheme}://{host}:{self.port}/"

    async def start(self) -> None:
        """Open the store, load the directory and start listening."""
        if self._store is None:
            self._store = (
                MemoryStore()
                if self.config.memory
                else await SqliteStore.open(
                    self.config.data_dir, "FULL" if self.config.fsync else "NORMAL"
                )
            )
        snapshot = await self._store.load()
        self._directory = Directory.from_snapshot(
            snapshot,
            DirectoryLimits(
                max_members=self.config.max_members,
                max_rooms_per_user=self.config.max_rooms_per_user,
                mailbox_max=self.config.mailbox_max,
            ),
            now_ms(),
        )
        self.metrics.rooms = len(self._directory.rooms)
        self.metrics.users = len(self._directory.users)
        try:
            self._server = await serve(
                self._handle,
                self.config.host,
                self.config.port,
                subprotocols=[Subprotocol(SUBPROTOCOL)],
                origins=self._origins(),
                compression=None,
                process_request=self._process_request,
                process_response=self._process_response,
                open_timeout=self.config.handshake_timeout_s,
                ping_interval=self.config.ping_interval_s,
                ping_timeout=self.config.ping_timeout_s,
                max_size=self.config.max_frame * _OVERSIZE_FACTOR,
                max_queue=_MAX_QUEUE,
                ssl=self._tls_context(),
            )
        except BaseException:  # cannot listen (port taken, bad TLS files)
            await self._store.close()
            raise
        self._pruner = asyncio.create_task(self._sweep_forever())
        event(LOGGER, "listening", url=self.url, store=type(self._store).__name__)

    def _origins(self) -> list[Origin | None] | None:
        """Allowed Origin headers; a request without one (not a browser) is always allowed."""
        if not self.config.origins:
            return None
        return [*(Origin(origin) for origin in self.config.origins), None]

    def _tls_context(self) -> ssl.SSLContext | None:
        if self.config.tls_cert is None or self.config.tls_key is None:
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.config.tls_cert, self.config.tls_key)
        return context

    async def close(self) -> None:
        """Close every connection with 1001, let handlers finish, flush and close the store."""
        if self._pruner is not None:
            self._pruner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pruner
            self._pruner = None
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for handle in self._catch_ups.values():
            handle.cancel()
        self._catch_ups.clear()
        if self._store is not None:
            await self._store.close()
        event(LOGGER, "stopped")

    async def __aenter__(self) -> "Relay":
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def _sweep_forever(self) -> None:
        """Housekeeping off the hot path, every minute: what no request would ever clean up."""
        while True:
            await asyncio.sleep(_PRUNE_EVERY_S)
            cutoff = now_ms() - self.config.history_age_s * 1000
            with contextlib.suppress(ProtocolError):
                await self._stored("prune", self.store.prune(cutoff))
            await self.forget_idle(now_ms())
            self._new_keys.prune(asyncio.get_running_loop().time())

    async def forget_idle(self, now: int) -> int:
        """Forget the users idle for ``forget_after_s`` before ``now`` (ms) who are in no
        room and have no mail waiting, in memory and in the store; return how many.

        Without it every key that ever authenticated would stay forever, and fresh keys
        cost an attacker nothing. Runs in batches, yielding to the event loop in between.
        If the store fails the users stay forgotten in memory; the store still holds them,
        so they are loaded again at the next start and forgotten again later.
        """
        cutoff = now - self.config.forget_after_s * 1000
        directory, total = self.directory, 0
        while directory.has_idle_before(cutoff):
            keys = directory.forget(cutoff, _FORGET_BATCH)
            if keys:
                total += len(keys)
                self.metrics.users = len(directory.users)
                self.metrics.users_forgotten += len(keys)
                with contextlib.suppress(ProtocolError):
                    await self._stored("forget_users", self.store.forget_users(keys))
            await asyncio.sleep(0)
        return total

    # HTTP --------------------------------------------------------------------------

    def _process_request(self, conn: ServerConnection, request: Request) -> Response | None:
        answer = route(request, self._info, self.metrics.render)
        if answer is not None:
            self.metrics.http_requests += 1
        return answer

    def _process_response(
        self, conn: ServerConnection, request: Request, response: Response
    ) -> None:
        if response.status_code != 101:
            event(
                ACCESS,
                "http",
                peer=_peer(conn),
                method=request.method,
                path=request.path.split("?", 1)[0],
                status=response.status_code,
                bytes=len(response.body),
            )

    # Connections -------------------------------------------------------------------

    async def _handle(self, conn: ServerConnection) -> None:
        ip = _peer(conn)
        if self._per_ip[ip] >= self.config.max_conn_per_ip:
            self.metrics.handshake_failures["per_ip"] += 1
            await conn.close(CloseCode.POLICY, "Too many connections from your address.")
            return
        loop = asyncio.get_running_loop()
        session = Session(
            conn,
            ip,
            ConnectionLimiter.create(self.config.rate, self.config.burst, loop.time()),
            loop.time(),
        )
        self._per_ip[ip] += 1
        self.metrics.connections += 1
        self.metrics.connections_total += 1
        try:
            if await self._authenticate(session):
                self.metrics.authenticated += 1
                try:
                    await self._serve(session)
                finally:
                    self.metrics.authenticated -= 1
        except _AbuseError:
            await conn.close(CloseCode.RATE_LIMIT, "Too many refused frames; slow down.")
        except ProtocolError as exc:  # the store failed while authenticating
            self._error(session, None, exc.code, exc.message)
            await conn.close(CloseCode.GOING_AWAY, "The relay cannot serve you right now.")
        except ConnectionClosed:
            pass
        except Exception as exc:  # a relay bug outside any request: say where, never what
            event(
                LOGGER,
                "session_failed",
                logging.ERROR,
                error=type(exc).__name__,
                at=crash_site(exc),
            )
            await conn.close(WsCloseCode.INTERNAL_ERROR, "The relay failed; reconnect.")
        finally:
            self.metrics.connections -= 1
            self._per_ip[ip] -= 1
            if not self._per_ip[ip]:
                del self._per_ip[ip]
            if session.key:
                await self._disconnect(session)
            event(
                ACCESS,
                "session",
                peer=ip,
                key=fingerprint(session.key) if session.key else "-",
                seconds=round(loop.time() - session.started, 3),
                frames=session.frames_in,
                errors=session.errors,
                close=conn.close_code,
            )

    async def _authenticate(self, session: Session) -> bool:
        """Challenge, wait for a valid hello, welcome, flush the mailbox, go live."""
        conn = session.conn
        nonce = random_bytes(32)
        self._reply(
            session,
            Challenge(v=PROTOCOL_VERSION, relay=self.config.name, nonce=nonce, limits=self._limits),
        )
        try:
            async with asyncio.timeout(self.config.handshake_timeout_s):
                hello = await self._await_hello(session)
        except TimeoutError:
            self.metrics.handshake_failures["timeout"] += 1
            await conn.close(CloseCode.HANDSHAKE_TIMEOUT, "No valid hello in time.")
            return False
        try:
            verify_hello(hello, self.config.name, nonce)
        except ProtocolError as exc:
            self.metrics.handshake_failures["signature"] += 1
            self._error(session, None, exc.code, exc.message)
            await conn.close(CloseCode.AUTH_FAILED, "Authentication failed.")
            return False
        if hello.key not in self.directory.users and not self._new_keys.take(
            session.ip, asyncio.get_running_loop().time()
        ):
            self.metrics.handshake_failures["new_keys"] += 1
            self._error(
                session,
                None,
                ErrorCode.RATE_LIMITED,
                "Too many new identities from your address; try again later.",
            )
            await conn.close(CloseCode.RATE_LIMIT, "Too many new identities from your address.")
            return False
        user, record = self.directory.authenticate(hello.key, hello.name, hello.prekey)
        session.key = hello.key  # from here on, `_disconnect` releases the session
        self.metrics.users = len(self.directory.users)
        if record is not None:
            await self._stored("put_user", self.store.put_user(record))
        await self._reply_paced(
            session,
            Welcome(
                user=User(key=hello.key, name=hello.name),
                rooms=self.directory.welcome_rooms(hello.key, self.config.welcome_members),
                mailbox=user.mailbox_count,
            ),
        )
        # Directs go live first, then the mailbox is flushed: a direct that commits before
        # `attach` is in the flush, one after it is delivered live (maybe both: at least once).
        first = self._registry.attach(hello.key, conn)
        await self._flush_mailbox(session)
        self._registry.enter(conn, self.directory.rooms_of.get(hello.key, ()))
        if first:
            user.status, user.text = "online", None
            self._announce(hello.key)
        return True

    async def _await_hello(self, session: Session) -> Hello:
        while True:
            frame = await self._next_frame(session)
            if isinstance(frame, Hello):
                return frame
            if frame is not None:
                self._error(
                    session,
                    getattr(frame, "id", None),
                    ErrorCode.UNAUTHENTICATED,
                    "Authenticate first: answer the challenge with hello.",
                )

    async def _next_frame(self, session: Session) -> ClientFrame | None:
        """The next valid frame, or None after answering a bad or refused one."""
        data = await session.conn.recv()
        session.frames_in += 1
        self.metrics.frames_in += 1
        self.metrics.bytes_in += len(data)
        now = asyncio.get_running_loop().time()
        verdict = session.limiter.admit(now)
        if verdict is Verdict.CLOSE:
            raise _AbuseError
        if verdict is Verdict.REFUSE:
            self._error(
                session,
                request_id(data),
                ErrorCode.RATE_LIMITED,
                f"Slow down: at most {self.config.rate:g} frames per second.",
            )
            return None
        try:
            if isinstance(data, bytes):
                raise ProtocolError(
                    ErrorCode.BAD_FRAME, "Send JSON in text frames; binary frames are not used."
                )
            return decode_client_frame(data, self.config.max_frame)
        except ProtocolError as exc:
            if session.limiter.strike(now) is Verdict.CLOSE:
                raise _AbuseError from None
            self._error(session, request_id(data), exc.code, exc.message)
            return None

    async def _serve(self, session: Session) -> None:
        while True:
            frame = await self._next_frame(session)
            if frame is None:
                continue
            request = getattr(frame, "id", None)  # every request but hello has one
            pipelined = isinstance(frame, Send)
            if session.inflight and (not pipelined or session.inflight >= _MAX_INFLIGHT):
                await self._drain(session)
            try:
                if isinstance(frame, Send):
                    self._begin_send(session, frame)
                else:
                    await self._handlers[type(frame)](session, frame)
            except ProtocolError as exc:
                await self._drain(session)  # a refusal must not overtake earlier `sent`s
                self._error(session, request, exc.code, exc.message)
            except ConnectionClosed:
                raise
            except Exception as exc:
                event(
                    LOGGER,
                    "request_failed",
                    logging.ERROR,
                    type=type(frame).__name__,
                    error=type(exc).__name__,
                    at=crash_site(exc),
                )
                self._error(
                    session, request, ErrorCode.INTERNAL, "The relay failed on that request."
                )

    async def _disconnect(self, session: Session) -> None:
        key, now = session.key, now_ms()
        last = self._registry.detach(key, session.conn, self.directory.rooms_of.get(key, ()))
        self.directory.release(key, now)
        if not last:
            return
        user = self.directory.users[key]
        user.status, user.text, user.last_seen = OFFLINE, None, now
        self._announce(key)
        with contextlib.suppress(ProtocolError):
            await self._stored("set_last_seen", self.store.set_last_seen(key, user.last_seen))

    async def _flush_mailbox(self, session: Session) -> None:
        after = 0
        while True:
            batch = await self._stored(
                "mailbox", self.store.mailbox(session.key, after, _READ_PAGE)
            )
            for entry in batch:
                await self._reply_paced(
                    session,
                    DirectDelivery(
                        sender=entry.sender, seq=entry.seq, ts=entry.ts, body=entry.body
                    ),
                )
            if len(batch) < _READ_PAGE:
                return
            after = batch[-1].seq

    # Output ------------------------------------------------------------------------

    def _reply(self, session: Session, frame: RelayFrame) -> None:
        """Queue one reply without waiting (bounded like fan-out: see ``_fanout``)."""
        self._fanout((session.conn,), encode_frame(frame))

    async def _reply_paced(self, session: Session, frame: RelayFrame) -> None:
        """Send one of many replies (sync, mailbox), waiting while the client's buffer is full."""
        data = encode_frame(frame)
        self.metrics.bytes_out += len(data)
        await session.conn.send(data, text=True)

    def _error(self, session: Session, request: str | None, code: ErrorCode, message: str) -> None:
        self.metrics.errors[code.value] += 1
        session.errors += 1
        self._reply(session, Error(id=request, code=code, message=printable(message)))

    def _fanout(
        self, conns: Iterable[ServerConnection], data: bytes, skip: ServerConnection | None = None
    ) -> int:
        """Send ``data`` to ``conns`` without waiting; drop any whose buffer overflowed."""
        limit = self.config.send_buffer
        targets = []
        for conn in conns:
            if conn is skip:
                continue
            transport = conn.transport
            if transport.is_closing():
                continue
            if transport.get_write_buffer_size() > limit:
                self.metrics.slow_consumers += 1
                event(LOGGER, "slow_consumer", logging.WARNING, peer=_peer(conn))
                transport.abort()
                continue
            targets.append(conn)
        broadcast(targets, data, text=True)
        self.metrics.bytes_out += len(data) * len(targets)
        return len(targets)

    def _announce(self, key: bytes) -> None:
        """Broadcast ``key``'s presence after it went online or offline, within its budget.

        Over budget (a reconnect loop), one catch-up is scheduled for when the budget
        allows, and it announces the state as it is then: peers see fewer transitions,
        never a stale final state.
        """
        loop = asyncio.get_running_loop()
        wait = self.directory.presence_due(key, loop.time())
        if wait is None:
            self._presence(key)
            return
        self.metrics.presence_deferred += 1
        if key not in self._catch_ups:
            self._catch_ups[key] = loop.call_later(wait, self._catch_up, key)

    def _catch_up(self, key: bytes) -> None:
        del self._catch_ups[key]
        user = self.directory.users.get(key)
        if user is not None and user.presence_pending:  # else a status frame or eviction won
            self._announce(key)

    def _presence(self, key: bytes) -> None:
        """Tell everyone who shares a room with ``key`` about its presence."""
        user = self.directory.users[key]
        data = encode_frame(
            Presence(
                key=key,
                status=user.status,
                text=user.text,
                last_seen=user.last_seen if user.status == OFFLINE else None,
            )
        )
        conns: set[ServerConnection] = set()
        for peer in self.directory.peers(key):
            conns.update(self._registry.of(peer))
        self._fanout(conns, data)

    async def _stored(self, operation: str, work: Awaitable[_T]) -> _T:
        """Await a store call, timing it; a failure becomes `unavailable` (and is logged)."""
        start = time.perf_counter()
        try:
            return await work
        except Exception as exc:
            event(LOGGER, "store_failed", logging.ERROR, op=operation, error=type(exc).__name__)
            raise ProtocolError(ErrorCode.UNAVAILABLE, _UNSAVED) from None
        finally:
            self.metrics.observe_store(operation, time.perf_counter() - start)

    # Requests ----------------------------------------------------------------------

    async def _hello_again(self, session: Session, frame: Hello) -> None:
        raise ProtocolError(ErrorCode.UNAUTHENTICATED, "This connection is already authenticated.")

    async def _create_room(self, session: Session, frame: CreateRoom) -> None:
        directory, key, now = self.directory, session.key, now_ms()
        room = directory.create_room(key, frame, random_bytes(16), now)
        room_id = room.record.id
        try:
            await self._stored(
                "create_room", self.store.create_room(room.record, MemberRecord(room_id, key, now))
            )
        except ProtocolError:
            directory.drop_room(room_id)
            raise
        self.metrics.rooms = len(directory.rooms)
        self._registry.join(room_id, key)
        self._reply(session, RoomReply(id=frame.id, room=directory.room_info(room)))

    async def _join_room(self, session: Session, frame: JoinRoom) -> None:
        directory, key = self.directory, session.key
        room, already = directory.check_join(key, frame)
        room_id = room.record.id
        if not already:
            joined = now_ms()
            directory.add_member(room_id, key, joined)
            try:
                await self._stored(
                    "add_member", self.store.add_member(MemberRecord(room_id, key, joined))
                )
            except ProtocolError:
                directory.remove_member(room_id, key)
                raise
            self._registry.join(room_id, key)
            data = encode_frame(MemberJoined(room=room_id, member=directory.member(key, joined)))
            self._fanout(self._registry.in_room(room_id), data, skip=session.conn)
        self._reply(session, RoomReply(id=frame.id, room=directory.room_info(room)))

    async def _leave_room(self, session: Session, frame: LeaveRoom) -> None:
        directory, key = self.directory, session.key
        room = directory.member_room(key, frame.room)
        joined = room.members[key]
        directory.remove_member(frame.room, key)
        last = not room.members
        if last:
            directory.drop_room(frame.room)
        try:
            await self._stored("remove_member", self.store.remove_member(frame.room, key, last))
        except ProtocolError:
            if last:
                directory.restore_room(room)
            directory.add_member(frame.room, key, joined)
            raise
        self._registry.leave(frame.room, key)
        self.metrics.rooms = len(directory.rooms)
        if not last:
            data = encode_frame(MemberLeft(room=frame.room, key=key))
            self._fanout(self._registry.in_room(frame.room), data)
        self._reply(session, Ok(id=frame.id))

    async def _members(self, session: Session, frame: MembersRequest) -> None:
        room = self.directory.member_room(session.key, frame.room)
        members = self.directory.members(room)
        self._reply(session, MembersList(id=frame.id, room=frame.room, members=members))

    async def _list_rooms(self, session: Session, frame: ListRooms) -> None:
        rooms = [self.directory.summary(room) for room in self.directory.listed()]
        self._reply(session, RoomList(id=frame.id, rooms=rooms))

    async def _lookup(self, session: Session, frame: Lookup) -> None:
        room = self.directory.lookup(frame.name)
        self._reply(session, SummaryReply(id=frame.id, room=self.directory.summary(room)))

    async def _prekey(self, session: Session, frame: PrekeyUpdate) -> None:
        if not prekey_signed(session.key, frame.prekey):
            raise ProtocolError(
                ErrorCode.BAD_FRAME, "The prekey is not signed by your identity key."
            )
        user = self.directory.users[session.key]
        previous = user.prekey
        record = self.directory.set_prekey(session.key, frame.prekey)
        try:
            await self._stored("put_user", self.store.put_user(record))
        except ProtocolError:
            user.prekey = previous
            raise
        self._reply(session, Ok(id=frame.id))

    def _begin_send(self, session: Session, frame: Send) -> None:
        """Decide a `send` now and start its durable write; `_finish_sends` completes it.

        Sends are pipelined: the connection reads its next frame while the write is in
        flight, so consecutive messages share a transaction. Writes complete in the order
        they were submitted, and ``_inflight`` is drained strictly from the front, so
        fan-out stays in seq order in every room and `sent` replies in frame order.
        """
        if len(frame.body) > self.config.max_body:
            raise ProtocolError(
                ErrorCode.TOO_LARGE, f"A body may be at most {self.config.max_body} bytes."
            )
        room = self.directory.member_room(session.key, frame.room)
        seq, ts = self.directory.next_message(room, now_ms())
        envelope = Envelope(seq, ts, session.key, frame.body)
        # A future (SqliteStore) is used as is; a coroutine store's write becomes a task.
        write = asyncio.ensure_future(
            self.store.append(frame.room, envelope, self.config.history_count)
        )
        self._inflight.append((write, session, frame, envelope, time.perf_counter()))
        session.inflight += 1
        write.add_done_callback(self._finish_sends)

    def _finish_sends(self, _: object) -> None:
        """Fan out and acknowledge every completed send at the front of the pipeline."""
        inflight = self._inflight
        if not inflight or not inflight[0][0].done():
            return
        metrics, finished = self.metrics, time.perf_counter()
        while inflight and inflight[0][0].done():
            write, session, frame, envelope, started = inflight.popleft()
            session.inflight -= 1
            metrics.observe_store("append", finished - started)
            error = None if write.cancelled() else write.exception()
            if write.cancelled() or error is not None:
                event(
                    LOGGER,
                    "store_failed",
                    logging.ERROR,
                    op="append",
                    error="CancelledError" if error is None else type(error).__name__,
                )
                self._error(session, frame.id, ErrorCode.UNAVAILABLE, _UNSAVED)
            else:
                data = encode_frame(
                    Message(
                        room=frame.room,
                        seq=envelope.seq,
                        ts=envelope.ts,
                        sender=envelope.sender,
                        body=envelope.body,
                    )
                )
                metrics.messages_in += 1
                metrics.messages_out += self._fanout(
                    self._registry.in_room(frame.room), data, skip=session.conn
                )
                self._reply(
                    session, Sent(id=frame.id, room=frame.room, seq=envelope.seq, ts=envelope.ts)
                )
            if not session.inflight and session.drained is not None:
                session.drained.set_result(None)
                session.drained = None

    async def _drain(self, session: Session) -> None:
        """Wait until this connection's pipelined sends are acknowledged (to keep order)."""
        if session.inflight:
            if session.drained is None:
                session.drained = asyncio.get_running_loop().create_future()
            await session.drained

    async def _direct(self, session: Session, frame: DirectSend) -> None:
        if len(frame.body) > self.config.max_body:
            raise ProtocolError(
                ErrorCode.TOO_LARGE, f"A body may be at most {self.config.max_body} bytes."
            )
        seq = self.directory.next_mailbox(frame.to)
        ts = now_ms()
        try:
            await self._stored(
                "mailbox_put",
                self.store.mailbox_put(frame.to, Envelope(seq, ts, session.key, frame.body)),
            )
        except ProtocolError:
            self.directory.users[frame.to].mailbox_count -= 1
            raise
        self.metrics.directs_in += 1
        data = encode_frame(DirectDelivery(sender=session.key, seq=seq, ts=ts, body=frame.body))
        self._fanout(self._registry.of(frame.to), data)
        self._reply(session, Sent(id=frame.id, room=None, seq=seq, ts=ts))

    async def _ack(self, session: Session, frame: Ack) -> None:
        removed = await self._stored(
            "mailbox_ack", self.store.mailbox_ack(session.key, frame.mailbox)
        )
        user = self.directory.users[session.key]
        user.mailbox_count = max(0, user.mailbox_count - removed)
        self._reply(session, Ok(id=frame.id))

    async def _sync(self, session: Session, frame: Sync) -> None:
        room = self.directory.member_room(session.key, frame.room)
        remaining = frame.limit or MAX_SYNC_LIMIT
        not_before = now_ms() - self.config.history_age_s * 1000
        after = frame.after
        while remaining:
            page = min(remaining, _READ_PAGE)
            batch = await self._stored(
                "history", self.store.history(frame.room, after, not_before, page)
            )
            for entry in batch:
                await self._reply_paced(
                    session,
                    Message(
                        room=frame.room,
                        seq=entry.seq,
                        ts=entry.ts,
                        sender=entry.sender,
                        body=entry.body,
                    ),
                )
            if len(batch) < page:
                break
            remaining -= page
            after = batch[-1].seq
        self._reply(session, Synced(id=frame.id, room=frame.room, seq=room.seq))

    async def _status(self, session: Session, frame: SetStatus) -> None:
        now = asyncio.get_running_loop().time()
        if self.directory.set_status(session.key, frame.status, frame.text, now):
            self._presence(session.key)
        self._reply(session, Ok(id=frame.id))


def _peer(conn: ServerConnection) -> str:
    address = conn.remote_address
    return str(address[0]) if address else "-"
