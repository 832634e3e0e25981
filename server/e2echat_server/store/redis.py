"""A Store in Redis (7.0 or later, or Valkey), shared by every relay node that names it.

Layout. Every key of one room shares a Redis Cluster hash tag (the room id in hex), as
does every key of one user, so rooms and users spread over the shards of a cluster and
each write below touches one slot only; the three indexes (users, rooms, room names) share
a tag of their own. History and mailboxes are streams whose entry ids are the relay's
sequence numbers (``<seq>-0``), so pages, count trimming and acknowledgements are plain
stream ranges and trims. Redis numbers them itself, atomically, so relays sharing it never
hand out one number twice. ::

    <prefix>:user:{<key>}              hash   name, prekey_id, prekey, prekey_sig,
                                              last_seen, mailbox_seq, name_statement
    <prefix>:user:{<key>}:mailbox      stream t (ms), s (sender), b (body)
    <prefix>:user:{<key>}:deletions    hash   room id -> "<expires>:<ts>:<reason>" (ms),
                                              expiring with its newest notice
    <prefix>:room:{<id>}               hash   the RoomRecord fields, seq
    <prefix>:room:{<id>}:members       hash   member key -> joined (ms)
    <prefix>:room:{<id>}:history       stream t, s, b
    <prefix>:room:{<id>}:recent        zset   digests of the latest bodies, by seq
    <prefix>:room:{<id>}:log           hash   position -> signed membership-log entry
    <prefix>:{directory}:users         set    user keys
    <prefix>:{directory}:rooms         set    room ids
    <prefix>:{directory}:room-names    hash   room name -> room id
    <prefix>:{directory}:nodes         zset   live relay (node id) -> heartbeat deadline
    <prefix>:{directory}:bus           pub/sub channel of the relays' notices (bus.py)
    <prefix>:user:{<key>}:online       hash   relay node id -> 1, where the key is online
    <prefix>:node:{<node>}:keys        set    keys online on that relay

Writes that span slots are ordered so that a crash between their steps leaves only what
`load` and `create_room` tolerate: a room is created before its name is claimed (so a
name whose room is gone is stale and may be taken over), and deleted before its name is
released; a user's hash is written before it is indexed and deleted before it is not.

Writes go through one ordered lane: every write queued while the previous batch was in
flight is sent as one pipeline on one connection, so writes apply in the order they were
made (as the relay relies on), and N writes cost one round trip instead of N. A write's
awaitable completes once Redis has answered it, so it is as durable as the server's
persistence settings make an answered write: docs/server.md says which to use. Asked to
(``replicas``), the lane ends each batch with a `WAIT` and acknowledges its writes only
if that many replicas confirmed them, so a failover to one of them keeps them. A room
message already stored (a pipeline the client library resent after a lost connection, a
client resending after a lost reply) is recognised by its body and not stored twice.
"""

import asyncio
import contextlib
import hashlib
import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final, Literal, cast

