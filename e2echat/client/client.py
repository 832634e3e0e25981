"""``Client``: the public API over the driver.

It validates what the application passes, turns API calls into relay requests and
engine steps that the ``Driver`` runs (engine, then post its frames, then publish), and serves
subscriptions and handlers. Reconnection runs forever with exponential backoff and
jitter unless ``reconnect=False``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import secrets
import sqlite3
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, Literal, ParamSpec, TypeVar, cast

from e2echat.client import fileops, kdfcost
from e2echat.client.backoff import Backoff
from e2echat.client.connection import TlsOption, tls_context
from e2echat.client.contention import LogContention
from e2echat.client.driver import Driver
from e2echat.client.engine import PROOF_WAIT_MS, Access, Engine, SignLog
from e2echat.client.errors import (
    AlreadyConnected,
    BadStatus,
    Banned,
    ConnectError,
    E2EChatError,
    EmptyMessage,
    InvalidInput,
    InvalidInvite,
    InvalidName,
    InvalidRoomOption,
    LogRefused,
    MessageTooLong,
    NameTaken,
    NoSuchRoom,
    NotAllowed,
    NotAMember,
    NotInHistory,
    RelayError,
    RoomFull,
    SecretRequired,
    StoreError,
    StoreInUse,
    TooManyRooms,
    TransferError,
    WrongAccess,
    WrongPassphrase,
)
from e2echat.client.events import Event, Notice, RoomChanged
from e2echat.client.handlers import HandlerRunner, check_async
from e2echat.client.identity import Identity
from e2echat.client.models import (
    ConnectionState,
    Member,
    Message,
    RoomSummary,
    Version,
    key_of,
    placed,
)
from e2echat.client.output import Output
from e2echat.client.pacing import TokenBucket
from e2echat.client.paths import default_store_path, make_private_file
from e2echat.client.progress import Progress
from e2echat.client.pubsub import DEFAULT_BACKLOG, Hub, Subscription
from e2echat.client.relays import relay_urls
from e2echat.client.room import Relation, Room
from e2echat.client.tasks import cancel_and_wait
from e2echat.client.texts import check_description
from e2echat.crypto.errors import CryptoError, PrekeyError
from e2echat.crypto.events import DirectInvited, LogStatement
from e2echat.crypto.identity import KdfLimits
from e2echat.crypto.payload import File
from e2echat.crypto.policy import DEFAULT_POLICY, Policy
from e2echat.crypto.roomsecret import Invite, RoomSecret
from e2echat.crypto.safety import format_safety_number, safety_number
from e2echat.crypto.session import CryptoSession
from e2echat.crypto.statements import sign_successor
from e2echat.protocol import (
    BURST,
    RATE,
    BlobDelete,
    BlobTicket,
    ClientFrame,
    CreateRoom,
    ErrorCode,
    JoinRoom,
    LeaveRoom,
    ListRooms,
    LogAppend,
    LogEntries,
    LogRequest,
    Lookup,
    MembersList,
    MembersRequest,
    Ok,
    OpenAccess,
    PrekeyFound,
    PrekeyLookup,
    ProtocolError,
    RelayFrame,
    RoomInfo,
    RoomList,
    RoomReply,
    SecretAccess,
    SetStatus,
    SummaryReply,
    decode_client_frame,
    encode_frame,
    validate_room_name,
    validate_user_name,
)
from e2echat.protocol import (
    Access as WireAccess,
)
from e2echat.protocol.constants import (
    BANNED_FROM_ROOM,
    MAX_LOG_PAGE,
    MAX_STATUS_TEXT_CHARS,
)
from e2echat.store import SchemaError, Store, StoreKeyError, StoreLockedError

log = logging.getLogger("e2echat")
P = ParamSpec("P")
T = TypeVar("T")
Q = TypeVar("Q")
F = TypeVar("F", bound=RelayFrame)
E = TypeVar("E", bound=Event | Message[Any])
C = TypeVar("C", bound=ClientFrame)
SEND_CONFIRM_TIMEOUT_S = 10.0
CONNECT_TIMEOUT_S = 30.0
REJOIN_RETRY_S = 1.0
STATUSES = ("online", "away", "busy")
PROOF_WAIT_S = PROOF_WAIT_MS / 1000
Handler = Callable[[Any], Awaitable[None]]
AccessKind = Literal["open", "password", "invite"]
ACCESS_KINDS = ("open", "password", "invite")
_RELAY_ERRORS: dict[str, type[RelayError]] = {
    ErrorCode.NO_SUCH_ROOM: NoSuchRoom,
    ErrorCode.NAME_TAKEN: NameTaken,
    ErrorCode.ROOM_FULL: RoomFull,
}


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclasses.dataclass(frozen=True)
class FollowedRoom:
    """One room of an old key after ``Client.join_rooms_of``: ``room`` is the new key's
    (None if it could not enter), ``problem`` why not, or, with a ``room``, why the new
    key was not made the admin of a room the old key owns."""

    old: Room
    room: Room | None
    problem: E2EChatError | None = None


class Client:
    """A connection to one relay under one identity. Use ``async with Client(...)``.

    ``url`` is the relay's URL, or a list of the URLs of one relay cluster's nodes
    (``e2echat-server --redis``): the client connects to the first that answers and,
    when its node dies, goes on to the next and resumes every room from its sequence
    numbers, backing off only once every URL has failed in a row. One load-balanced URL
    works the same way.

    ``store`` is the SQLite file of this identity (default under ``E2ECHAT_HOME`` or the
    platform's data directory); ``include_own`` also delivers our own messages to
    ``messages()`` and ``on_message`` handlers. ``policy``, ``password_limits`` and
    ``send_rate``/``send_burst`` tune the crypto policy, the Argon2id cost of room
    passwords and the outgoing frame rate (match the relay's limit); ``proof_wait`` is how
    long (seconds) sends in a secret room wait for a new member's membership proof.

    ``backlog`` bounds what each ``messages()``/``events()`` subscription (and handler)
    holds for a consumer that falls behind: past it, the oldest items are dropped and
    counted in the subscription's ``dropped`` (messages stay in ``room.history()``).
    ``concurrent_handlers=True`` lets handlers work on several rooms at once, keeping
    each room's items in order. ``typing=False`` neither sends nor shows typing
    indicators; ``read_receipts=True`` tells members how far we read (off by default).
    ``clock`` is what the client takes for the time (Unix milliseconds; the system
    clock by default): a test passes its own to play a computer whose clock is off.

    ``connect_timeout``: the first connection retries with the reconnect backoff for
    this many seconds before ``connect()`` raises ``ConnectError`` (0: one try of each
    URL; None: forever); a refused identity fails at once. ``ssl`` is an
    ``SSLContext`` or the path of a CA file (PEM) trusted for ``wss://`` URLs, e.g.
    a relay's self-signed CA. ``skip_backlog=True`` leaves out of ``messages()`` and
    handlers what the relay already held when we connected or joined (``msg.live`` is
    False for it; it is still in ``room.history()``). ``rejoin=True`` joins again (or
    creates again, as it was) a room the relay no longer lists for us, after it lost
    its data (not one the relay says its operator deleted: that is a ``RoomDeleted``,
    live or at the next connect). ``e2echat.run`` turns both on. ``registration_token``
    is a token from the relay's operator, for a relay that admits new keys with one only
    (the relay spends it on the first connection; later ones need none).
    """

    def __init__(
        self,
        url: str | Sequence[str],
        *,
        identity: Identity,
        name: str | None = None,
        store: Path | str | None = None,
        reconnect: bool = True,
        include_own: bool = False,
        policy: Policy = DEFAULT_POLICY,
        password_limits: KdfLimits | None = None,
        send_rate: float = RATE,
        send_burst: int = BURST,
        backoff: Backoff | None = None,
        proof_wait: float = PROOF_WAIT_S,
        backlog: int = DEFAULT_BACKLOG,
        concurrent_handlers: bool = False,
        typing: bool = True,
        read_receipts: bool = False,
        clock: Callable[[], int] = _now_ms,
        connect_timeout: float | None = CONNECT_TIMEOUT_S,
        ssl: TlsOption = None,
        skip_backlog: bool = False,
        rejoin: bool = False,
        registration_token: str | None = None,
    ) -> None:
        if name is not None:
            _check_user_name(name)
        self.urls = relay_urls(url)
        """Every relay URL this client may use, in the order it tries them."""
        self.name = name
        """Our display name; None until the first connect reads the remembered one."""
        self._identity = identity
        self._registration_token = registration_token
        self._store_path = default_store_path(identity) if store is None else store
        self._policy = policy
        self._password_limits = password_limits
        self._proof_wait = proof_wait
        self._backlog = backlog
        self._concurrent_handlers = concurrent_handlers
        self._typing_on = typing
        self._read_receipts = read_receipts
        self._clock = clock
        self._indexing: asyncio.Task[None] | None = None
        self._handlers: list[HandlerRunner] = []
        self._closing: asyncio.Future[int] | None = None
        self._rejoin = rejoin
        self._tls = tls_context(ssl)
        self._rejoins: set[asyncio.Task[None]] = set()
        self._driver = Driver(
            self.urls,
            lambda state: Room(self, state),
            reconnect=reconnect,
            include_own=include_own,
            pacer=TokenBucket(send_rate, send_burst),
            backoff=backoff or Backoff(),
            messages=Hub(backlog),
            events=Hub(backlog),
            connect_timeout=connect_timeout,
            tls=self._tls,
            skip_backlog=skip_backlog,
            room_lost=self._room_lost,
            invited=self._invited,
        )
        self._joining: dict[bytes, asyncio.Task[None]] = {}
        """Invitations being followed, by room id (one join each)."""
        self._waiting_invites: set[bytes] = set()
        """Invitations the relay's rooms-per-user limit refused to follow (room ids)."""

    def __repr__(self) -> str:
        return f"Client(name={self.name!r}, url={self.url!r}, state={self.state.value})"

    # Public properties ---------------------------------------------------------------

    @property
    def url(self) -> str:
        """The relay URL in use: the one connected to, or the one dialled next."""
        return self._driver.url

    @property
    def state(self) -> ConnectionState:
        """Where the connection to the relay stands."""
        return self._driver.state

    @property
    def key(self) -> bytes:
        """Our identity's public key (32 bytes): our user id, as others hold it in
        ``Member.key``, ``msg.sender.key`` and a direct conversation's ``room.peer``."""
        return self._identity.public_key

    @property
    def fingerprint(self) -> str:
        """Our public key as people compare it."""
        return self._identity.fingerprint

    @property
    def rooms(self) -> list[Room]:
        """The rooms we are in, in the order we joined them."""
        return self._driver.rooms()

    @property
    def has_handlers(self) -> bool:
        """Whether any handler is registered (``e2echat.run`` then serves until stopped)."""
        return bool(self._handlers)

    @property
    def directs(self) -> list[Room]:
        """Our direct conversations (``room.peer`` is the other key), oldest first."""
        return [room for room in self.rooms if room.peer is not None]

    def get_direct(self, key: bytes) -> Room | None:
        """The direct conversation with ``key``, if we have one (no I/O). If both sides
        started one at once, both pick the same: the one with the lowest room id."""
        rooms = [room for room in self.directs if room.peer == key]
        return min(rooms, key=lambda room: room.id, default=None)

    def get_room(self, name: str) -> Room | None:
        """The joined room called ``name``, if any (no I/O; ``room()`` joins)."""
        return next((room for room in self.rooms if room.name == name), None)

    # Lifecycle -----------------------------------------------------------------------

    async def __aenter__(self) -> Client:
        await self.connect()
        return self

    async def __aexit__(self, exc_type: object, *exc_info: object) -> None:
        # leaving the block on an exception (a cancellation on SIGTERM, Ctrl-C, an
        # error of the program) is going away (1001), not a normal close (1000)
        await self.close(going_away=exc_type is not None)

    async def connect(self) -> None:
        """Open the store, connect and authenticate; raise if the first attempt fails."""
        if self._driver.started:
            raise AlreadyConnected("this client is already connected")
        self._closing = None
        try:
            await self._driver.start(self._open_engine)
        except (StoreKeyError, StoreLockedError, SchemaError, sqlite3.Error, OSError) as exc:
            if isinstance(exc, StoreLockedError):
                raise StoreInUse(
                    f"the store {self._store_path} is in use by another e2echat client"
                    " (two clients sending on one identity's chains would reuse message keys)"
                ) from None
            raise StoreError(f"cannot open the store {self._store_path}: {exc}") from None
        except BaseException:
            await self.close()
            raise
        for runner in self._handlers:
            runner.start()
        self._indexing = asyncio.create_task(self._build_index(), name="e2echat-search-index")

    async def _build_index(self) -> None:
        """Index the stored history for search, a step at a time between other work."""
        driver = self._driver
        while not await driver.call(driver.engine.index_step):
            pass

    def _open_engine(self) -> Engine:
        if str(self._store_path) != ":memory:":
            make_private_file(Path(self._store_path))
        store = Store(self._store_path, self._identity)
        session = CryptoSession(self._identity, store, policy=self._policy)
        try:
            engine = Engine(
                self._identity,
                self.name,
                store,
                session,
                self._clock,
                round(self._proof_wait * 1000),
                self._registration_token,
            )
        except BaseException:
            store.close()
            raise
        self.name = engine.name
        engine.send_typing = engine.show_typing = self._typing_on
        engine.read_receipts = self._read_receipts
        return engine

    async def close(self, *, going_away: bool = False) -> int:
        """Disconnect, stop handlers, end every subscription, close the store.

        The relay sees close code 1000, or 1001 with ``going_away`` (the program is
        stopping: ``async with`` ends on an exception, ``e2echat.run`` on a signal).

        Returns how many of our messages are still queued in the outbox (they go out on
        the next start with the same store); more than 0 is also logged as a warning.
        Call ``flush()`` first to wait for them. Idempotent, and safe from inside a
        handler (a bot's "quit" command): that handler is not cancelled, it returns
        normally and ``run_forever`` returns once the client is closed.
        """
        if self._closing is None:
            self._closing = asyncio.ensure_future(self._close(asyncio.current_task(), going_away))
        return await asyncio.shield(self._closing)

    async def _close(self, caller: asyncio.Task[Any] | None, going_away: bool) -> int:
        if self._indexing is not None:
            await cancel_and_wait(self._indexing)
            self._indexing = None
        await cancel_and_wait(*[task for task in self._rejoins if task is not caller])
        await self._driver.stop(going_away=going_away)
        queued = (
            len(await self._driver.call(self._driver.engine.outbox.items))
            if self._driver.started
            else 0
        )
        if queued:
            log.warning(
                "closed with %d message%s still queued: they go out on the next start"
                " with this store (await client.flush() waits for them)",
                queued,
                "" if queued == 1 else "s",
            )
        for runner in self._handlers:
            await runner.stop(caller)
        await self._driver.shutdown()
        return queued

    async def flush(self, timeout: float | None = 10.0) -> int:  # noqa: ASYNC109 (returns, not raises)
        """Wait until the relay has confirmed every queued message, or ``timeout`` seconds
        (None: no limit); return how many are still queued (0: all delivered to the relay).

        For one-shot scripts: ``await room.send(...)`` returns queued when offline, and
        ``flush()`` before exiting makes sure it went out.
        """
        driver = self._driver
        try:
            async with asyncio.timeout(timeout):
                while True:
                    driver.confirmed.clear()
                    queued = len(await driver.call(driver.engine.outbox.items))
                    if not queued:
                        return 0
                    await driver.confirmed.wait()
        except TimeoutError:
            return len(await driver.call(driver.engine.outbox.items))

    async def _request(self, frame: ClientFrame, expect: type[F]) -> F:
        try:
            return await self._driver.request(frame, expect)
        except RelayError as exc:
            specific = _RELAY_ERRORS.get(exc.code)
            if exc.code == ErrorCode.FORBIDDEN and exc.message == BANNED_FROM_ROOM:
                specific = Banned  # the one forbidden of a join that is not the secret's
            if exc.code == ErrorCode.QUOTA_EXCEEDED and isinstance(frame, CreateRoom | JoinRoom):
                specific = TooManyRooms  # the rooms-per-user limit, not a blob quota
            if specific is None or type(exc) is not RelayError:
                raise
            raise specific(exc.code, exc.message) from None

    async def _shielded(self, work: Coroutine[Any, Any, T]) -> T:
        return await self._driver.shielded(work)

    # Rooms -----------------------------------------------------------------------------

    async def create(
        self,
        name: str,
        password: str | None = None,
        *,
        secret: bool = False,
        description: str = "",
        listed: bool = True,
    ) -> Room:
        """Create a room and join it.

        With ``password`` it is a password room; with ``secret=True`` and no password an
        invite room (``room.invite()``); otherwise an open room, which anyone the relay
        admits can read. Raises ``NameTaken`` (the relay has a room of that name) and
        ``TooManyRooms`` (we are in as many rooms as the relay allows).
        """
        _check_room_name(name)
        check_description(description)
        if password is not None:
            _check_password(password)
        room_secret: RoomSecret | None = None
        access: WireAccess = OpenAccess()
        kind: Access = "open"
        if password is not None:
            salt = RoomSecret.new_salt()
            room_secret = await self._derive(name, password, salt)
            access, kind = SecretAccess(verifier=room_secret.verifier, salt=salt), "password"
        elif secret:
            room_secret = RoomSecret.generate()
            access, kind = SecretAccess(verifier=room_secret.verifier), "invite"
        try:
            frame = _checked(
                CreateRoom(name=name, access=access, description=description, listed=listed)
            )
        except ProtocolError as exc:
            raise InvalidRoomOption(exc.message) from None
        return await self._shielded(self._enter(frame, kind, room_secret))

    async def join(self, name: str, password: str | None = None, invite: str | None = None) -> Room:
        """Join a room: open rooms need nothing, secret rooms a password or an invite.

        Raises ``NoSuchRoom`` (no room of that name), ``Banned`` (the room's log bans our
        key, whatever the password or invite), ``RoomFull`` (as many members as it
        allows), ``TooManyRooms`` (we are in as many rooms as the relay allows),
        ``WrongPassphrase`` (a password or invite that does not open it), ``SecretRequired``
        (neither given, and the room needs one).
        """
        _check_room_name(name)
        room_secret: RoomSecret | None = None
        kind: Access = "open"
        if invite is not None:
            try:
                parsed = Invite.parse(invite)
            except CryptoError as exc:
                raise InvalidInvite(f"That invite is not valid: {exc}.") from None
            if parsed.room != name:
                raise InvalidInvite(f"That invite is for room {parsed.room!r}, not {name!r}.")
            room_secret, kind = parsed.secret, "invite"
        elif password is not None:
            _check_password(password)
            summary = await self._request(Lookup(name=name), SummaryReply)
            if summary.room.salt is None and summary.room.access_kind == "secret":
                raise WrongAccess(
                    f"Room {name!r} does not open with a password now: it needs an invite,"
                    " or its secret was changed (a kick, a ban or a new secret); ask an"
                    " admin for the new password or an invite."
                )
            if summary.room.salt is None:
                raise WrongAccess(f"Room {name!r} has no password: join it without one.")
            room_secret, kind = await self._derive(name, password, summary.room.salt), "password"
        token = None if room_secret is None else room_secret.relay_token
        try:
            return await self._shielded(
                self._enter(JoinRoom(name=name, token=token), kind, room_secret)
            )
        except Banned:
            raise Banned(
                ErrorCode.FORBIDDEN,
                f"You are banned from room {name!r}: an admin or owner must unban this key"
                " before it can join.",
            ) from None
        except RoomFull:
            raise RoomFull(
                ErrorCode.ROOM_FULL,
                f"Room {name!r} is full: it takes another member once one leaves.",
            ) from None
        except RelayError as exc:
            if exc.code == ErrorCode.FORBIDDEN and password is not None:
                raise WrongPassphrase(f"Wrong password for room {name!r}.") from None
            if exc.code == ErrorCode.FORBIDDEN and invite is not None:
                raise WrongPassphrase(f"That invite does not open room {name!r}.") from None
            if exc.code == ErrorCode.FORBIDDEN:
                raise await self._secret_required(name) from None
            raise

    async def _secret_required(self, name: str) -> SecretRequired:
        """What the room refused a join without a secret for: its password, or an invite
        (the summary says whether it has a password now)."""
        summary = await self._request(Lookup(name=name), SummaryReply)
        if summary.room.salt is not None:
            return SecretRequired(f"Room {name!r} needs its password.", "password")
        return SecretRequired(
            f"Room {name!r} opens with an invite only now: ask a member for one.", "invite"
        )

    async def room(
        self,
        name: str,
        *,
        create: bool = False,
        access: AccessKind | None = None,
        password: str | None = None,
        invite: str | None = None,
        description: str = "",
        listed: bool = True,
    ) -> Room:
        """The room called ``name``, joined: the one we are in, else joined now, else
        (with ``create=True``) created, with ``access`` "open" (the default without a
        password), "password" (with ``password``) or "invite" (``room.invite()``).

        If someone else creates it in the instant between our join and our create, we
        join theirs. Raises ``NoSuchRoom`` without ``create``, ``SecretRequired`` (a
        ``WrongAccess``) when the room needs a password or invite we did not give, and what
        ``join`` raises.
        """
        _check_room_name(name)
        check_description(description)
        kind = access or ("password" if password is not None else "open")
        if kind not in ACCESS_KINDS:
            raise InvalidRoomOption(f"access is one of {', '.join(ACCESS_KINDS)}, not {kind!r}")
        if (kind == "password") != (password is not None):
            raise InvalidRoomOption('a password goes with access="password", and only there')
        existing = self.get_room(name)
        if existing is not None:
            return existing
        try:
            return await self.join(name, password=password, invite=invite)
        except NoSuchRoom:
            if not create or invite is not None:
                raise
        try:
            return await self.create(
                name,
                password,
                secret=kind == "invite",
                description=description,
                listed=listed,
            )
        except NameTaken:
            return await self.join(name, password=password)

    async def _derive(self, name: str, password: str, salt: bytes) -> RoomSecret:
        try:
            return await asyncio.to_thread(
                RoomSecret.from_password,
                password,
                salt,
                room=name,
                limits=self._password_limits or kdfcost.password_limits(),
            )
        except CryptoError as exc:
            raise E2EChatError(str(exc)) from None

    async def _enter(
        self,
        frame: CreateRoom | JoinRoom,
        kind: Access,
        secret: RoomSecret | None,
        peer: bytes | None = None,
    ) -> Room:
        """Ask the relay to create or join, then enter the room and sign our place in its
        membership log: the creator its ``create`` entry (we are the owner), a joiner its
        ``join`` (run shielded: once the relay said yes, our membership proofs must go
        out even if the caller gave up)."""
        reply = await self._request(frame, RoomReply)
        self._driver.relay_rooms.entered(reply.room)
        return await self._entered(reply.room, kind, secret, peer, isinstance(frame, CreateRoom))

    async def _entered(
        self,
        info: RoomInfo,
        kind: Access,
        secret: RoomSecret | None,
        peer: bytes | None,
        creating: bool,
        *,
        invited: bool = False,
    ) -> Room:
        """Enter a room the relay put us in, then sign our create or join entry.

        The log comes page by page, each applied (validated and stored) before the next
        is asked for: the first with the room, the rest after. A page that does not
        extend the log, or a failed join, leaves a room new to this device again
        (``_quit``); one we had stays as it was."""
        driver = self._driver
        fresh = info.id not in driver.engine.rooms
        log = [] if creating else await self._log_page(info.id, 0)
        whole_log = len(log) < MAX_LOG_PAGE
        await driver.step(
            driver.engine.enter_room,
            info,
            kind,
            secret,
            peer,
            invited=invited,
            log=log,
            whole_log=whole_log,
        )
        room = driver.room(info.id)
        try:
            await self._extended(info.id, 0, log)
            if not whole_log:
                await self._fetch_log(info.id, len(log))
                await driver.step(driver.engine.log_fetched, info.id)
        except E2EChatError:
            if fresh:
                await self._quit(room, (RelayError, ConnectError))
            raise
        if creating:
            salt = info.salt or b""
            description = info.description

            def create(session: CryptoSession, room_id: bytes, now: int) -> LogStatement:
                return session.create_log(room_id, now, description=description, salt=salt)

            await self._change(room, create)
        elif not log:
            await driver.step(driver.engine.follow_log, info.id)
        elif await driver.call(driver.engine.needs_join, info.id):
            try:
                await self._change(room, _join)
            except (NotAllowed, RelayError, LogRefused):
                # "already a member": the join a reconnect signs (``Engine.welcome``) won
                if self.key in room.roles:
                    return room
                # the log does not list us (an entry took our right away, a rotation
                # our secret, or the relay would not append): no member will ever share
                # with us, so we are not in the room, here or at the relay
                if fresh:
                    await self._quit(room, (RelayError, ConnectError))
                raise
        return room

    async def _fetch_log(self, room_id: bytes, after: int) -> None:
        """Fetch and apply the room's log from position ``after`` on, a page at a time:
        each page is validated and stored before the next is asked for, and a page
        that does not extend the log ends the fetch (``LogRefused``), so a relay serving
        pages for ever, or entries that never validate, holds nothing in memory."""
        driver = self._driver
        while True:
            entries = await self._log_page(room_id, after)
            await driver.step(driver.engine.apply_log, room_id, entries, after)
            after = await self._extended(room_id, after, entries)
            if len(entries) < MAX_LOG_PAGE:
                return

    async def _log_page(self, room_id: bytes, after: int) -> list[bytes]:
        """One page of the room's log, from position ``after`` (as the relay says)."""
        page = await self._request(LogRequest(room=room_id, after=after), LogEntries)
        if page.start != after:
            raise LogRefused(
                f"The relay answered a fetch of the room's log from entry {after} with"
                f" entries from {page.start}."
            )
        return page.entries

    async def _extended(self, room_id: bytes, after: int, entries: list[bytes]) -> int:
        """The length of the room's validated log once ``entries`` (from ``after``) were
        applied; raise ``LogRefused`` unless it holds them all."""
        driver = self._driver
        length = await driver.call(driver.engine.log_length, room_id)
        if length < after + len(entries):
            raise LogRefused(
                f"The relay served an entry of the room's log that does not validate (at"
                f" position {length}); the fetch was stopped."
            )
        return after + len(entries)

    async def _change(self, room: Room, sign: SignLog) -> None:
        """Sign a membership statement, have the relay append it, then send its directs.

        The relay pushes the appended entry to every member (us included) before it
        answers, so when this returns the change is in our validated log. If another
        entry won the position, we fetch it and sign again (the rules are checked anew:
        the other entry may have taken our right away). Many members joining at once
        all sign for the same position and all but one lose it: each loser waits a
        jittered, growing moment, then fetches and signs again, for as long as the log
        keeps growing (what was pushed while it waited is in the log it checks).
        A fetched log that holds a statement of ours means the relay appended it and its
        ``ok`` was lost or withheld (this try's, or an earlier one's for the same
        position): the change stands, with that statement's directs, and signing again
        would repeat it (another rotation each time, for as long as the relay went on)."""
        driver = self._driver
        contention = LogContention()
        signed: list[LogStatement] = []
        """Our statements for the position we sign for: any one may be the one appended."""
        while True:
            statement = await driver.call(driver.engine.sign_log, room.id, sign)
            signed.append(statement)
            contention.signed(statement)
            try:
                await self._request(LogAppend(room=room.id, entry=statement.entry), Ok)
                break
            except RelayError as exc:
                if exc.code == ErrorCode.FORBIDDEN:
                    raise NotAllowed(f"The relay refused the change: {exc.message}") from None
                if exc.code != ErrorCode.LOG_CONFLICT:
                    raise
                await asyncio.sleep(contention.next_delay())
                await self._catch_up_log(room)
                held = await driver.call(driver.engine.log_held, room.id, signed)
                if held is not None:
                    statement = held  # appended after all (its ok lost, or a lie)
                    break
                length = await driver.call(driver.engine.log_length, room.id)
                if contention.took_position(length):
                    signed.clear()  # another entry took the position: none of these fits now
                elif contention.exhausted:  # nothing valid took it: the relay's word only
                    raise RelayError(
                        ErrorCode.LOG_CONFLICT, "The room's log kept changing: try again."
                    ) from None
        await driver.step(driver.engine.log_appended, room.id, statement)

    async def _catch_up_log(self, room: Room) -> None:
        """Fetch and apply what the relay's log holds beyond ours (not waiting for its push)."""
        driver = self._driver
        length = await driver.call(driver.engine.log_length, room.id)
        await self._fetch_log(room.id, length)

    async def direct(self, member: Member | bytes) -> Room:
        """The direct conversation with ``member`` (a ``Member`` or a 32-byte key): the
        one we have, else a new one, started now (crypto.md section 14).

        A new one is a secret two-member room of random name; its invitation is sealed
        to the member's signed prekey: the one a room we share lists, else the one the
        relay holds for the key (``prekey_lookup``), checked against the key, so a
        relay that substitutes one is refused (``InvalidInput``) and nothing is made.
        The member need not be online: the relay's mailbox keeps the invitation, and
        messages sent meanwhile wait in the room for it. Only this key can ever read it:
        the relay can neither add a reader nor hand it to a namesake. A key the relay
        has never seen raises ``NotAMember``.
        """
        key = key_of(member)
        if key == self.key:
            raise InvalidInput("a direct conversation needs someone else's key, not ours")
        existing = self.get_direct(key)
        if existing is not None:
            return existing
        driver = self._driver
        if not any(key in state.members for state in driver.engine.rooms.values()):
            try:
                found = await self._request(PrekeyLookup(key=key), PrekeyFound)
            except RelayError as exc:
                if exc.code != ErrorCode.FORBIDDEN:
                    raise
                raise NotAMember(
                    "no room we share lists that key, and the relay does not know it"
                    f" ({exc.message})"
                ) from None
            try:
                if found.key != key:
                    raise PrekeyError("the relay answered with another key's prekey")
                await driver.call(driver.engine.looked_up, key, found.prekey)
            except PrekeyError as exc:
                raise InvalidInput(f"The relay's prekey for that key was refused: {exc}.") from None
        secret = RoomSecret.generate()
        frame = CreateRoom(
            name=f"dm-{secrets.token_hex(12)}",
            access=SecretAccess(verifier=secret.verifier),
            listed=False,
        )
        return await self._shielded(self._enter(frame, "invite", secret, peer=key))

    def _invited(self, invitation: DirectInvited) -> None:
        """A checked invitation arrived (or was kept from before): join its room."""
        if invitation.room_id in self._joining:
            return
        task = asyncio.create_task(self._follow(invitation), name="e2echat-direct")
        self._joining[invitation.room_id] = task
        task.add_done_callback(lambda _: self._joining.pop(invitation.room_id, None))

    async def _follow(self, invitation: DirectInvited) -> None:
        """Join the invitation's room, and enter it only if the relay's room is the one
        the inviter signed (same id); kept to retry after the next connect if offline."""
        driver = self._driver
        if invitation.room_id in driver.engine.rooms:
            await driver.call(driver.engine.refuse_invite, invitation.room_id)
            return
        secret = RoomSecret(invitation.secret)
        try:
            reply = await self._request(
                JoinRoom(name=invitation.name, token=secret.relay_token), RoomReply
            )
        except ConnectError:
            return  # kept: followed again after the next welcome
        except TooManyRooms:
            self._invite_waits(invitation)  # kept: followed again after a leave
            return
        except RelayError as exc:
            await self._refuse_invite(invitation, f"the relay refused to join it ({exc})")
            return
        if reply.room.id != invitation.room_id:
            with contextlib.suppress(E2EChatError):
                await self._request(LeaveRoom(room=reply.room.id), Ok)
            await self._refuse_invite(
                invitation, "the relay joined us to another room than the one invited to (left)"
            )
            return
        driver.relay_rooms.entered(reply.room)
        await self._shielded(
            self._entered(reply.room, "invite", secret, invitation.sender, False, invited=True)
        )

    def _invite_waits(self, invitation: DirectInvited) -> None:
        """Say once that an invitation waits for a room of ours to be left (we are in as
        many rooms as the relay allows); it is followed after each leave and connect."""
        if invitation.room_id in self._waiting_invites:
            return
        self._waiting_invites.add(invitation.room_id)
        name = self._driver.engine.member(invitation.sender, None).name
        self._driver.events.publish(
            Notice(
                f"The direct conversation {name} started waits: you are in as many rooms as"
                " the relay allows; leave one and it is entered."
            )
        )

    async def _follow_waiting(self) -> None:
        """A room was left: follow the invitations that waited for one."""
        if not self._waiting_invites:
            return
        self._waiting_invites.clear()
        for invitation in await self._driver.call(self._driver.engine.pending_invites):
            self._invited(invitation)

    async def _refuse_invite(self, invitation: DirectInvited, why: str) -> None:
        driver = self._driver
        await driver.call(driver.engine.refuse_invite, invitation.room_id)
        name = driver.engine.member(invitation.sender, None).name
        driver.events.publish(
            Notice(f"The direct conversation {name} started could not be entered: {why}.")
        )

    def _room_lost(self, room: Room) -> None:
        """The relay no longer lists us in ``room``: say so, and rejoin if asked to."""
        if not self._rejoin:
            log.info("room %r was lost: the relay no longer lists us there", room.name)
            return
        log.info("room %r was lost: the relay no longer lists us there; rejoining", room.name)
        task = asyncio.create_task(self._rejoin_lost(room), name="e2echat-rejoin")
        self._rejoins.add(task)
        task.add_done_callback(self._rejoins.discard)

    async def _rejoin_lost(self, room: Room) -> None:
        """Join ``room`` again with the secret we hold, or create it again as it was
        (same access, same secret, so members who hold it can come back); retried
        after each reconnect until the relay answers."""
        record = room._state.record
        secret = self._secret_of(record.secret)
        info = self._driver.relay_rooms.infos.get(record.id)
        token = None if secret is None else secret.relay_token
        salt = None if info is None else info.salt
        access: WireAccess = OpenAccess()
        if secret is not None:
            access = SecretAccess(verifier=secret.verifier, salt=salt)
        recreate = CreateRoom(
            name=record.name,
            access=access,
            description=record.description,
            listed=True if info is None else info.listed,
        )
        while True:
            await self._driver.up.wait()
            try:
                try:
                    await self._shielded(
                        self._enter(JoinRoom(name=record.name, token=token), record.access, secret)
                    )
                    how = "joined again"
                except NoSuchRoom:
                    if record.access == "password" and salt is None:
                        raise E2EChatError("its password's salt is unknown") from None
                    await self._shielded(self._enter(recreate, record.access, secret))
                    how = "created again, as it was"
            except (ConnectError, NameTaken):  # offline again, or created meanwhile
                await asyncio.sleep(REJOIN_RETRY_S)
                continue
            except E2EChatError as exc:
                log.warning("room %r was lost and could not be rejoined: %s", record.name, exc)
                return
            log.info("room %r rejoined (%s)", record.name, how)
            return

    @staticmethod
    def _secret_of(secret: bytes | None) -> RoomSecret | None:
        return None if secret is None else RoomSecret(secret)

    async def list_rooms(self) -> list[RoomSummary]:
        """The rooms the relay lists publicly."""
        reply = await self._request(ListRooms(), RoomList)
        return [
            RoomSummary(r.name, r.access_kind == "secret", r.description, r.member_count)
            for r in reply.rooms
        ]

    async def set_status(self, status: str, text: str | None = None) -> None:
        """Set our presence: "online", "away" or "busy", with an optional short text."""
        if status not in STATUSES:
            raise BadStatus(f"A status is one of {', '.join(STATUSES)}, not {status!r}.")
        if text is not None and not isinstance(text, str):
            raise BadStatus("A status text is a string (or None for none).")
        if text is not None and len(text) > MAX_STATUS_TEXT_CHARS:
            raise BadStatus(
                f"A status text has at most {MAX_STATUS_TEXT_CHARS} characters;"
                f" this one has {len(text)}."
            )
        try:
            frame = _checked(SetStatus(status=status, text=text))  # type: ignore[arg-type]
        except ProtocolError as exc:
            raise BadStatus(exc.message) from None
        await self._shielded(self._status(frame))

    async def _status(self, frame: SetStatus) -> None:
        """Set the status at the relay, then remember it to restore after reconnects
        (run shielded: the relay took it, so the engine must know it too)."""
        await self._request(frame, Ok)
        await self._driver.call(self._driver.engine.set_own_status, frame.status, frame.text)

    async def rename(self, name: str) -> None:
        """Change our display name, signed by our key so the relay cannot invent one.

        Connected, the relay announces it at once to everyone we share a room with (and
        lists it to those who connect later); offline, it goes with the next connect.
        Either way it is remembered for the next connect.
        """
        _check_user_name(name)
        await self._shielded(self._rename(name))

    async def _rename(self, name: str) -> None:
        driver = self._driver
        if self.state is ConnectionState.CONNECTED:
            await self._request(await driver.call(driver.engine.set_name, name), Ok)
        await driver.call(setattr, driver.engine, "name", name)
        self.name = name

    async def set_petname(self, member: Member | bytes, petname: str | None) -> None:
        """Give ``member``'s key your own name for it (None removes it).

        It stays on this device, is shown instead of the name the member chose
        (``Member.display_name``) and follows the key, whatever it calls itself.
        """
        key = key_of(member)
        if petname is not None:
            _check_user_name(petname)
        engine = self._driver.engine
        try:
            await self._driver.call(engine.set_petname, key, petname)
        except CryptoError as exc:
            raise E2EChatError(str(exc)) from None

    async def announce_successor(self, successor: Identity) -> bytes:
        """Name ``successor`` as the new key of this identity, in every room we are in.

        The successor statement is signed by both keys (so nobody can name someone
        else's key); members who verified this key carry the verification over to the
        new one after checking it, everyone else learns that the new key is the same
        person's (``SuccessorAnnounced``). Returns the statement. ``e2echat identity
        rotate`` calls it before it replaces the identity file. A key names one successor:
        naming another after that raises ``InvalidInput`` and sends nothing.
        """
        if successor.public_key == self.key:
            raise InvalidInput("a key cannot be its own successor")
        driver = self._driver
        try:
            await driver.call(driver.engine.name_successor, successor.public_key)
        except CryptoError as exc:
            raise InvalidInput(f"Not announced: {exc}.") from None
        statement = sign_successor(self._identity, successor, _now_ms())
        for room in self.rooms:

            async def queue(room_id: bytes = room.id) -> tuple[int, None, Output]:
                item_id, out = await driver.call(
                    driver.engine.announce_successor, room_id, statement
                )
                return item_id, None, out

            await self._confirmed(queue)
        return statement

    async def join_rooms_of(self, predecessor: Client) -> list[FollowedRoom]:
        """Enter, with this key, every room ``predecessor`` (the old key, still connected)
        is in: the second half of a key move, after ``predecessor.announce_successor``.

        Open rooms are joined by name, password and invite rooms with the secret the old
        key holds (no password or invite asked again), and each direct conversation the
        peer is still in is started again with that peer. Where the old key owns the
        room it makes this key an admin; ownership itself stays with the old key (the
        membership log has no entry that moves it). A room that cannot be entered (full,
        this key banned, a secret changed that the old key has not received yet) does not
        stop the others. Calling it again enters what is left and changes nothing else.
        """
        if predecessor.key == self.key:
            raise InvalidInput("a key cannot follow itself into its own rooms")
        followed: list[FollowedRoom] = []
        for old in predecessor.rooms:
            try:
                room = await self._follow_into(old)
            except E2EChatError as exc:
                followed.append(FollowedRoom(old, None, exc))
                continue
            followed.append(FollowedRoom(old, room, await self._made_admin(old, predecessor)))
        return followed

    async def _follow_into(self, old: Room) -> Room:
        """Enter ``old``'s room as its member's successor (see ``join_rooms_of``)."""
        if old.peer is not None:
            if old.peer not in {member.key for member in old.member_list}:
                raise NotAMember("The peer has left this direct conversation: not started again.")
            return await self.direct(old.peer)
        record = old._state.record
        if record.secret is None:
            room = await self.join(old.name)
        else:
            secret = RoomSecret(record.secret)
            frame = JoinRoom(name=old.name, token=secret.relay_token)
            try:
                room = await self._shielded(self._enter(frame, record.access, secret))
            except RelayError as exc:
                if exc.code != ErrorCode.FORBIDDEN or isinstance(exc, Banned):
                    raise
                raise NotAllowed(
                    f"The relay refused the old key's secret of {old.name!r} ({exc.message}):"
                    " the room may have a new one that the old key has not received yet."
                ) from None
        if room.id != old.id:  # a room of that name, but not the old key's
            await room.leave()
            raise NoSuchRoom(
                ErrorCode.NO_SUCH_ROOM, f"The relay's room {old.name!r} is not the old key's."
            )
        return room

    async def _made_admin(self, old: Room, predecessor: Client) -> E2EChatError | None:
        """Where ``predecessor`` owns ``old``, make this key its admin; why not, if not."""
        if old.peer is not None or old.roles.get(predecessor.key) != "owner":
            return None  # a direct conversation is started anew, not joined
        key = self.key
        try:  # our join is in the relay's log, its push to the old key maybe on the way
            await predecessor._shielded(predecessor._catch_up_log(old))
            if old.roles.get(key) == "admin":
                return None
            await old.set_role(key, "admin")
        except E2EChatError as exc:
            return exc
        return None

    # Room operations (called by Room) --------------------------------------------------

    def _check_member(self, room: Room) -> None:
        if room.id not in self._driver.engine.rooms:
            raise NotAMember(f"You are not a member of room {room.name!r}.")

    async def _send(
        self,
        room: Room,
        text: str,
        reply_to: Message[Room] | None,
        mentions: tuple[bytes, ...] = (),
    ) -> Message[Room]:
        if not text:
            raise EmptyMessage("An empty message is not sent.")
        if reply_to is not None and reply_to.room is not room:
            raise NotInHistory("A reply answers a message of the same room.")
        self._check_member(room)
        target = None if reply_to is None else reply_to.id or None
        if reply_to is not None and target is None:
            raise NotInHistory("That message has not reached the relay yet (it has no id).")
        driver = self._driver

        async def queue() -> tuple[int, Message[Room], Output]:
            item_id, core, out = await driver.call(
                driver.engine.queue, room.id, text, target, mentions
            )
            return item_id, placed(core, room), out

        return await self._confirmed(queue)

    async def _send_file(
        self, room: Room, path: Path, caption: str, progress: Progress
    ) -> Message[Room]:
        self._check_member(room)
        sealed = await fileops.seal(path)
        try:
            payload = await fileops.upload(
                self.url,
                room.id,
                sealed,
                self._ticket,
                self._delete_blob,
                caption=caption,
                now=self._driver.engine.clock(),
                progress=progress,
                tls=self._tls,
            )
        finally:
            sealed.blob.close()
        try:  # once uploaded, the message goes out even if the send is cancelled now
            self._check_member(room)
            return await self._send_payload(room, payload)
        except E2EChatError:  # not queued (we left the room, the name is too long)
            await self._delete_blob(payload.blob)
            raise

    async def _download(
        self, room: Room, message: Message[Room], folder: Path | None, progress: Progress
    ) -> Path:
        if message.file is None:
            raise InvalidInput("This message carries no file.")
        self._check_member(room)
        return await fileops.download(
            self.url,
            room.id,
            message.file,
            self._ticket,
            folder=folder,
            progress=progress,
            tls=self._tls,
        )

    async def _ticket(self, frame: ClientFrame) -> BlobTicket:
        try:
            return await self._request(frame, BlobTicket)
        except RelayError as exc:
            raise TransferError(exc.message, code=exc.code) from None

    async def _delete_blob(self, blob: bytes) -> None:
        """Delete a blob of ours that no message will announce (best effort: offline, or
        already gone, the relay's sweep removes it with the history)."""
        if self.state is ConnectionState.CONNECTED:
            with contextlib.suppress(E2EChatError):
                await self._request(BlobDelete(blob=blob), Ok)

    async def _send_payload(self, room: Room, payload: File) -> Message[Room]:
        driver = self._driver

        async def queue() -> tuple[int, Message[Room], Output]:
            item_id, core, out = await driver.call(driver.engine.queue_file, room.id, payload)
            return item_id, placed(core, room), out

        return await self._confirmed(queue)

    async def _relate(self, room: Room, relation: Relation) -> None:
        self._check_member(room)
        driver = self._driver

        async def queue() -> tuple[int, None, Output]:
            item_id, out = await driver.call(driver.engine.relate, room.id, relation)
            return item_id, None, out

        await self._confirmed(queue)

    async def _confirmed(self, queue: Callable[[], Awaitable[tuple[int, Q, Output]]]) -> Q:
        """Queue one outbox item and wait (a while) for the relay to confirm it; what
        ``queue`` made of it is returned if the relay does not answer in time."""
        item_id, provisional, future = await self._shielded(self._queue(queue))
        if future is None:
            return provisional
        try:
            async with asyncio.timeout(SEND_CONFIRM_TIMEOUT_S):
                return cast(Q, await future)
        except TimeoutError:
            return provisional
        finally:
            self._driver.forget_confirmation(item_id)

    async def _queue(
        self, queue: Callable[[], Awaitable[tuple[int, Q, Output]]]
    ) -> tuple[int, Q, asyncio.Future[Any] | None]:
        """Put an item in the outbox and send it if connected (run shielded: once
        queued, an item is marked on its way, so its frames must go out)."""
        driver = self._driver
        try:
            item_id, provisional, out = await queue()
        except E2EChatError as exc:
            if type(exc) is not E2EChatError:  # NotAMember, NotInHistory, NotAllowed
                raise
            raise MessageTooLong(str(exc)) from None  # the engine's one other refusal
        if not out.frames:
            return item_id, provisional, None
        future = driver.expect_confirmation(item_id, provisional)  # type: ignore[arg-type]
        driver.dispatch(out)
        return item_id, provisional, future

    async def _versions(self, room: Room, message: Message[Room]) -> list[Version]:
        driver = self._driver
        return await driver.call(driver.engine.versions, room.id, message.id)

    async def _typing(self, room: Room, typing: bool) -> None:
        self._check_member(room)
        driver = self._driver
        await self._shielded(driver.step(driver.engine.typing, room.id, typing))

    async def _mark_read(self, room: Room, seq: int | None) -> None:
        self._check_member(room)
        driver = self._driver
        await self._shielded(driver.step(driver.engine.mark_read, room.id, seq))

    async def _search(self, room: Room | None, query: str, limit: int) -> list[Message[Room]]:
        driver = self._driver
        room_id = None if room is None else room.id
        found = await driver.call(driver.engine.search, query, room_id, limit)
        return [bound for bound in map(driver.bind_message, found) if bound is not None]

    async def search(self, query: str, limit: int = 50) -> list[Message[Room]]:
        """Stored messages of every room holding every word of ``query``, newest first
        (the last word also matches as a prefix). The index is in memory only, built
        from the encrypted history when the client starts."""
        return await self._search(None, query, limit)

    async def _members(self, room: Room) -> list[Member]:
        self._check_member(room)
        reply = await self._request(MembersRequest(room=room.id), MembersList)
        driver = self._driver
        await self._shielded(driver.step(driver.engine.reconcile, room.id, reply.members))
        return room.member_list

    async def _log_change(self, room: Room, sign: SignLog) -> None:
        self._check_member(room)
        await self._shielded(self._change(room, sign))

    def _check_rotator(self, room: Room) -> None:
        self._check_member(room)
        self._driver.engine.check_rotator(room.id)

    async def _change_password(self, room: Room, password: str) -> None:
        _check_password(password)
        self._check_rotator(room)  # before the costly derivation of a refused change
        salt = RoomSecret.new_salt()
        secret = await self._derive(room.name, password, salt)

        def rotate(session: CryptoSession, room_id: bytes, now: int) -> LogStatement:
            return session.rotate_secret(room_id, now, secret=secret, salt=salt)

        await self._shielded(self._change(room, rotate))

    async def _changes(self, room: Room) -> list[RoomChanged[Room]]:
        driver = self._driver
        changes = await driver.call(driver.engine.log_entries, room.id)
        return [dataclasses.replace(change, room=room) for change in changes]  # type: ignore[arg-type,misc]

    async def _leave(self, room: Room) -> None:
        """Sign our ``leave`` entry (members then stop sharing with us and the relay stops
        routing to us), then leave the relay's room and forget it here. A room with no
        log, a frozen one, or one whose log no longer lists us gets no entry; one whose
        log removed us while the entry went (``NotAMember``: pushed, then called a
        conflict) is left already."""
        self._check_member(room)
        with contextlib.suppress(NotAllowed, NotAMember, RelayError, LogRefused):
            await self._shielded(self._change(room, lambda s, r, now: s.leave_log(r, now)))
        await self._quit(room)

    async def _quit(
        self, room: Room, ignored: tuple[type[E2EChatError], ...] = (RelayError,)
    ) -> None:
        """Leave the relay's room (an ``ignored`` error of that request is let go: the
        relay no longer lists us there, or it is out of reach), then forget it here."""
        with contextlib.suppress(*ignored):
            await self._request(LeaveRoom(room=room.id), Ok)
        await self._shielded(self._driver.step(self._driver.engine.left, room.id))
        await self._follow_waiting()

    async def _history(
        self, room: Room, limit: int, before: int | None, after: int | None
    ) -> list[Message[Room]]:
        driver = self._driver
        messages = await driver.call(driver.engine.history, room.id, limit, before, after)
        return [placed(message, room) for message in messages]

    async def _pending(self, room: Room) -> list[Message[Room]]:
        driver = self._driver
        messages = await driver.call(driver.engine.pending, room.id)
        return [placed(message, room) for message in messages]

    # Trust -------------------------------------------------------------------------------

    def safety_number(self, member: Member | bytes) -> str:
        """The 60-digit safety number of us and ``member``, grouped for reading aloud."""
        return format_safety_number(safety_number(self.key, key_of(member)))

    async def mark_verified(self, member: Member | bytes) -> None:
        """Record that the user compared safety numbers with ``member``'s key.

        Verification belongs to the key: it survives renames, and another key under the
        same name is another person, never verified by this.
        """
        await self._set_verified(member, True)

    async def unverify(self, member: Member | bytes) -> None:
        """Withdraw the verification of ``member``'s key."""
        await self._set_verified(member, False)

    async def _set_verified(self, member: Member | bytes, verified: bool) -> None:
        key = key_of(member)
        engine = self._driver.engine
        try:
            await self._driver.call(engine.set_verified, key, verified)
        except CryptoError as exc:
            raise E2EChatError(str(exc)) from None

    # Messages, events, handlers ---------------------------------------------------------

    def messages(self, *, bounded: bool = True) -> Subscription[Message[Room]]:
        """Every message from now on (not our own unless ``include_own``). Past the
        client's ``backlog`` unread, the oldest are dropped, unless not ``bounded``:
        then all are kept until read, for a reader that takes them at once."""
        return self._driver.messages.subscribe(bounded=bounded)

    def events(self, *, bounded: bool = True) -> Subscription[Event]:
        """Every event from now on (``bounded`` as for ``messages``)."""
        return self._driver.events.subscribe(bounded=bounded)

    def on_message(
        self, handler: Callable[[Message[Room]], Awaitable[None]]
    ) -> Callable[[Message[Room]], Awaitable[None]]:
        """Decorator: call ``handler`` for each message (same as ``on(Message)``)."""
        return self.on(Message)(handler)

    def on_event(
        self, handler: Callable[[Event], Awaitable[None]]
    ) -> Callable[[Event], Awaitable[None]]:
        """Decorator: call ``handler`` for each event (same as ``on(Event)``)."""
        return self.on(Event)(handler)

    def on(
        self, kind: type[E]
    ) -> Callable[[Callable[[E], Awaitable[None]]], Callable[[E], Awaitable[None]]]:
        """Decorator: call an ``async def`` handler for each item of ``kind``.

        ``kind`` is ``Message``, ``Event`` or one event class (``@chat.on(MemberJoined)``).
        Items come one at a time, in order (per room with ``concurrent_handlers``); an
        exception is logged, not fatal. A plain ``def`` is refused with ``TypeError``.
        """
        if not (isinstance(kind, type) and issubclass(kind, Event | Message)):
            raise TypeError(f"on() takes Message or an Event class, not {kind!r}")

        def register(handler: Callable[[E], Awaitable[None]]) -> Callable[[E], Awaitable[None]]:
            check_async(handler)
            driver = self._driver
            hub: Hub[Any] = driver.messages if kind is Message else driver.events
            runner = HandlerRunner(
                handler,
                hub.subscribe(),
                None if kind in (Message, Event) else kind,
                concurrent=self._concurrent_handlers,
                lane_limit=self._backlog,
            )
            self._handlers.append(runner)
            if driver.started:
                runner.start()
            return handler

        return register

    async def run_forever(self) -> None:
        """Serve handlers until the client is closed (for bots), or until the connection
        ends for good with ``reconnect=False``."""
        await self._driver.wait_closed()
        if self._closing is not None:
            await asyncio.shield(self._closing)


def _join(session: CryptoSession, room_id: bytes, now: int) -> LogStatement:
    return session.join_log(room_id, now)


def _check_room_name(name: str) -> None:
    try:
        validate_room_name(name)
    except ProtocolError as exc:
        raise InvalidName(exc.message) from None


def _checked(frame: C) -> C:
    """``frame`` if the relay would accept its shape (lengths, characters), else raise
    ``ProtocolError``: a frame is validated when decoded, not when built, so the check is
    a round trip through the relay's own decoder."""
    decode_client_frame(encode_frame(frame))
    return frame


def _check_password(password: str) -> None:
    """Refuse a room password that could never be used, before any I/O."""
    if not isinstance(password, str) or not password:
        raise InvalidInput("A room password is a non-empty string.")


def _check_user_name(name: str) -> None:
    try:
        validate_user_name(name)
    except ProtocolError as exc:
        raise InvalidName(exc.message) from None
