"""Serving one connection from accept to close: authentication, the read loop, release.

A connection is challenged, must answer with a valid `hello` in time, is welcomed, is
told of the rooms deleted while it was away, gets its mailbox, and then goes live
(directs first, then its rooms' traffic). The read loop validates and paces every
frame, passes `send` to the send pipeline and every other request to its handler, and
turns a refusal into an `error` reply.
"""

import asyncio
import contextlib
import logging
from collections import Counter

from nacl.utils import random as random_bytes
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from e2echat.protocol import (
    MAX_DIRECTS,
    PROTOCOL_VERSION,
    SIGNAL_BURST,
    SIGNAL_RATE,
    Challenge,
    ClientFrame,
    CloseCode,
    ErrorCode,
    Hello,
    ProtocolError,
    RelayLimits,
    Send,
    User,
    Welcome,
    decode_client_frame,
)
from e2echat_server.access import AccessPolicy
from e2echat_server.clock import now_ms
from e2echat_server.config import RelayConfig
from e2echat_server.directory import Directory
from e2echat_server.engine import Engine
from e2echat_server.handlers import Handlers
from e2echat_server.handshake import verify_hello
from e2echat_server.logs import ACCESS, LOGGER, crash_site, event, fingerprint
from e2echat_server.operator_state import LocalOperatorState, OperatorState
from e2echat_server.output import Output
from e2echat_server.pipeline import MAX_INFLIGHT, SendPipeline
from e2echat_server.ratelimit import AddressBudgets, ConnectionLimiter, Verdict
from e2echat_server.refusals import request_id
from e2echat_server.session import AbuseError, Session, SlowConsumerError, peer


def limits(config: RelayConfig) -> RelayLimits:
    """What ``challenge`` announces: the sizes this relay accepts, how long it keeps
    history and the rates a client paces its frames to (read at each connection, so a
    reload shows at once)."""
    return RelayLimits(
        max_frame=config.max_frame,
        max_body=config.max_body,
        max_members=config.max_members,
        history=config.history_count,
        mailbox=config.mailbox_max,
        history_age=config.history_age_s,
        rate=config.rate,
        burst=config.burst,
        signal_rate=SIGNAL_RATE,
        signal_burst=SIGNAL_BURST,
        max_directs=MAX_DIRECTS,
        share_rate=config.share_rate,
        share_burst=config.share_burst,
    )


REPLACED_REASON = "Your identity connected from another place; this connection was replaced."
BANNED_REASON = "This key is banned from this relay."
STORE_FAILED_REASON = "The relay's store failed; reconnect shortly."
_ACCESS_REFUSALS = {
    "banned": BANNED_REASON,
    "not_allowed": "This relay admits listed keys only; ask its operator to add yours.",
    "closed": "This relay takes no new identities; ask its operator to add your key.",
    "token_needed": "This relay admits new identities with a registration token only; ask"
    " its operator for one.",
}
# A token was given but not admitted: counted as `token_needed`, told apart in words.
UNKNOWN_OR_SPENT_REASON = (
    "This registration token is not valid (unknown, used up, expired or revoked); ask the"
    " relay's operator for a new one."
)