import hiredis
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.connection import AbstractConnection, parse_url
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import (
    AuthenticationError,
    AuthenticationWrongNumberOfArgsError,
    AuthorizationError,
    NoPermissionError,
    ResponseError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from e2echat_server import bus
from e2echat_server.logs import LOGGER, ThrottledEvent, event
from e2echat_server.store.base import (
    Envelope,
    LogMovedError,
    MemberRecord,
    Retraction,
    RoomDeletionRecord,
    RoomExistsError,
    RoomRecord,
    Snapshot,
    UserRecord,
)

DEFAULT_PREFIX: Final = "e2echat"
_MAX_BATCH: Final = 512  # jobs per pipeline
_READ_CHUNK: Final = 500  # records per pipeline while loading
_MAX_CONNECTIONS: Final = 32  # to Redis, per relay: reads in flight plus the write lane

# Lua scripts: each touches the keys of one slot only, so each runs on one shard.

# KEYS: room, history, recent; ARGV: seq, ts, sender, body, keep, bus channel, notice
# head, digest (`_digest`: SHA-1 of sender and body, hex). Numbers the message above
# every earlier one (the given seq unless another relay took it), its ts never below the
# last, and publishes it to the other relays (the head from bus.appended_head, completed
# with seq and ts as msgpack integers): one call per message stores, numbers and fans it
# out. Answers {seq, ts}. A body already among the room's last RECENT from the same
# sender is a resend (a pipeline replayed after a lost connection, or a client resending
# after a lost reply): it answers the stored copy's number, storing and publishing
# nothing. RECENT is at least 64: the rank cut to the 64 newest runs each time seq
# passes a multiple of 64 (every room hash has a seq from its creation on).
_APPEND: Final = """
local last = redis.call('HMGET', KEYS[1], 'seq', 'ts')
if not last[1] then return redis.error_reply('ERR no such room') end
local digest = ARGV[8]
local copy = redis.call('ZSCORE', KEYS[3], digest)
if copy then
  local stored = redis.call('XRANGE', KEYS[2], copy, copy)
  if #stored == 1 then return {tonumber(copy), tonumber(stored[1][2][2])} end
end
local before = tonumber(last[1])
local seq = math.max(tonumber(ARGV[1]), before + 1)
local ts = math.max(tonumber(ARGV[2]), tonumber(last[2] or '0'))
redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[5], seq .. '-0', 't', ts, 's', ARGV[3], 'b', ARGV[4])
redis.call('HSET', KEYS[1], 'seq', seq, 'ts', ts)
redis.call('ZADD', KEYS[3], seq, digest)
if math.floor(seq / 64) > math.floor(before / 64) then
  redis.call('ZREMRANGEBYRANK', KEYS[3], 0, -65)
end
redis.call('PUBLISH', ARGV[6], ARGV[7] .. cmsgpack.pack(seq) .. '\\162ts' .. cmsgpack.pack(ts))
return {seq, ts}
"""

# KEYS: history; ARGV: seq, sender. Deletes the entry only if that sender stored it.
_RETRACT: Final = """
local entries = redis.call('XRANGE', KEYS[1], ARGV[1] .. '-0', ARGV[1] .. '-0')
if #entries == 0 then return 'absent' end
local fields = entries[1][2]
for i = 1, #fields, 2 do
  if fields[i] == 's' and fields[i + 1] ~= ARGV[2] then return 'foreign' end
end
redis.call('XDEL', KEYS[1], ARGV[1] .. '-0')
return 'removed'
"""

# KEYS: user, mailbox; ARGV: seq, ts, sender, body. Numbered like _APPEND; answers seq.
_MAILBOX_PUT: Final = """
local last = tonumber(redis.call('HGET', KEYS[1], 'mailbox_seq') or '0')
local seq = math.max(tonumber(ARGV[1]), last + 1)
redis.call('XADD', KEYS[2], seq .. '-0', 't', ARGV[2], 's', ARGV[3], 'b', ARGV[4])
redis.call('HSET', KEYS[1], 'mailbox_seq', seq)
return seq
"""

_PUT_USER: Final = """
redis.call('HSET', KEYS[1], 'name', ARGV[1], 'prekey_id', ARGV[2], 'prekey', ARGV[3],
           'prekey_sig', ARGV[4])
if ARGV[5] == '' then redis.call('HDEL', KEYS[1], 'last_seen')
else redis.call('HSET', KEYS[1], 'last_seen', ARGV[5]) end
if ARGV[6] == '' then redis.call('HDEL', KEYS[1], 'name_statement')
else redis.call('HSET', KEYS[1], 'name_statement', ARGV[6]) end
return 1
"""

_SET_LAST_SEEN: Final = """
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HSET', KEYS[1], 'last_seen', ARGV[1]) end
return 1
"""

# KEYS: room, members; ARGV: creator key, joined, then field/value pairs of the room
# (name first). 1 if created (or found created by this very call, resent), else 0.
_CREATE_ROOM: Final = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  if redis.call('HGET', KEYS[1], 'name') == ARGV[4]
     and redis.call('HGET', KEYS[2], ARGV[1]) == ARGV[2] then return 1 end
  return 0
end
redis.call('HSET', KEYS[1], 'seq', 0, unpack(ARGV, 3))
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
return 1
"""

# KEYS: room, members, history, recent, log. The room's name (nil if none), then gone.
_DROP_ROOM: Final = """
local name = redis.call('HGET', KEYS[1], 'name')
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5])
return name
"""

# KEYS: user, mailbox, online, deletions. Deletes the user (and its deletion notices)
# unless it is online on some relay or has mail waiting (another relay may know what
# this one's directory does not); 1 if so.
_FORGET_USER: Final = """
if redis.call('EXISTS', KEYS[3]) == 1 or redis.call('XLEN', KEYS[2]) > 0 then return 0 end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[4])
return 1
"""

# KEYS: deletions; ARGV: room, notice ("<expires>:<ts>:<reason>"), ts, expires. Drops
# the notices expired by ``ts``, keeps this one, and makes the hash expire with its
# newest notice: nothing else ever has to sweep them.
_NOTE_DELETION: Final = """
local held = redis.call('HGETALL', KEYS[1])
for i = 1, #held, 2 do
  if tonumber(string.match(held[i + 1], '^(%d+):')) <= tonumber(ARGV[3]) then
    redis.call('HDEL', KEYS[1], held[i])
  end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if redis.call('PEXPIRETIME', KEYS[1]) < tonumber(ARGV[4]) then
  redis.call('PEXPIREAT', KEYS[1], ARGV[4])
end
return 1
"""

# KEYS: room-names, rooms; ARGV: name, id. 1 if claimed, else the id holding the name.
_CLAIM_NAME: Final = """
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 1 then
  redis.call('SADD', KEYS[2], ARGV[2])
  return 1
