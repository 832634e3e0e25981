"""The relay's lifecycle: open the engine, load the directory, listen, sweep, close.

Decisions live in the pure modules (directory, connections, ratelimit, handshake, http);
a connection's life is in sessions.py, requests in handlers.py, room messages in
pipeline.py, everything written to clients goes through output.py, and state and
fan-out sit behind the engine (engine.py). This module wires them and runs the server.
"""

import asyncio
import contextlib
import ssl
import tempfile
from pathlib import Path

from redis.exceptions import RedisError
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response
from websockets.typing import Origin, Subprotocol

from e2echat.protocol import BLOB_PATH, SUBPROTOCOL, CloseCode, ProtocolError, RoomDeleted
from e2echat_server import logs
from e2echat_server.access import AccessPolicy, read_keys
from e2echat_server.blobs import BlobLimits, BlobStore
from e2echat_server.blobservice import BlobService
from e2echat_server.clock import now_ms
from e2echat_server.config import LIVE, ConfigError, RelayConfig, field_names, split_address
from e2echat_server.directory import Directory, DirectoryLimits
from e2echat_server.engine import Engine, LocalBroker, open_store
from e2echat_server.eventloop import running_loop_name
from e2echat_server.http import info_document, metrics_route, route
from e2echat_server.logs import ACCESS, LOGGER, event, fingerprint
from e2echat_server.metrics import Metrics
from e2echat_server.operator_state import LocalOperatorState, OperatorState, RedisOperatorState
from e2echat_server.output import Delivery, Output
from e2echat_server.proxied import proxied_connection
from e2echat_server.proxies import client_address, networks
from e2echat_server.redis_broker import RedisBroker
from e2echat_server.session import Session, peer, remember_client, remote
from e2echat_server.sessions import BANNED_REASON, Sessions
from e2echat_server.store import RedisStore, RoomDeletionRecord, Store
from e2echat_server.store.redis import refusal, refused
from e2echat_server.tls import ReloadableTls
from e2echat_server.version import __version__

_PRUNE_EVERY_S = 60.0  # history pruning, forgetting idle users, dropping refilled buckets
# Idle users examined per event-loop step while forgetting: the sweep yields in between,
# so forgetting a million users never holds the loop (or the store's thread) for long.
_FORGET_BATCH = 1000
_OVERSIZE_FACTOR = 4  # frames up to 4x max_frame get `too_large`; bigger ones close 1009
# Frames received but not yet read by the session, per connection, before websockets stops
# reading the socket: at most 4 x max_size (1 MiB by default) instead of the default 16.
_MAX_QUEUE = 4
REDIS_LOST_REASON = "The relay lost its connection to Redis; reconnect shortly."
# Seconds a closing connection waits for the peer's close frame before the socket is
# dropped: a peer closed for abuse must not keep its socket (and address slot) for long.
_CLOSE_TIMEOUT_S = 1.0


async def _no_websocket(conn: ServerConnection) -> None:
    """Never reached: the metrics listener answers every request before an upgrade."""
    await conn.close()