class Sessions:
    """Every open connection's life, and the per-address budgets they share."""

    def __init__(
        self,
        config: RelayConfig,
        directory: Directory,
        engine: Engine[ServerConnection],
        output: Output,
    ) -> None:
        self._config = config
        self._directory = directory
        self._engine = engine
        self._metrics = engine.metrics
        self._output = output
        self.handlers = Handlers(config, directory, engine, output)
        self.access = AccessPolicy()
        # Where registration tokens are spent (the relay sets the one it keeps).
        self.operator: OperatorState = LocalOperatorState(None)
        self.pipeline = SendPipeline(
            directory, engine, output, config.max_body, config.history_count
        )
        self.per_ip: Counter[str] = Counter()
        self._live: dict[bytes, Session] = {}  # the one live connection of each key
        self._replaced: set[asyncio.Task[None]] = set()  # closings of replaced connections
        engine.broker.on_taken(self._taken_elsewhere)
        self.new_keys = AddressBudgets(config.new_keys_per_ip / 3600, config.new_keys_burst)

    def reconfigure(self, config: RelayConfig) -> None:
        """Take a reloaded config's live settings (SIGHUP): limits apply to new connections
        and new frames, identity budgets at once."""
        self._config = config
        self.handlers.reconfigure(config)
        self.new_keys.retune(config.new_keys_per_ip / 3600, config.new_keys_burst)

    async def serve(self, conn: ServerConnection) -> None:
        """The websockets handler: one connection, from accept to close."""
        ip, metrics = peer(conn), self._metrics
        if self.per_ip[ip] >= self._config.max_conn_per_ip:
            metrics.handshake_failures["per_ip"] += 1
            metrics.refusals.refused("per_ip", peer=ip)
            await conn.close(CloseCode.POLICY, "Too many connections from your address.")
            return
        loop = asyncio.get_running_loop()
        session = Session(
            conn,
            ip,
            ConnectionLimiter.create(self._config.rate, self._config.burst, loop.time()),
            loop.time(),
        )
        self.per_ip[ip] += 1
        metrics.connections += 1
        metrics.connections_total += 1
        try:
            if await self._authenticate(session):
                metrics.authenticated += 1
                try:
                    await self._read_loop(session)
                finally:
                    metrics.authenticated -= 1
        except AbuseError:
            metrics.refusals.refused(
                "flood", peer=ip, key=fingerprint(session.key) if session.key else "-"
            )
            # The sends accepted before the abuse are acknowledged first (each `sent` is
            # queued before the close frame), but not for longer than a bulk reply may take.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._config.send_timeout_s):
                    await self.pipeline.drain(session)
            await conn.close(CloseCode.RATE_LIMIT, "Too many refused frames; slow down.")
        except ProtocolError as exc:  # the store failed while authenticating
            self._output.error(session, None, exc.code, exc.message)
            await conn.close(CloseCode.TRY_AGAIN_LATER, STORE_FAILED_REASON)
        except (ConnectionClosed, SlowConsumerError):
            pass
        except Exception as exc:  # a relay bug outside any request: say where, never what
            event(
                LOGGER,
                "session_failed",
                logging.ERROR,
                error=type(exc).__name__,
                at=crash_site(exc),
            )
            await conn.close(CloseCode.INTERNAL_ERROR, "The relay failed; reconnect.")
        finally:
            metrics.connections -= 1
            self.per_ip[ip] -= 1
            if not self.per_ip[ip]:
                del self.per_ip[ip]
            if session.key:
                await self._release(session)
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
        """Challenge, wait for a valid hello, welcome, tell deletions, flush the mailbox,
        go live."""
        conn, config, directory, output = session.conn, self._config, self._directory, self._output
        nonce = random_bytes(32)
        output.reply(
            session,
            Challenge(v=PROTOCOL_VERSION, relay=config.name, nonce=nonce, limits=limits(config)),
        )
        try:
            async with asyncio.timeout(config.handshake_timeout_s):
                hello = await self._await_hello(session)
        except TimeoutError:
            self._metrics.handshake_failures["timeout"] += 1
            self._metrics.refusals.refused("handshake_timeout", peer=session.ip)
            await conn.close(CloseCode.HANDSHAKE_TIMEOUT, "No valid hello in time.")
            return False
        try:
            verify_hello(hello, config.name, nonce)
        except ProtocolError as exc:
            self._metrics.handshake_failures["signature"] += 1
            self._metrics.refusals.refused("bad_hello", peer=session.ip)
            output.error(session, None, exc.code, exc.message)
            await conn.close(CloseCode.AUTH_FAILED, "Authentication failed.")
            return False
        refusal = self.access.refusal(hello.key, hello.key in directory.users)
        if refusal in ("closed", "token_needed"):
            # Registered on another relay a moment ago? Its notice may still be on its way.
            await self._engine.broker.catch_up()
            refusal = self.access.refusal(hello.key, hello.key in directory.users)
        token = hello.registration_token if refusal == "token_needed" else None
        if token is not None:
            refusal = None  # spent below, once the identity budget lets it in
        if refusal is not None:
            await self._refuse_access(session, refusal, hello.key)
            return False
        if hello.key not in directory.users and not self.new_keys.take(
            session.ip, asyncio.get_running_loop().time()
        ):
            self._metrics.handshake_failures["new_keys"] += 1
            self._metrics.refusals.refused("new_keys", peer=session.ip, key=fingerprint(hello.key))
            output.error(
                session,
                None,
                ErrorCode.RATE_LIMITED,
                "Too many new identities from your address; try again later.",
            )
            await conn.close(CloseCode.RATE_LIMIT, "Too many new identities from your address.")
            return False
        redeem = self.operator.redeem_token
        if token is not None and not await self._engine.call("redeem", redeem(token, now_ms())):
            await self._refuse_access(session, "token_needed", hello.key, UNKNOWN_OR_SPENT_REASON)
            return False
        known = directory.users.get(hello.key)
        renamed = known is not None and known.name != hello.name
        user, change = directory.authenticate(
            hello.key, hello.name, hello.prekey, hello.name_statement
        )
        session.key = hello.key  # from here on, `_release` releases the session
        if change is not None:
            await self._engine.apply(change)
        if renamed:
            self._output.renamed(hello.key)
        rooms = directory.welcome_rooms(hello.key, config.welcome_members)
        await output.reply_paced(
            session,
            Welcome(
                user=User(key=hello.key, name=hello.name),
                rooms=rooms,
                mailbox=user.mailbox_count,
                ts=now_ms(),
            ),
        )
        # Directs go live first, then the mailbox is flushed: a direct that commits before
        # `attach` is in the flush, one after it is delivered live (maybe both: at least once).
        # Deletion notices are read after `attach` too: a room deleted as we connect is in
        # them, or (written after) its `room_deleted` comes live.
        broker = self._engine.broker
        first = broker.attach(hello.key, conn)
        self._replace(session)
        await self.handlers.tell_deletions(session)
        await self.handlers.flush_mailbox(session)
        broker.enter(conn, directory.rooms_of.get(hello.key, ()))
        # the texts of the rosters sent: a partial room's come with its `members` reply,
        # so this is bounded by the welcome's member budget, as the welcome itself
        output.status_texts(session, [room.id for room in rooms if not room.partial])
        if first:
            directory.went_online(hello.key)
            output.announce(hello.key)
        return True

    async def _refuse_access(
        self, session: Session, refusal: str, key: bytes, message: str | None = None
    ) -> None:
        self._metrics.refusals.refused(refusal, peer=session.ip, key=fingerprint(key))
        said = message or _ACCESS_REFUSALS[refusal]
        self._output.error(session, None, ErrorCode.FORBIDDEN, said)
        await session.conn.close(CloseCode.AUTH_FAILED, "This key may not use this relay.")

    def set_access(self, access: AccessPolicy) -> None:
        """New access rules: they apply to new connections and new requests."""
        self.access = self.handlers.access = access

    def live(self, key: bytes) -> Session | None:
        """The open connection of ``key``, if any."""
        return self._live.get(key)

    def connected(self) -> list[Session]:
        """Every authenticated connection."""
        return list(self._live.values())

    def _replace(self, session: Session) -> None:
        """One identity, one live connection: the newest replaces the one before.

        Called once the new connection is attached, so the key never looks offline. The
        old connection gets no traffic from now on and is closed with 4409 in the
        background (a dead peer must not delay the new one by the close timeout).
        """
        key = session.key
        old = self._live.get(key)
        self._live[key] = session
        if old is not None:
            self._hand_over(old)

    def _taken_elsewhere(self, key: bytes) -> None:
        """A newer connection of ``key`` authenticated on another relay of the cluster:
        ours is replaced exactly as by a newer one here (the key stays online there)."""
        old = self._live.pop(key, None)
        if old is not None:
            self._hand_over(old)

    def _hand_over(self, old: Session) -> None:
        """Stop ``old``'s traffic now and close it with 4409 in the background."""
        key = old.key
        self._engine.broker.detach(key, old.conn, self._directory.rooms_of.get(key, ()))
        closing = asyncio.create_task(old.conn.close(CloseCode.REPLACED, REPLACED_REASON))
        self._replaced.add(closing)
        closing.add_done_callback(self._replaced.discard)

    async def _await_hello(self, session: Session) -> Hello:
        while True:
            frame = await self._next_frame(session)
            if isinstance(frame, Hello):
                return frame
            if frame is not None:
                self._output.error(
                    session,
                    getattr(frame, "id", None),
                    ErrorCode.UNAUTHENTICATED,
                    "Authenticate first: answer the challenge with hello.",
                )

    async def _next_frame(self, session: Session) -> ClientFrame | None:
        """The next valid frame, or None after answering a bad or refused one."""
        data = await session.conn.recv()
        session.frames_in += 1
        self._metrics.frames_in += 1
        self._metrics.bytes_in += len(data)
        now = asyncio.get_running_loop().time()
        verdict = session.limiter.admit(now)
        if verdict is Verdict.CLOSE:
            raise AbuseError
        if verdict is Verdict.REFUSE:
            self._metrics.refusals.refused("rate", peer=session.ip)
            self._output.error(
                session,
                request_id(data),
                ErrorCode.RATE_LIMITED,
                f"Slow down: at most {self._config.rate:g} frames per second.",
            )
            return None
        try:
            if isinstance(data, bytes):
                raise ProtocolError(
                    ErrorCode.BAD_FRAME, "Send JSON in text frames; binary frames are not used."
                )
            return decode_client_frame(data, self._config.max_frame)
        except ProtocolError as exc:
            if session.limiter.strike(now) is Verdict.CLOSE:
                raise AbuseError from None
            self._output.error(session, request_id(data), exc.code, exc.message)
            return None

    async def _read_loop(self, session: Session) -> None:
        pipeline = self.pipeline
        while True:
            frame = await self._next_frame(session)
            if frame is None:
                continue
            request = getattr(frame, "id", None)  # every request but hello has one
            pipelined = isinstance(frame, Send)
            if session.inflight and (not pipelined or session.inflight >= MAX_INFLIGHT):
                await pipeline.drain(session)
            try:
                if isinstance(frame, Send):
                    pipeline.begin(session, frame)
                else:
                    await self.handlers.handle(session, frame)
            except ProtocolError as exc:
                await pipeline.drain(session)  # a refusal must not overtake earlier `sent`s
                self._output.error(session, request, exc.code, exc.message)
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
                self._output.error(
                    session, request, ErrorCode.INTERNAL, "The relay failed on that request."
                )

    async def _release(self, session: Session) -> None:
        """The authenticated connection closed: maybe its key went offline."""
        key, now, directory = session.key, now_ms(), self._directory
        if self._live.get(key) is session:
            del self._live[key]
        last = self._engine.broker.detach(key, session.conn, directory.rooms_of.get(key, ()))
        directory.release(key, now)
        if not last:
            return
        change = directory.went_offline(key, now)
        self._output.announce(key)
        with contextlib.suppress(ProtocolError):
            await self._engine.apply(change)
