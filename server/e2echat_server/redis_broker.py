"""The Broker of relays sharing one Redis: this relay's connections, and the others' news.

Every relay delivers only to its own connections. What it fans out it also publishes on
the bus (bus.py) for the others, which deliver it to theirs; what the store made durable
(users, rooms, memberships) the store publishes itself, and each relay applies the
others' notices to its in-memory directory, so every relay decides requests as one would.

Presence across relays: a relay tells the others when a key's first connection to it
opens and its last closes, and keeps which other relays each key is online on, so a key
goes offline (and is announced so) only when its last connection anywhere closes. Each
relay renews a heartbeat; one that misses it for the keepalive window (ping interval plus
ping timeout) is buried by whichever relay notices first, and every relay then takes that
relay's keys offline for its own connections.

When the subscription to the bus breaks (Redis restarted, the network cut, or a bus that
answers no PING after a quiet quarter window: a cut no socket reports), this relay
may have missed notices and messages: it closes its connections, and once subscribed
again closes any made meanwhile, so that every client resumes from its sequence numbers
(``sync``) and misses nothing. Until then, and while Redis refuses its heartbeat, it says
why it cannot serve (`unavailable`: /healthz answers 503).
"""

import asyncio
import contextlib
import logging
import math
import os
import time
from collections.abc import Callable, Iterable
from collections.abc import Set as AbstractSet
from typing import Any, Final, Generic, TypeVar, cast

import msgspec
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from e2echat.protocol import ErrorCode, Message, Presence, ProtocolError, encode_frame
from e2echat_server import bus
from e2echat_server.connections import among
from e2echat_server.directory import OFFLINE, Directory, PresenceStatus
from e2echat_server.engine import Deliver, LocalBroker
from e2echat_server.logs import LOGGER, event
from e2echat_server.store.base import RoomRecord, UserRecord
from e2echat_server.store.redis import Command, RedisStore, refused