end
return redis.call('HGET', KEYS[1], ARGV[1])
"""

# KEYS: room-names, rooms; ARGV: name, stale id, new id. Compare and swap the holder.
_TAKE_OVER_NAME: Final = """
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('SREM', KEYS[2], ARGV[2])
redis.call('SADD', KEYS[2], ARGV[3])
return 1
"""

# KEYS: room-names, rooms; ARGV: name (may be empty), id.
_RELEASE_NAME: Final = """
if ARGV[1] ~= '' and redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  redis.call('HDEL', KEYS[1], ARGV[1])
end
redis.call('SREM', KEYS[2], ARGV[2])
return 1
"""

# KEYS: log; ARGV: position, entry, bus channel, notice (bus.LogGrew). Stores the entry
# only at the log's head (its positions are 0..n-1, so the head is its length) and
# announces the new length to the other relays; 1 if stored, else 0 (another entry won
# the position, or the log has fewer entries than the position says).
_LOG_APPEND: Final = """
if redis.call('HLEN', KEYS[1]) ~= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('PUBLISH', ARGV[3], ARGV[4])
return 1
"""

# KEYS: members, log; ARGV: key, joined, log length, bus channel, notice (bus.MemberJoined).
# Adds the member only if the room's log has the length its admission was decided
# against (no kick, ban or new secret appended since), and announces it; 1 if added.
_ADD_MEMBER: Final = """
if redis.call('HLEN', KEYS[2]) ~= tonumber(ARGV[3]) then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('PUBLISH', ARGV[4], ARGV[5])
return 1
"""

# KEYS: history; ARGV: not_before. Trim the prefix older than it (ts grows along seq).
_PRUNE: Final = """
local removed = 0
while true do
  local page = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 128)
  if #page == 0 then return removed end
  for _, entry in ipairs(page) do
    if tonumber(entry[2][2]) >= tonumber(ARGV[1]) then
      return removed + redis.call('XTRIM', KEYS[1], 'MINID', entry[1])
    end
  end
  local last = tonumber(string.match(page[#page][1], '^(%d+)'))
  removed = removed + redis.call('XTRIM', KEYS[1], 'MINID', (last + 1) .. '-0')
end
"""


# The scripts run as one Redis function library (Redis 7 FUNCTION LOAD; Valkey too): a
# call sends the function's name, not the script (an EVAL of _APPEND sent and hashed
# about a kilobyte per message). The library's name carries a digest of its code, so
# relays of two versions over one Redis each call their own functions. Functions are
# kept in the append-only file and copied to replicas; a Redis that lost them (restarted
# without persistence) refuses the calls, and the write lane loads them again.
_SCRIPTS: Final = {
    "append": _APPEND,
    "retract": _RETRACT,
    "mailbox_put": _MAILBOX_PUT,
    "put_user": _PUT_USER,
    "set_last_seen": _SET_LAST_SEEN,
    "create_room": _CREATE_ROOM,
    "drop_room": _DROP_ROOM,
    "forget_user": _FORGET_USER,
    "note_deletion": _NOTE_DELETION,
    "claim_name": _CLAIM_NAME,
    "take_over_name": _TAKE_OVER_NAME,
    "release_name": _RELEASE_NAME,
    "prune": _PRUNE,
    "log_append": _LOG_APPEND,
    "add_member": _ADD_MEMBER,
}
_LIBRARY_NAME: Final = (
    "e2echat_"
    + hashlib.sha1("".join(_SCRIPTS.values()).encode(), usedforsecurity=False).hexdigest()[:12]
)
_FUNCTION_OF: Final = {body: f"{_LIBRARY_NAME}_{name}" for name, body in _SCRIPTS.items()}
_LIBRARY: Final = f"#!lua name={_LIBRARY_NAME}\n" + "".join(
    f"redis.register_function('{_FUNCTION_OF[body]}', function(KEYS, ARGV)\n{body}end)\n"
    for body in _SCRIPTS.values()
)
_NO_FUNCTION: Final = "Function not found"

# Redis refusing the relay itself: the same answer on every try, so never retried.
_CREDENTIALS_REFUSED: Final = (
    AuthenticationError,
    AuthorizationError,
    AuthenticationWrongNumberOfArgsError,
)
_NO_DATABASE: Final = "DB index is out of range"  # SELECT of a database Redis lacks


def refused(error: BaseException) -> bool:
    """Whether ``error`` is Redis refusing the relay's URL (its credentials, an ACL
    permission, its database) rather than failing for a while: no retry mends it."""
    if isinstance(error, (*_CREDENTIALS_REFUSED, NoPermissionError)):
        return True
    return isinstance(error, ResponseError) and _NO_DATABASE in str(error)


def refusal(error: BaseException, url: str) -> str:
    """What is wrong with ``url``, for a `refused` error: the server, the problem and
    Redis's own words, never the URL itself (it may hold the password)."""
    parts = parse_url(url)
    host = parts.get("host", "localhost")
    address = f"[{host}]" if ":" in host else host
    server = parts.get("path") or f"{address}:{parts.get('port', 6379)}"
    code = getattr(error, "status_code", None)  # redis-py 8 strips it from the text
    said = str(error) or type(error).__name__
    said = f"{code} {said}" if code and not said.startswith(code) else said
    said += "" if said.endswith((".", "?", "!")) else "."
    if isinstance(error, NoPermissionError):
        problem = "refused the relay a command, key or channel it needs (the user's ACL)"
    elif _NO_DATABASE in str(error):
        problem = f"has no database {parts.get('db', 0)} (see its 'databases' setting)"
    elif parts.get("password") is None:
        problem = "needs credentials and the URL has none (redis://USER:PASSWORD@host/db)"
    else:
        problem = "refused the credentials"
    return f"Redis at {server} {problem}: {said}"


class _TransientRetry(Retry):
    """The pool's retry of a lost connection that gives up at once on a refusal: wrong
    credentials are wrong on every try (redis-py takes them for a lost connection)."""

    async def call_with_retry(self, do: Any, fail: Any, *args: Any, **kwargs: Any) -> Any:
        async def once() -> Any:
            try:
                return await do()
            except _CREDENTIALS_REFUSED as error:
                raise _RefusedError(error) from error

        try:
            return await super().call_with_retry(once, fail, *args, **kwargs)
        except _RefusedError as wrapped:
            raise wrapped.error from None


class _RefusedError(Exception):
    """Carries a refusal past the retry, which retries every connection error."""

    def __init__(self, error: Exception) -> None:
        super().__init__()
        self.error = error


@dataclass(frozen=True, slots=True)
class RedisKeys:
    """The key names of one relay deployment (see the module docstring for the layout)."""

    prefix: str = DEFAULT_PREFIX

    def __post_init__(self) -> None:
        if not self.prefix or any(c in self.prefix for c in "{}") or not self.prefix.isprintable():
            raise ValueError("a key prefix is printable, not empty, and has no braces")

    @property
    def users(self) -> str:
        return f"{self.prefix}:{{directory}}:users"

    @property
    def rooms(self) -> str:
        return f"{self.prefix}:{{directory}}:rooms"

    @property
    def room_names(self) -> str:
        return f"{self.prefix}:{{directory}}:room-names"

    @property
    def bus(self) -> str:
        """The pub/sub channel of the relays' notices (bus.py)."""
        return f"{self.prefix}:{{directory}}:bus"

    @property
    def nodes(self) -> str:
        """Live relays: node id -> heartbeat deadline (ms), a sorted set."""
        return f"{self.prefix}:{{directory}}:nodes"

    def node_keys(self, node: bytes) -> str:
        """The keys with a connection to relay ``node``, a set."""
        return f"{self.prefix}:node:{{{node.hex()}}}:keys"

    def online(self, key: bytes) -> str:
        """The relays ``key`` has a connection to, a hash node -> 1."""
        return f"{self.user(key)}:online"

    def user(self, key: bytes) -> str:
        return f"{self.prefix}:user:{{{key.hex()}}}"

    def mailbox(self, key: bytes) -> str:
        return f"{self.user(key)}:mailbox"

    def deletions(self, key: bytes) -> str:
        """The notices of rooms deleted while ``key`` was a member, a hash by room id."""
        return f"{self.user(key)}:deletions"

    def room(self, room: bytes) -> str:
        return f"{self.prefix}:room:{{{room.hex()}}}"

    def members(self, room: bytes) -> str:
        return f"{self.room(room)}:members"

    def history(self, room: bytes) -> str:
        return f"{self.room(room)}:history"

    def log(self, room: bytes) -> str:
        """The room's membership-log entries, by position (a hash: fields 0..n-1)."""
        return f"{self.room(room)}:log"

    def recent(self, room: bytes) -> str:
        """Digests of the room's latest bodies (by sender), scored by seq: resends."""
        return f"{self.room(room)}:recent"


# One write: commands for the pipeline, and what to make of their answers.
Command = tuple[Any, ...]


@dataclass(slots=True)
class _Write:
    commands: list[Command]
    future: asyncio.Future[Any]
    outcome: Callable[[list[Any]], Any] | None = None


class StoreClosedError(RuntimeError):
    """A write was submitted after close()."""


class ReplicasBehindError(RuntimeError):
    """Redis applied a batch of writes, but fewer replicas than asked confirmed it in time:
    not acknowledged (a failover could lose it), so the client resends it."""


class RedisStore:
    """The Store interface over one Redis database (``redis://host:port/db``)."""

    def __init__(
        self,
        client: "Redis",
        keys: RedisKeys,
        node: bytes,
        timeout_s: float = 5.0,
        replicas: int = 0,
        replica_timeout_s: float = 1.0,
    ) -> None:
        """Use `RedisStore.open`; this only prepares the fields."""
        self.client = client
        self.keys = keys
        self.node = node  # this relay's id in the notices it publishes
        self._wait: Command | None = None  # WAIT after each batch, if replicas are asked for
        if replicas:
            self._wait = ("WAIT", replicas, max(1, round(replica_timeout_s * 1000)))
        self._pending: list[_Write] = []
        self._wake = asyncio.Event()
        self._closed = False
        self._writer: asyncio.Task[None] | None = None
        self._lane: AbstractConnection | None = None  # the write lane's own connection
        self._timeout_s = timeout_s
        self._write_failures = ThrottledEvent("redis_write_failed")  # per error type

    @classmethod
    async def open(
        cls,
        url: str,
        prefix: str = DEFAULT_PREFIX,
        timeout_s: float = 5.0,
        node: bytes | None = None,
        replicas: int = 0,
        replica_timeout_s: float = 1.0,
    ) -> "RedisStore":
        """Connect, load the function library (which checks that the server answers);
        start the write lane.

        ``node`` is the relay's id in its notices to the other relays (random if None).
        With ``replicas``, a write is acknowledged only once that many replicas have it
        (`WAIT` after each batch, up to ``replica_timeout_s``); else it fails with
        ReplicasBehindError.

        Raises redis.exceptions.RedisError (a ConnectionError if nothing answers) or
        ValueError (a malformed URL) here, to the caller.
        """
        pool = BlockingConnectionPool.from_url(
            url,
            # Reads (history, mailboxes) take a connection each: when every one is busy
            # (a reconnect storm: hundreds of clients syncing at once) a read or the
            # write lane waits for one, up to the timeout, instead of failing as the
            # default pool's MaxConnectionsError did (docs/benchmarks.md, the storm).
            max_connections=_MAX_CONNECTIONS,
            timeout=timeout_s,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            # A lost connection is retried briefly: room messages are recognised when
            # resent, other writes are idempotent, and directs are delivered at least
            # once anyway (protocol.md section 6).
            retry=_TransientRetry(ExponentialBackoff(cap=0.5, base=0.05), retries=3),
            retry_on_error=[RedisConnectionError, RedisTimeoutError],
        )
        client = Redis(connection_pool=pool)
        try:
            await _load_functions(client)
        except BaseException:
            await client.aclose(close_connection_pool=True)
            raise
        node = node or os.urandom(8)
        store = cls(client, RedisKeys(prefix), node, timeout_s, replicas, replica_timeout_s)
        store._writer = asyncio.create_task(store._write_forever(), name="e2echat-redis-writer")
        return store

    # The write lane --------------------------------------------------------------------

    def _submit(
        self, commands: list[Command], outcome: Callable[[list[Any]], Any] | None = None
    ) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self._closed:
            future.set_exception(StoreClosedError("the store is closed"))
            return future
        self._pending.append(_Write(commands, future, outcome))
        self._wake.set()
        return future

    async def _write_forever(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                batch = self._pending[:_MAX_BATCH]
                del self._pending[:_MAX_BATCH]
                await self._run_batch(batch)
            if self._closed:
                return

    async def _run_batch(self, batch: list[_Write]) -> None:
        """Send a batch as one pipeline; each write gets its own answers or error."""
        commands = [command for write in batch for command in write.commands]
        if self._wait is not None:
            commands.append(self._wait)
        try:
            answers = await self._exchange(commands)
        except Exception as exc:  # the connection failed: none of it is known to be done
            for write in batch:
                if not write.future.done():
                    write.future.set_exception(exc)
            return
        behind: Exception | None = None
        if self._wait is not None:
            confirmed, asked = answers.pop(), self._wait[1]
            if isinstance(confirmed, Exception) or confirmed < asked:
                behind = ReplicasBehindError(f"{confirmed} of {asked} replicas confirmed")
        if any(isinstance(a, Exception) and _NO_FUNCTION in str(a) for a in answers):
            # Redis lost the library (restarted empty): these writes fail, later ones work.
            event(LOGGER, "redis_functions_reloaded", logging.WARNING)
            with contextlib.suppress(Exception):  # still down: the next failure says so
                await _load_functions(self.client)
        start = 0
        for write in batch:
            mine = answers[start : start + len(write.commands)]
            start += len(write.commands)
            if write.future.done():
                continue
            error = next((a for a in mine if isinstance(a, Exception)), behind)
            if error is not None:
                write.future.set_exception(error)
            else:
                write.future.set_result(write.outcome(mine) if write.outcome else None)

    async def _exchange(self, commands: list[Command]) -> list[Any]:
        """Send ``commands`` in one write on the lane's own connection and read every
        answer (an error answer stands in its place).

        The hot path of every write, so it packs with hiredis and sends and reads under
        one timeout of its own rather than through redis-py's pipeline and per-read
        timeouts (which cost about as much again per batch). A lost connection is
        retried by the pool's policy (resending is safe: see the module docstring).
        """
        lane = self._lane
        if lane is None:
            pool = self.client.connection_pool
            # Its own connection, outside the pool's count, without a socket timeout:
            # `attempt` bounds the whole exchange instead.
            lane = pool.connection_class(**{**pool.connection_kwargs, "socket_timeout": None})
            self._lane = lane
        packed = b"".join([hiredis.pack_command(command) for command in commands])

        async def attempt() -> list[Any]:
            answers: list[Any] = []
            try:
                async with asyncio.timeout(self._timeout_s):
                    await lane.send_packed_command(packed, check_health=False)
                    for _ in commands:
                        try:
                            answers.append(await lane.read_response())
                        except ResponseError as error:
                            answers.append(error)
            except TimeoutError:  # answers left unread would be taken for the next ones
                await lane.disconnect(nowait=True)
                raise RedisTimeoutError("Redis did not answer the write lane") from None
            return answers

        async def reconnect(_: Exception) -> None:
            await lane.disconnect()

        return await lane.retry.call_with_retry(attempt, reconnect)

    def send_later(self, commands: list[Command]) -> None:
        """Queue writes behind the others without waiting for them (presence, fan-out):
        a failure is logged, not raised."""
        self._submit(commands).add_done_callback(self._log_failure)

    def _log_failure(self, future: asyncio.Future[Any]) -> None:
        if not future.cancelled() and future.exception() is not None:
            error = type(future.exception()).__name__
            self._write_failures.log(error, error=error)

    def _notice(self, notice: bus.Notice) -> Command:
        """The command publishing ``notice`` to the other relays, after the write before it."""
        return ("PUBLISH", self.keys.bus, bus.encode(self.node, notice))

    async def close(self) -> None:
        """Let queued writes finish, then close the connections."""
        if self._closed:
            return
        self._closed = True
        self._wake.set()
        if self._writer is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
        if self._lane is not None:
            await self._lane.disconnect()
        await self.client.aclose(close_connection_pool=True)

    # Users -----------------------------------------------------------------------------

    async def put_user(self, user: UserRecord) -> None:
        k = self.keys
        last_seen = "" if user.last_seen is None else user.last_seen
        await self._submit(
            [
                _eval(
                    _PUT_USER,
                    [k.user(user.key)],
                    [
                        user.name,
                        user.prekey_id,
                        user.prekey,
                        user.prekey_sig,
                        last_seen,
                        user.name_statement or b"",
                    ],
                ),
                ("SADD", k.users, user.key),
                self._notice(
                    bus.UserSaved(
                        user.key,
                        user.name,
                        user.prekey_id,
                        user.prekey,
                        user.prekey_sig,
                        user.name_statement,
                    )
                ),
            ]
        )

    async def set_last_seen(self, key: bytes, ts: int) -> None:
        await self._submit([_eval(_SET_LAST_SEEN, [self.keys.user(key)], [ts])])

    async def forget_users(self, keys: list[bytes]) -> None:
        if not keys:
            return
        k = self.keys
        answers = await self._submit(
            [
                _eval(
                    _FORGET_USER, [k.user(key), k.mailbox(key), k.online(key), k.deletions(key)], []
                )
                for key in keys
            ],
            list,
        )
        gone = [key for key, deleted in zip(keys, answers, strict=True) if deleted]
        if gone:
            await self._submit([("SREM", k.users, *gone), self._notice(bus.UsersForgotten(gone))])

    # Rooms -----------------------------------------------------------------------------

    async def create_room(self, room: RoomRecord, creator: MemberRecord) -> None:
        """Create the room's keys, then claim its name (taking over a stale claim)."""
        k = self.keys
        fields: list[Any] = [
            "name",
            room.name,
            "description",
            room.description,
            "max_members",
            room.max_members,
            "listed",
            int(room.listed),
            "access_kind",
            room.access_kind,
            "created",
            room.created,
        ]
        if room.verifier is not None:
            fields += ["verifier", room.verifier]
        if room.salt is not None:
            fields += ["salt", room.salt]
        created = await self._submit(
            [
                _eval(
                    _CREATE_ROOM,
                    [k.room(room.id), k.members(room.id)],
                    [creator.key, creator.joined, *fields],
                )
            ],
            _first,
        )
        if not created:
            raise RoomExistsError("a room with this id exists")
        try:
            await self._claim_name(room.name, room.id)
        except BaseException:
            await self._submit([("DEL", k.room(room.id), k.members(room.id))])
            raise
        notice = bus.RoomCreated(
            room.id,
            room.name,
            room.description,
            room.max_members,
            room.listed,
            room.access_kind,
            room.verifier,
            room.salt,
            room.created,
            creator.key,
        )
        await self._submit([self._notice(notice)])

    async def _claim_name(self, name: str, room: bytes) -> None:
        k = self.keys
        index = [k.room_names, k.rooms]
        while True:
            holder = await self._submit([_eval(_CLAIM_NAME, index, [name, room])], _first)
            if holder in (1, room):  # claimed now, or by this call before a resend
                return
            if await self.client.exists(k.room(holder)):
                raise RoomExistsError("a room with this name exists")
            # The holder was deleted but its name not released (a crash between the two).
            taken = await self._submit(
                [_eval(_TAKE_OVER_NAME, index, [name, holder, room])], _first
            )
            if taken:
                return

    async def add_member(self, member: MemberRecord, log_length: int) -> None:
        """One function checks the log's length, adds the member and announces it: a kick
        or ban another relay appends is either in the log the join was decided against or
        after the member is in Redis (and announced before it)."""
        k = self.keys
        notice = bus.encode(self.node, bus.MemberJoined(member.room, member.key, member.joined))
        keys = [k.members(member.room), k.log(member.room)]
        args = [member.key, member.joined, log_length, k.bus, notice]
        if not await self._submit([_eval(_ADD_MEMBER, keys, args)], _first):
            raise LogMovedError("the room's membership log has another length")

    async def remove_member(self, room: bytes, key: bytes, drop_room: bool) -> None:
        k = self.keys
        left = self._notice(bus.MemberLeft(room, key, drop_room))
        if not drop_room:
            await self._submit([("HDEL", k.members(room), key), left])
            return
        room_keys = [k.room(room), k.members(room), k.history(room), k.recent(room), k.log(room)]
        name = await self._submit([_eval(_DROP_ROOM, room_keys, [])], _first)
        release = _eval(_RELEASE_NAME, [k.room_names, k.rooms], [name or "", room])
        await self._submit([release, left])

    async def delete_room(
        self, room: bytes, deletion: RoomDeletionRecord, members: list[bytes]
    ) -> None:
        """Every member's notice first, then the room goes as its last member's leave drops
        it. A crash between the two leaves notices of a room that still exists (which
        clients take as they take ``room_deleted``, and the operator deletes it again),
        never a deletion without its notices."""
        k = self.keys
        notice = b"%d:%d:" % (deletion.expires, deletion.ts) + deletion.reason.encode()
        args = [room, notice, deletion.ts, deletion.expires]
        await self._submit([_eval(_NOTE_DELETION, [k.deletions(key)], args) for key in members])
        await self.remove_member(room, members[0], drop_room=True)

    async def deletions(self, key: bytes, now: int) -> list[RoomDeletionRecord]:
        found = []
        held = cast(dict[bytes, bytes], await self.client.hgetall(self.keys.deletions(key)))
        for room, notice in held.items():
            expires, ts, reason = notice.split(b":", 2)
            if int(expires) > now:
                found.append(RoomDeletionRecord(room, reason.decode(), int(ts), int(expires)))
        return sorted(found, key=lambda d: (d.ts, d.room))

    async def prune_deletions(self, now: int) -> int:
        """Redis expires them by itself (`_NOTE_DELETION`)."""
        return 0

    # History ---------------------------------------------------------------------------

    def append(self, room: bytes, message: Envelope, keep: int) -> asyncio.Future[Envelope]:
        k = self.keys

        def stored(answers: list[Any]) -> Envelope:
            seq, ts = answers[0]
            return Envelope(int(seq), int(ts), message.sender, message.body)

        head = bus.appended_head(self.node, room, message.sender, message.body)
        return self._submit(
            [
                _eval(
                    _APPEND,
                    [k.room(room), k.history(room), k.recent(room)],
                    [
                        *(message.seq, message.ts, message.sender, message.body, keep),
                        *(k.bus, head, _digest(message.sender, message.body)),
                    ],
                )
            ],
            stored,
        )

    async def latest_seq(self, room: bytes) -> int:
        seq = await self.client.hget(self.keys.room(room), "seq")
        return int(seq or 0)

    async def history(self, room: bytes, after: int, not_before: int, limit: int) -> list[Envelope]:
        """Read pages until ``limit`` young-enough messages or the end."""
        found: list[Envelope] = []
        start = after + 1
        while len(found) < limit:
            wanted = limit - len(found)
            entries = await self.client.xrange(self.keys.history(room), start, "+", count=wanted)
            page = _envelopes(entries)
            found += [e for e in page if e.ts >= not_before]
            if len(page) < wanted:
                break
            start = page[-1].seq + 1
        return found

    async def retract(self, room: bytes, seq: int, sender: bytes) -> Retraction:
        done = await self._submit(
            [_eval(_RETRACT, [self.keys.history(room)], [seq, sender])], _first
        )
        return cast(Retraction, done.decode() if isinstance(done, bytes) else done)

    async def prune(self, not_before: int) -> int:
        k = self.keys
        removed = 0
        rooms = [room async for room in self.client.sscan_iter(k.rooms, count=_READ_CHUNK)]
        for chunk in _chunks(rooms, _READ_CHUNK):
            answers = await self._submit(
                [_eval(_PRUNE, [k.history(room)], [not_before]) for room in chunk], list
            )
            removed += sum(int(a) for a in answers)
        return removed

    # Mailboxes -------------------------------------------------------------------------

    async def mailbox_put(self, to: bytes, entry: Envelope) -> Envelope:
        k = self.keys
        seq = await self._submit(
            [
                _eval(
                    _MAILBOX_PUT,
                    [k.user(to), k.mailbox(to)],
                    [entry.seq, entry.ts, entry.sender, entry.body],
                )
            ],
            _first,
        )
        return Envelope(int(seq), entry.ts, entry.sender, entry.body)

    async def log_append(self, room: bytes, position: int, entry: bytes) -> bool:
        """One function checks that ``position`` is the log's head and stores the entry
        there, so two relays can never both win a position nor leave a gap; the other
        relays are told the log's new length (their copies are stale)."""
        notice = bus.encode(self.node, bus.LogGrew(room, position + 1))
        script = _eval(_LOG_APPEND, [self.keys.log(room)], [position, entry, self.keys.bus, notice])
        done = await self._submit([script], _first)
        return bool(done)

    async def log_entries(self, room: bytes, after: int, limit: int) -> list[bytes]:
        fields = list(range(after, after + limit))
        values = await self.client.hmget(self.keys.log(room), fields) if fields else []
        found: list[bytes] = []
        for value in values:
            if not isinstance(value, bytes):
                break
            found.append(value)
        return found

    async def mailbox(self, key: bytes, after: int, limit: int) -> list[Envelope]:
        entries = await self.client.xrange(self.keys.mailbox(key), after + 1, "+", count=limit)
        return _envelopes(entries)

    async def mailbox_ack(self, key: bytes, upto: int) -> int:
        removed = await self._submit(
            [("XTRIM", self.keys.mailbox(key), "MINID", f"{upto + 1}-0")], _first
        )
        return int(removed)

    # Start-up --------------------------------------------------------------------------

    async def load(self) -> Snapshot:
        """Read the directory back; index entries whose record is gone are skipped."""
        k, client = self.keys, self.client
        snapshot = Snapshot([], [], [], {}, {}, {})
        user_keys = [key async for key in client.sscan_iter(k.users, count=_READ_CHUNK)]
        for chunk in _chunks(user_keys, _READ_CHUNK):
            pipe = client.pipeline(transaction=False)
            for key in chunk:
                pipe.hgetall(k.user(key))
                pipe.xlen(k.mailbox(key))
            answers = await pipe.execute()
            for key, fields, count in zip(chunk, answers[::2], answers[1::2], strict=True):
                if b"name" not in fields:
                    continue
                snapshot.users.append(_user(key, fields))
                snapshot.mailbox_seqs[key] = int(fields.get(b"mailbox_seq", 0))
                if count:
                    snapshot.mailbox_counts[key] = count
        room_ids = [room async for room in client.sscan_iter(k.rooms, count=_READ_CHUNK)]
        for chunk in _chunks(room_ids, _READ_CHUNK):
            pipe = client.pipeline(transaction=False)
            for room in chunk:
                pipe.hgetall(k.room(room))
                pipe.hgetall(k.members(room))
            answers = await pipe.execute()
            for room, fields, members in zip(chunk, answers[::2], answers[1::2], strict=True):
                if b"name" not in fields:
                    continue
                snapshot.rooms.append(_room(room, fields))
                snapshot.room_seqs[room] = int(fields[b"seq"])
                snapshot.members.extend(
                    MemberRecord(room, key, int(joined)) for key, joined in members.items()
                )
        return snapshot


async def _load_functions(client: "Redis") -> None:
    """Load the relay's function library (idempotent: relays of one version share it)."""
    await client.execute_command("FUNCTION", "LOAD", "REPLACE", _LIBRARY)  # type: ignore[no-untyped-call]


def _eval(script: str, keys: list[str], args: Iterable[Any]) -> Command:
    """The call of ``script`` (one of _SCRIPTS) as a function of the relay's library."""
    return ("FCALL", _FUNCTION_OF[script], len(keys), *keys, *args)


def _digest(sender: bytes, body: bytes) -> str:
    """What recognises a resent room message: computed here, where it costs a fraction of
    what Redis's sha1hex did inside the append function (about half its time)."""
    return hashlib.sha1(sender + body, usedforsecurity=False).hexdigest()


def _first(answers: list[Any]) -> Any:
    return answers[0]


def _chunks(items: list[bytes], size: int) -> Iterable[list[bytes]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _envelopes(entries: Any) -> list[Envelope]:
    """Stream entries (``<seq>-0``, {t, s, b}) as envelopes."""
    return [
        Envelope(int(entry_id.split(b"-", 1)[0]), int(f[b"t"]), f[b"s"], f[b"b"])
        for entry_id, f in entries or ()
    ]


def _user(key: bytes, f: dict[bytes, bytes]) -> UserRecord:
    last_seen = f.get(b"last_seen")
    return UserRecord(
        key,
        f[b"name"].decode(),
        int(f[b"prekey_id"]),
        f[b"prekey"],
        f[b"prekey_sig"],
        None if last_seen is None else int(last_seen),
        f.get(b"name_statement"),
    )


def _room(room: bytes, f: dict[bytes, bytes]) -> RoomRecord:
    access = f[b"access_kind"].decode()
    if access not in ("open", "secret"):
        raise ValueError(f"room {room.hex()} has an unknown access kind")
    return RoomRecord(
        id=room,
        name=f[b"name"].decode(),
        description=f[b"description"].decode(),
        max_members=int(f[b"max_members"]),
        listed=f[b"listed"] == b"1",
        access_kind=cast(Literal["open", "secret"], access),
        verifier=f.get(b"verifier"),
        salt=f.get(b"salt"),
        created=int(f[b"created"]),
    )