class Relay:
    """An e2echat relay. Embed it with ``async with Relay(config) as relay: relay.url``.

    ``store`` overrides the store the config would open (tests, custom backends).
    """

    def __init__(self, config: RelayConfig | None = None, *, store: Store | None = None) -> None:
        self.config = config or RelayConfig()
        self.metrics = Metrics()
        self._given_store = store
        self._engine: Engine[ServerConnection] | None = None
        self._directory: Directory | None = None
        self._output: Output | None = None
        self._sessions: Sessions | None = None
        self._blobs: BlobService | None = None
        self._blob_dir: tempfile.TemporaryDirectory[str] | None = None
        self._server: Server | None = None
        self._metrics_server: Server | None = None
        self._pruner: asyncio.Task[None] | None = None
        self._closing: set[asyncio.Task[None]] = set()
        self._info = info_document(self.config, __version__)
        self._tls: ReloadableTls | None = None
        self._banned: frozenset[bytes] = frozenset()
        self._operator: OperatorState | None = None

    # Lifecycle ---------------------------------------------------------------------

    @property
    def directory(self) -> Directory:
        if self._directory is None:
            raise RuntimeError("the relay is not started")
        return self._directory

    @property
    def engine(self) -> Engine[ServerConnection]:
        if self._engine is None:
            raise RuntimeError("the relay is not started")
        return self._engine

    @property
    def store(self) -> Store:
        return self.engine.store

    @property
    def sessions(self) -> Sessions:
        if self._sessions is None:
            raise RuntimeError("the relay is not started")
        return self._sessions

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
        """Open the engine, load the directory and start listening.

        Raises ConfigError if Redis refuses the relay (the credentials, an ACL permission,
        the database): a bad ``redis`` setting, which no retry mends.
        """
        try:
            await self._start()
        except RedisError as exc:
            if self.config.redis is None or not refused(exc):
                raise
            raise ConfigError(f"Setting 'redis': {refusal(exc, self.config.redis)}") from None

    async def _start(self) -> None:
        config = self.config
        delivery = Delivery(config.send_buffer, self.metrics)
        engine = self._engine = await self._open_engine(delivery)
        store, broker = engine.store, engine.broker
        try:
            if isinstance(broker, RedisBroker):
                await broker.start()  # subscribed before loading: no notice falls between
            snapshot = await store.load()
        except BaseException:
            await engine.close()
            raise
        directory = self._directory = Directory.from_snapshot(
            snapshot,
            DirectoryLimits(
                max_members=config.max_members,
                max_rooms_per_user=config.max_rooms_per_user,
                mailbox_max=config.mailbox_max,
            ),
            now_ms(),
        )
        self._output = Output(
            engine.broker, delivery, directory, self.metrics, config.send_timeout_s
        )
        self._sessions = Sessions(config, directory, engine, self._output)
        self._blobs = BlobService(self._open_blobs(), directory, self._output)
        self._sessions.handlers.table.update(self._blobs.handlers())
        operator = self._operator = await self._open_operator_state(store)
        self._banned = await operator.banned()
        self._sessions.set_access(self._access(config))
        self._sessions.operator = operator
        if isinstance(broker, RedisBroker):
            broker.on_banned = self._banned_elsewhere
        self.metrics.count_rooms = lambda: len(directory.rooms)
        self.metrics.count_users = lambda: len(directory.users)
        try:
            if isinstance(broker, RedisBroker):
                await broker.follow(directory)
            self._server = await serve(
                self._serve,
                config.host,
                config.port,
                subprotocols=[Subprotocol(SUBPROTOCOL)],
                origins=self._origins(),
                compression=None,
                process_request=self._process_request,
                process_response=self._process_response,
                open_timeout=config.handshake_timeout_s,
                ping_interval=config.ping_interval_s,
                ping_timeout=config.ping_timeout_s,
                close_timeout=_CLOSE_TIMEOUT_S,
                max_size=config.max_frame * _OVERSIZE_FACTOR,
                max_queue=_MAX_QUEUE,
                ssl=self._tls_context(),
                create_connection=self._connection_class(),
            )
            self._metrics_server = await self._serve_metrics()
        except BaseException:  # cannot listen (port taken, bad TLS files)
            if self._server is not None:
                self._server.close()
                await self._server.wait_closed()
            await engine.close()
            raise
        self._pruner = asyncio.create_task(self._sweep_forever())
        event(
            LOGGER,
            "listening",
            url=self.url,
            store=type(store).__name__,
            loop=running_loop_name(),
        )
        if self._metrics_server is not None:
            event(LOGGER, "metrics_listening", url=self.metrics_url)

    async def _serve_metrics(self) -> Server | None:
        """The separate metrics listener, if configured: plain HTTP, no WebSocket."""
        if self.config.metrics_listen is None:
            return None
        address = split_address(self.config.metrics_listen)
        assert address is not None  # checked by the config
        render, broker = self.metrics.render, self.engine.broker
        return await serve(
            _no_websocket,
            *address,
            process_request=lambda conn, request: metrics_route(
                request, render, broker.unavailable()
            ),
            compression=None,
        )

    @property
    def metrics_url(self) -> str | None:
        """``http://host:port/metrics`` of the metrics listener, if there is one."""
        if self._metrics_server is None:
            return None
        host, port = self._metrics_server.sockets[0].getsockname()[:2]
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{port}/metrics"

    async def _open_engine(self, delivery: Delivery) -> Engine[ServerConnection]:
        """The given store with a local broker, Redis shared with other relays, or the
        single-node store the config asks for."""
        config = self.config
        if self._given_store is None and config.redis is not None:
            shared = await RedisStore.open(
                config.redis,
                replicas=config.redis_replicas,
                replica_timeout_s=config.redis_replica_timeout_s,
            )
            keepalive = config.ping_interval_s + config.ping_timeout_s
            broker = RedisBroker(
                shared, config.redis, delivery.send, keepalive, self._drop_connections
            )
            return Engine(shared, broker, self.metrics)
        store = self._given_store or await open_store(
            config.memory,
            config.data_dir,
            config.fsync,
            create=config.create_db,
            repair=config.repair_db,
            commit_window_s=config.commit_window_ms / 1000,
        )
        return Engine(store, LocalBroker(delivery.send), self.metrics)

    def _drop_connections(self) -> None:
        """Close every client connection (1013, try again later): they reconnect and
        resume by sync."""
        if self._server is None:
            return
        for conn in list(self._server.connections):
            task = asyncio.create_task(conn.close(CloseCode.TRY_AGAIN_LATER, REDIS_LOST_REASON))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    def _open_blobs(self) -> BlobStore:
        """Blobs under the data dir, or a temporary dir for a memory relay."""
        if self.config.memory:
            self._blob_dir = tempfile.TemporaryDirectory(prefix="e2echat-blobs-")
            root = Path(self._blob_dir.name)
        else:
            root = self.config.data_dir / "blobs"
        return BlobStore(root, BlobLimits(self.config.blob_max_size, self.config.blob_quota))

    @property
    def blobs(self) -> BlobService:
        if self._blobs is None:
            raise RuntimeError("the relay is not started")
        return self._blobs

    async def _serve(self, conn: ServerConnection) -> None:
        """A chat session at ``/``, one file transfer at ``/blob`` (counted per address)."""
        if conn.request is None or conn.request.path.split("?", 1)[0] != BLOB_PATH:
            await self.sessions.serve(conn)
            return
        ip, per_ip = peer(conn), self.sessions.per_ip
        if per_ip[ip] >= self.config.max_conn_per_ip:
            self.metrics.refusals.refused("per_ip", peer=ip)
            await conn.close(CloseCode.POLICY, "Too many connections from your address.")
            return
        per_ip[ip] += 1
        try:
            await self.blobs.serve(conn, self.config.handshake_timeout_s)
        finally:
            per_ip[ip] -= 1
            if not per_ip[ip]:
                del per_ip[ip]

    def _connection_class(self) -> type[ServerConnection] | None:
        """With ``proxy_protocol``: connections that read a trusted peer's PROXY header."""
        if not self.config.proxy_protocol:
            return None
        return proxied_connection(
            lambda: networks(self.config.trusted_proxy),
            lambda reason, ip: self.metrics.refusals.refused(reason, peer=ip),
        )

    def _origins(self) -> list[Origin | None] | None:
        """Allowed Origin headers; a request without one (not a browser) is always allowed."""
        if not self.config.origins:
            return None
        return [*(Origin(origin) for origin in self.config.origins), None]

    def _tls_context(self) -> ssl.SSLContext | None:
        if self.config.tls_cert is None or self.config.tls_key is None:
            return None
        self._tls = ReloadableTls(self.config.tls_cert, self.config.tls_key)
        return self._tls.listening

    def _access(self, config: RelayConfig) -> AccessPolicy:
        """The access rules of ``config``, reading its key file (KeyListError, OSError)."""
        return AccessPolicy(
            config.registration, config.room_creation, read_keys(config.allow_keys), self._banned
        )

    async def _open_operator_state(self, store: Store) -> OperatorState:
        """Bans and tokens: in the shared Redis, or beside the database (a memory relay,
        or one given its store, keeps them in memory)."""
        if isinstance(store, RedisStore):
            return RedisOperatorState(store)
        keep = self._given_store is None and not self.config.memory
        local = LocalOperatorState(self.config.data_dir if keep else None)
        await local.load()
        return local

    @property
    def operator(self) -> OperatorState:
        """Banned keys and registration tokens (shared with every relay of one Redis)."""
        if self._operator is None:
            raise RuntimeError("the relay is not started")
        return self._operator

    @property
    def banned(self) -> frozenset[bytes]:
        return self._banned

    async def ban(self, key: bytes, banned: bool = True) -> bool:
        """Ban (or unban) ``key``: its connection is closed and it may not authenticate,
        on this relay and every relay sharing its Redis. Kept in the data dir's
        ``banned-keys`` file, or in Redis. Returns False if nothing changed."""
        changed = await self.engine.call("ban", self.operator.set_banned(key, banned))
        live = self._follow_ban(key, banned)
        if live is not None:
            await live.conn.close(CloseCode.AUTH_FAILED, BANNED_REASON)
        return changed

    def _banned_elsewhere(self, key: bytes, banned: bool) -> None:
        """Another relay banned (or unbanned) ``key``: do the same here."""
        live = self._follow_ban(key, banned)
        if live is not None:
            task = asyncio.create_task(live.conn.close(CloseCode.AUTH_FAILED, BANNED_REASON))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    def _follow_ban(self, key: bytes, banned: bool) -> Session | None:
        """Refuse (or admit) ``key`` from now on; its live connection to close, if any."""
        self._banned = self._banned | {key} if banned else self._banned - {key}
        access = self.sessions.access
        self.sessions.set_access(
            AccessPolicy(access.registration, access.room_creation, access.allowed, self._banned)
        )
        return self.sessions.live(key) if banned else None

    async def delete_room(self, room_id: bytes, reason: str) -> int:
        """Delete a room for everyone (``admin delete``): its members, history, membership
        log and files go, its name is free at once, and every member's live connections,
        on any relay sharing the store, get ``room_deleted`` with ``reason``. Returns how
        many members it had. Raises ProtocolError (no such room, or the store failed,
        changing nothing). Each member it had is told again after every ``welcome`` for
        ``forget_after_s`` (``room_deletion``): one offline now is told at its next
        connection, and does not take the room for lost."""
        now = now_ms()
        deletion = RoomDeletionRecord(room_id, reason, now, now + self.config.forget_after_s * 1000)
        room, change = self.directory.delete_room(deletion)
        await self.engine.apply(change)
        members = list(room.members)
        for key in members:
            self.engine.broker.left(room_id, key)
        assert self._output is not None
        self._output.to_keys(members, RoomDeleted(room=room_id, reason=reason))
        await asyncio.to_thread(self.blobs.sweep, self.config.history_age_s)
        event(LOGGER, "room_deleted", room=fingerprint(room_id), members=len(members))
        return len(members)

    def reload(self, config: RelayConfig) -> tuple[list[str], list[str]]:
        """Apply ``config``'s live settings (SIGHUP): the TLS certificate, logging, limits.

        Returns the settings applied and those changed that need a restart (kept as they
        are). Raises ConfigError or OSError, changing nothing, if they cannot be applied.
        """
        old = self.config
        changed = [n for n in field_names() if getattr(old, n) != getattr(config, n)]
        applied = [n for n in changed if n in LIVE]
        values = {n: getattr(config if n in LIVE else old, n) for n in field_names()}
        tls_files = ("tls_cert", "tls_key")
        if self._tls is None:  # TLS cannot be switched on or off without a restart
            values.update({n: getattr(old, n) for n in tls_files})
            applied = [n for n in applied if n not in tls_files]
        merged = RelayConfig(**values)
        access = self._access(merged)
        if self._tls is not None and merged.tls_cert and merged.tls_key:
            self._tls.reload(merged.tls_cert, merged.tls_key)
        logs.configure(merged.log_level, merged.log_json)
        self.config = merged
        self.directory.limits = DirectoryLimits(
            max_members=merged.max_members,
            max_rooms_per_user=merged.max_rooms_per_user,
            mailbox_max=merged.mailbox_max,
        )
        self.sessions.reconfigure(merged)
        self.sessions.set_access(access)
        if self._output is not None:
            self._output.reconfigure(merged.send_buffer, merged.send_timeout_s)
        restart = [n for n in changed if n not in applied]
        event(
            LOGGER,
            "reloaded",
            applied=",".join(applied) or "-",
            restart_needed=",".join(restart) or "-",
        )
        return applied, restart

    async def close(self) -> None:
        """Close every connection with 1001, let sessions finish, flush and close the engine."""
        if self._pruner is not None:
            self._pruner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pruner
            self._pruner = None
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        if self._metrics_server is not None:
            self._metrics_server.close()
            await self._metrics_server.wait_closed()
        if self._output is not None:
            self._output.close()
        if self._engine is not None:
            await self._engine.close()
        if self._blob_dir is not None:
            self._blob_dir.cleanup()
            self._blob_dir = None
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
                await self.engine.call("prune", self.store.prune(cutoff))
            with contextlib.suppress(ProtocolError):
                await self.engine.call("prune_deletions", self.store.prune_deletions(now_ms()))
            await self.forget_idle(now_ms())
            await asyncio.to_thread(self.blobs.sweep, self.config.history_age_s)
            self.sessions.new_keys.prune(asyncio.get_running_loop().time())

    async def forget_idle(self, now: int) -> int:
        """Forget the users idle for ``forget_after_s`` before ``now`` (ms) who are in no
        room and have no mail waiting, in memory and in the store; return how many.

        Without it every key that ever authenticated would stay forever, and fresh keys
        cost an attacker nothing. Runs in batches, yielding to the event loop in between.
        """
        cutoff = now - self.config.forget_after_s * 1000
        directory, total = self.directory, 0
        while directory.has_idle_before(cutoff):
            keys, change = directory.forgetting(cutoff, _FORGET_BATCH)
            if keys:
                total += len(keys)
                self.metrics.users_forgotten += len(keys)
                with contextlib.suppress(ProtocolError):
                    await self.engine.apply(change)
            await asyncio.sleep(0)
        return total

    # HTTP --------------------------------------------------------------------------

    def _process_request(self, conn: ServerConnection, request: Request) -> Response | None:
        if self.config.trusted_proxy:
            remember_client(
                conn,
                client_address(
                    remote(conn),
                    request.headers.get_all("X-Forwarded-For"),
                    request.headers.get_all("Forwarded"),
                    networks(self.config.trusted_proxy),
                ),
            )
        public_metrics = None if self.config.metrics_listen else self.metrics.render
        answer = route(request, self._info, public_metrics, self.engine.broker.unavailable())
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
                peer=peer(conn),
                method=request.method,
                path=request.path.split("?", 1)[0],
                status=response.status_code,
                bytes=len(response.body),
            )