C = TypeVar("C")
# How long a join by name waits for the other relays' news before saying it cannot
# tell: far above a working bus's milliseconds, so a loaded machine still gets an answer.
_CATCH_UP_S: Final = 5.0
_BUS_BEHIND: Final = "The relay is behind on other relays' news; try again shortly."
_RESUBSCRIBE_S: Final = (0.05, 0.1, 0.2, 0.5, 1.0)  # backoff while the bus is unreachable


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class RedisBroker(LocalBroker[C], Generic[C]):
    """Local delivery (as `LocalBroker`) plus the bus, presence and node liveness."""

    def __init__(
        self,
        store: RedisStore,
        url: str,
        deliver: Deliver[C],
        keepalive_s: float,
        close_all: Callable[[], None],
    ) -> None:
        super().__init__(deliver)
        self._store = store
        self._keys = store.keys
        self.node = store.node
        # RESP2: a notice is a plain [b"message", channel, data] answer on its connection.
        self._subscriber: Redis = Redis.from_url(url, retry=Retry(NoBackoff(), 0), protocol=2)
        self._keepalive_s = keepalive_s
        self._close_all = close_all  # drop every client connection: they resume by sync
        self.remote: dict[bytes, set[bytes]] = {}  # key -> the other relays it is online on
        self._directory: Directory | None = None
        self._early: list[bus.Publication] = []  # notices received before `follow`
        self._tasks: list[asyncio.Task[None]] = []
        self._subscribed = asyncio.Event()  # set while subscribed to the bus
        self._down_since: float | None = None  # when the bus was lost (monotonic), if it is
        self._beat_failing = False  # the last heartbeat failed
        self._beat_soon = asyncio.Event()  # renew the heartbeat now, not at its next turn
        self.outages = 0  # subscriptions lost (monitoring, tests)
        self._bus_heard = 0  # answers read on the bus (the watchdog compares them)
        # The relay's hook for a ban made on another relay (operator_state.py).
        self.on_banned: Callable[[bytes, bool], None] = _ignore_ban
        self._barriers: dict[bytes, asyncio.Future[None]] = {}
        self._own = bus.origin_prefix(self.node)
        self._attached: dict[bytes, int] = {}  # key -> when its newest connection here opened
        self._taken: Callable[[bytes], None] = lambda _key: None

    # Lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        """Subscribe to the bus and announce this relay (before the directory is loaded,
        so no notice falls between the snapshot and the subscription).

        Raises what Redis refused (the credentials, an ACL permission: `refused`) at once,
        and a ConnectionError if the bus is not subscribed within the keepalive window.
        """
        listener = asyncio.create_task(self._listen_forever(), name="e2echat-bus")
        self._tasks.append(listener)
        subscribed = asyncio.create_task(self._subscribed.wait())
        try:
            await asyncio.wait(
                (listener, subscribed),
                timeout=self._keepalive_s,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            subscribed.cancel()
        if listener.done():  # it ends only on a refusal
            self._tasks.remove(listener)
            listener.result()
        if not self._subscribed.is_set():
            raise RedisConnectionError(
                f"no subscription to the Redis bus within {self._keepalive_s:g} s"
                " (the bus_lost line says why)"
            )
        await self._beat()

    async def follow(self, directory: Directory) -> None:
        """Apply the notices received since `start`, and every later one as it comes;
        learn which keys are online on the other live relays."""
        self._directory = directory
        early, self._early = self._early, []
        for publication in early:
            self._apply(publication)
        await self._learn_online()
        self._tasks.append(asyncio.create_task(self._beat_forever(), name="e2echat-heartbeat"))

    def unavailable(self) -> str | None:
        """Why this relay cannot serve now, or None: it lost the bus (it may have missed
        notices, and Redis is likely down), or Redis does not take its heartbeat."""
        if not self._subscribed.is_set():
            return "the relay lost its Redis bus"
        if self._beat_failing:
            return "Redis does not take the relay's heartbeat"
        return None

    async def close(self) -> None:
        """Stop listening; withdraw this relay's heartbeat and its keys' presence."""
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        k, node = self._keys, self.node
        with contextlib.suppress(RedisError, OSError):
            await self._store.client.zrem(k.nodes, node)
            await self._bury(node)
        await self._subscriber.aclose()

    # Broker --------------------------------------------------------------------------

    def attach(self, key: bytes, conn: C) -> bool:
        """Every new connection is told to the other relays (not only a key's first
        here): any of them holding an older connection of ``key`` closes it."""
        first = super().attach(key, conn)
        since = self._attached[key] = _now_ms()
        k = self._keys
        self._send(
            ("HSET", k.online(key), self.node, 1),
            ("SADD", k.node_keys(self.node), key),
            self._notice(bus.KeyOnline(key, True, since)),
        )
        return first and not self.remote.get(key)  # online elsewhere: it did not come online

    def on_taken(self, taken: Callable[[bytes], None]) -> None:
        self._taken = taken

    def detach(self, key: bytes, conn: C, rooms: Iterable[bytes]) -> bool:
        last = super().detach(key, conn, rooms)
        if last:
            self._attached.pop(key, None)
            k = self._keys
            self._send(
                ("HDEL", k.online(key), self.node),
                ("SREM", k.node_keys(self.node), key),
                self._notice(bus.KeyOnline(key, False)),
            )
        return last and not self.remote.get(key)

    def to_room(self, room: bytes, data: bytes, skip: C | None = None) -> int:
        self._send(self._notice(bus.ToRoom(room, data)))
        return super().to_room(room, data, skip)

    def to_room_stored(self, room: bytes, data: bytes, skip: C | None = None) -> int:
        """The store's append function published it to the other relays (bus.Appended)."""
        return super().to_room(room, data, skip)

    def to_keys(self, keys: Iterable[bytes], data: bytes) -> int:
        keys = keys if isinstance(keys, AbstractSet) else set(keys)  # walked twice
        elsewhere = list(among(keys, self.remote))
        if elsewhere:
            self._send(self._notice(bus.ToKeys(elsewhere, data)))
        return super().to_keys(keys, data)

    def presence(
        self, key: bytes, status: PresenceStatus, text: str | None, last_seen: int | None
    ) -> None:
        self._send(self._notice(bus.PresenceSet(key, status, text, last_seen)))

    # Publishing ----------------------------------------------------------------------

    async def catch_up(self) -> None:
        """Publish a barrier to ourselves and wait until it comes back: every notice Redis
        took before it has been applied by then.

        Raises ProtocolError (unavailable) if it is not back within ``_CATCH_UP_S`` (the
        bus is down or stuck): the directory cannot be trusted to answer "no such room".
        """
        token = os.urandom(8)
        waiter = asyncio.get_running_loop().create_future()
        self._barriers[token] = waiter
        self._send(self._notice(bus.Barrier(token)))
        try:
            async with asyncio.timeout(_CATCH_UP_S):
                await waiter
        except TimeoutError:
            event(LOGGER, "bus_behind", logging.WARNING, waited_s=_CATCH_UP_S)
            raise ProtocolError(ErrorCode.UNAVAILABLE, _BUS_BEHIND) from None
        finally:
            self._barriers.pop(token, None)

    def _notice(self, notice: bus.Notice) -> Command:
        return ("PUBLISH", self._keys.bus, bus.encode(self.node, notice))

    def _send(self, *commands: Command) -> None:
        """Queue commands behind the store's writes, in call order, without waiting."""
        self._store.send_later(list(commands))

    # Following -----------------------------------------------------------------------

    async def _listen_forever(self) -> None:
        """Follow the bus on a connection of its own, read raw: every relay gets every
        notice (its own too), so redis-py's PubSub layer would cost per message.

        Before the first subscription a refusal (credentials, ACL) ends it, for `start`
        to raise; any other failure, and every later one, is an outage, retried. So is
        a subscription not confirmed within half the keepalive window: a connection that
        Redis never answers (a route that died after it opened) must not hold the node
        down for good once Redis is reachable again."""
        pause = iter(_RESUBSCRIBE_S)
        while True:
            conn = self._subscriber.connection_pool.make_connection()  # type: ignore[no-untyped-call]
            try:
                # Half the window: a start that waits the whole window has logged why.
                async with asyncio.timeout(self._keepalive_s / 2):
                    await conn.connect()
                    await conn.send_command("SUBSCRIBE", self._keys.bus)
                    await conn.read_response(timeout=math.inf)  # subscribed from here on
                self._restored()
                pause = iter(_RESUBSCRIBE_S)
                await self._follow(conn)
            except (RedisError, OSError) as exc:
                if not self.outages and not self._subscribed.is_set() and refused(exc):
                    raise
                self._lost(exc)
            finally:
                with contextlib.suppress(RedisError, OSError):
                    await conn.disconnect()
            await asyncio.sleep(next(pause, _RESUBSCRIBE_S[-1]))

    async def _follow(self, conn: Any) -> None:
        """Apply every notice on the subscribed ``conn`` until it fails, or until the
        watchdog finds it silent: a cut that neither closes nor resets the connection (a
        dead route, a firewall dropping the flow) would otherwise leave this relay deaf
        to the others with its clients still connected. Reading needs no timer per
        notice this way, only a count."""
        tasks = [
            asyncio.create_task(self._read_bus(conn)),
            asyncio.create_task(self._watch_bus(conn)),
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
        errors = [task.exception() for task in done]  # each ends only by failing
        raise next(error for error in errors if error is not None)

    async def _read_bus(self, conn: Any) -> None:
        while True:
            answer = await conn.read_response(timeout=math.inf)
            self._bus_heard += 1
            if answer[0] == b"message":  # else the watchdog's PING answered: b"pong"
                self._receive(answer[2])

    async def _watch_bus(self, conn: Any) -> None:
        """PING a bus quiet for a quarter window; raise if nothing came in the next."""
        quiet_s = self._keepalive_s / 4
        heard, pinged = self._bus_heard, False
        while True:
            await asyncio.sleep(quiet_s)
            await asyncio.sleep(0)  # after a stall of the loop, what came in is read first
            if self._bus_heard != heard:
                heard, pinged = self._bus_heard, False
            elif pinged:
                raise RedisTimeoutError(f"the bus answered no PING in {quiet_s:g} s")
            else:
                await conn.send_command("PING")
                pinged = True

    def _lost(self, error: BaseException) -> None:
        """The bus broke: close every connection (they may miss notices from here on),
        and say so once for the whole outage, not once per try to subscribe again."""
        if self._subscribed.is_set():
            self._subscribed.clear()
            self.outages += 1
            self._close_all()
        if self._down_since is None:
            self._down_since = time.monotonic()
            event(LOGGER, "bus_lost", logging.WARNING, error=type(error).__name__)

    def _restored(self) -> None:
        """Subscribed again: close the connections made meanwhile, which may have missed
        notices, so that they resume by sync; say how long it took; renew the heartbeat
        now if it failed meanwhile."""
        if self._down_since is not None:
            self._close_all()
            down_s = round(time.monotonic() - self._down_since, 3)
            self._down_since = None
            event(LOGGER, "bus_restored", down_s=down_s)
        if self._beat_failing:
            self._beat_soon.set()
        self._subscribed.set()

    def _receive(self, data: Any) -> None:
        if data.startswith(self._own) and not self._barriers:
            return  # our own notice back (every relay gets the whole bus): nothing to do
        try:
            publication = bus.decode(data)
        except (msgspec.DecodeError, TypeError):
            event(LOGGER, "bus_garbled", logging.WARNING)
            return
        if publication.origin == self.node:
            if isinstance(publication.notice, bus.Barrier):
                waiter = self._barriers.pop(publication.notice.token, None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(None)
            return
        if self._directory is None:
            self._early.append(publication)
        else:
            self._apply(publication)

    def _apply(self, publication: bus.Publication) -> None:
        notice, origin = publication.notice, publication.origin
        directory = self._directory
        assert directory is not None
        match notice:
            case bus.ToRoom(room, data):
                self._deliver(self.connections.in_room(room), data, None)
            case bus.Appended(room, sender, body, seq, ts):
                known = directory.rooms.get(room)
                if known is not None:
                    directory.numbered(known, seq, ts)
                message = Message(room=room, seq=seq, ts=ts, sender=sender, body=body)
                self._deliver(self.connections.in_room(room), encode_frame(message), None)
            case bus.ToKeys(keys, data):
                LocalBroker.to_keys(self, keys, data)
            case bus.UserSaved(key, name, prekey_id, prekey, prekey_sig, statement):
                record = UserRecord(key, name, prekey_id, prekey, prekey_sig, None, statement)
                directory.follow_user(record, _now_ms())
            case bus.UsersForgotten(keys):
                directory.follow_forgotten(keys)
            case bus.RoomCreated():
                directory.follow_room(_room_record(notice), notice.creator)
                self.connections.join(notice.id, notice.creator)
            case bus.MemberJoined(room, key, joined):
                if directory.follow_join(room, key, joined):
                    self.connections.join(room, key)
            case bus.MemberLeft(room, key, dropped):
                # A dropped room (its last member left, or the operator deleted it with
                # everyone in it) takes all its members' routing with it.
                known = directory.rooms.get(room)
                routed = {key, *(known.members if dropped and known is not None else ())}
                directory.follow_leave(room, key, dropped)
                for member in routed:
                    self.connections.leave(room, member)
            case bus.KeyBanned(key, banned):
                self.on_banned(key, banned)
            case bus.LogGrew(room, length):
                directory.log_grew(room, length)
            case bus.PresenceSet(key, status, text, last_seen):
                directory.follow_presence(key, status, text, last_seen)
            case bus.KeyOnline(key, True, since):
                self.remote.setdefault(key, set()).add(origin)
                mine = self._attached.get(key)
                if mine is not None and (mine, self.node) < (since, origin):
                    self._taken(key)  # the newer connection wins (ties: the higher node id)
            case bus.KeyOnline(key, False):
                self._offline_on(key, origin)
            case bus.NodeGone(node) if node == self.node:
                self._reannounce()  # buried alive (a long pause): say again who is here
            case bus.NodeGone(node):
                self._node_gone(node)

    def _offline_on(self, key: bytes, node: bytes) -> None:
        nodes = self.remote.get(key)
        if nodes is not None:
            nodes.discard(node)
            if not nodes:
                del self.remote[key]

    def _node_gone(self, node: bytes) -> None:
        """Take the dead relay's keys offline, for this relay's connections."""
        directory = self._directory
        assert directory is not None
        now = _now_ms()
        for key in [key for key, nodes in self.remote.items() if node in nodes]:
            self._offline_on(key, node)
            user = directory.users.get(key)
            if key in self.remote or self.connections.of(key) or user is None:
                continue
            directory.follow_presence(key, OFFLINE, None, now)
            frame = Presence(key=key, status=OFFLINE, text=None, last_seen=now)
            LocalBroker.to_keys(self, directory.peers(key), encode_frame(frame))

    def _reannounce(self) -> None:
        for key in self.connections.online_keys():
            k = self._keys
            self._send(
                ("HSET", k.online(key), self.node, 1),
                ("SADD", k.node_keys(self.node), key),
                self._notice(bus.KeyOnline(key, True)),
            )

    async def _learn_online(self) -> None:
        """Which keys the other live relays hold (their notices only tell what changes)."""
        client, k, directory = self._store.client, self._keys, self._directory
        assert directory is not None
        for node in _bytes(await client.zrangebyscore(k.nodes, _now_ms(), "+inf")):
            if node == self.node:
                continue
            for key in _bytes(await client.smembers(k.node_keys(node))):
                self.remote.setdefault(key, set()).add(node)
                user = directory.users.get(key)
                if user is not None and user.status == OFFLINE:
                    directory.follow_presence(key, "online", None, None)

    # Liveness ------------------------------------------------------------------------

    async def _beat(self) -> None:
        """Renewed every quarter window, it runs out half a window after the last renewal:
        a dead relay is buried within three quarters of the keepalive window."""
        deadline = _now_ms() + int(self._keepalive_s * 500)
        await self._store.client.zadd(self._keys.nodes, {self.node: deadline})

    async def _beat_forever(self) -> None:
        """Renew the heartbeat, and bury relays whose heartbeat ran out, four times a window;
        renew it at once when asked (`_beat_soon`: the bus is back while it was failing),
        burying none then: the others' heartbeats may have run out in the outage too."""
        client, k = self._store.client, self._keys
        while True:
            soon = False
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._keepalive_s / 4):
                    soon = await self._beat_soon.wait()
            self._beat_soon.clear()
            try:
                await self._beat()
                lapsed = [] if soon else await client.zrangebyscore(k.nodes, "-inf", _now_ms())
                for node in _bytes(lapsed):
                    if node != self.node and await client.zrem(k.nodes, node):
                        await self._bury(node)  # this relay noticed first
                        self._send(self._notice(bus.NodeGone(node)))
                        self._node_gone(node)
            except (RedisError, OSError) as exc:
                if not self._beat_failing:  # once, until it works again
                    event(LOGGER, "heartbeat_failed", logging.WARNING, error=type(exc).__name__)
                self._beat_failing = True
            else:
                if self._beat_failing:
                    event(LOGGER, "heartbeat_restored")
                self._beat_failing = False

    async def _bury(self, node: bytes) -> None:
        """Remove a relay's keys from the online lists (it is gone, or stopping)."""
        client, k = self._store.client, self._keys
        keys = _bytes(await client.smembers(k.node_keys(node)))
        pipe = client.pipeline(transaction=False)
        for key in keys:
            pipe.hdel(k.online(key), node)
        pipe.delete(k.node_keys(node))
        await pipe.execute()


def _bytes(answer: Any) -> list[bytes]:
    """Members of a set or sorted set, as Redis returns them (bytes: no decoding)."""
    return list(cast(Iterable[bytes], answer))


def _room_record(notice: bus.RoomCreated) -> RoomRecord:
    return RoomRecord(
        notice.id,
        notice.name,
        notice.description,
        notice.max_members,
        notice.listed,
        notice.access_kind,
        notice.verifier,
        notice.salt,
        notice.created,
    )


def _ignore_ban(key: bytes, banned: bool) -> None:
    """Until the relay sets its hook: nothing to close yet."""
