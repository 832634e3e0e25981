"""The relay's answers to authenticated requests, one handler per frame type.

A handler asks the directory (which decides, or raises ProtocolError), has the engine
`apply` the change it returns, and writes replies and fan-out to the output port. The
read loop (sessions.py) catches what a handler raises; `send` goes to the send pipeline.
"""

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from nacl.utils import random as random_bytes
from websockets.asyncio.server import ServerConnection

from e2echat.protocol import (
    MAX_SYNC_LIMIT,
    SIGNAL_BURST,
    SIGNAL_RATE,
    Ack,
    ClientFrame,
    CreateRoom,
    DirectDelivery,
    DirectSend,
    DirectsSend,
    DirectsSent,
    ErrorCode,
    Hello,
    JoinRoom,
    LeaveRoom,
    ListRooms,
    LogAppend,
    LogEntries,
    LogRequest,
    Lookup,
    MemberJoined,
    MemberLeft,
    MembersList,
    MembersRequest,
    Ok,
    PrekeyFound,
    PrekeyLookup,
    PrekeyUpdate,
    ProtocolError,
    Retract,
    RoomDeletion,
    RoomList,
    RoomReply,
    Sent,
    SetName,
    SetStatus,
    Signal,
    SignalSend,
    SummaryReply,
    Sync,
    Synced,
)
from e2echat.protocol.constants import MAX_LOG_PAGE
from e2echat.protocol.roomlog import Kind
from e2echat_server.access import AccessPolicy
from e2echat_server.clock import now_ms
from e2echat_server.config import RelayConfig
from e2echat_server.directory import Directory, Room
from e2echat_server.engine import Engine
from e2echat_server.handshake import prekey_signed, verify_name_statement
from e2echat_server.logpages import LogPages
from e2echat_server.logs import fingerprint
from e2echat_server.output import Output
from e2echat_server.pipeline import check_body, room_message
from e2echat_server.ratelimit import TokenBucket
from e2echat_server.session import Session
from e2echat_server.store import Envelope, LogMovedError

# Sync and the mailbox flush read the store in pages of this many bodies (at most ~3 MiB
# at the largest body), and send each page before reading the next: one request never
# holds a whole history in memory, nor the store's single thread for long.
READ_PAGE = 64
# A join decided on a log that grew while the join was stored (an append on this relay
# or another one sharing the store) is decided again on the log read anew, for as long as
# the log keeps growing: many members joining at once is contention, not a fault. A store
# that says the log moved and shows no new entry is believed this many times.
JOIN_ATTEMPTS = 3

Handler = Callable[[Session, Any], Awaitable[None]]


def direct_delivery(entry: Envelope) -> DirectDelivery:
    """The `direct` frame of a mailbox entry."""
    return DirectDelivery(sender=entry.sender, seq=entry.seq, ts=entry.ts, body=entry.body)


class Handlers:
    """Every request but `send`, by frame type (``table``)."""

    def __init__(
        self,
        config: RelayConfig,
        directory: Directory,
        engine: Engine[ServerConnection],
        output: Output,
    ) -> None:
        self._config = config
        self.access = AccessPolicy()
        self._directory = directory
        self._engine = engine
        self._output = output
        self._log_pages = LogPages()
        self.table: dict[type[Any], Handler] = {
            CreateRoom: self.create_room,
            JoinRoom: self.join_room,
            LeaveRoom: self.leave_room,
            MembersRequest: self.members,
            ListRooms: self.list_rooms,
            Lookup: self.lookup,
            PrekeyUpdate: self.prekey,
            PrekeyLookup: self.prekey_lookup,
            DirectSend: self.direct,
            DirectsSend: self.directs,
            Retract: self.retract,
            SignalSend: self.signal,
            Ack: self.ack,
            Sync: self.sync,
            SetStatus: self.status,
            SetName: self.set_name,
            Hello: self.hello_again,
            LogAppend: self.log_append,
            LogRequest: self.log,
        }

    def reconfigure(self, config: RelayConfig) -> None:
        self._config = config

    async def handle(self, session: Session, frame: ClientFrame) -> None:
        await self.table[type(frame)](session, frame)

    async def set_name(self, session: Session, frame: SetName) -> None:
        """Rename: stored, then announced to the user's rooms and its own connections."""
        verify_name_statement(session.key, frame.name_statement)
        await self._engine.apply(
            self._directory.rename(session.key, frame.name, frame.name_statement)
        )
        self._output.renamed(session.key)
        self._output.reply(session, Ok(id=frame.id))

    async def hello_again(self, session: Session, frame: Hello) -> None:
        raise ProtocolError(ErrorCode.UNAUTHENTICATED, "This connection is already authenticated.")

    async def create_room(self, session: Session, frame: CreateRoom) -> None:
        if not self.access.may_create_room(session.key):
            self._engine.metrics.refusals.refused(
                "room_creation", peer=session.ip, key=fingerprint(session.key)
            )
            raise ProtocolError(
                ErrorCode.FORBIDDEN, "On this relay only listed keys may create rooms."
            )
        room, change = self._directory.create_room(session.key, frame, random_bytes(16), now_ms())
        await self._engine.apply(change)
        self._engine.broker.joined(room.record.id, session.key)
        self._output.reply(session, RoomReply(id=frame.id, room=self._directory.room_info(room)))

    async def join_room(self, session: Session, frame: JoinRoom) -> None:
        directory, key = self._directory, session.key
        try:
            found = directory.lookup(frame.name)
        except ProtocolError:
            # Created on another relay a moment ago? Its notice may still be on its way.
            await self._engine.broker.catch_up()
            found = directory.lookup(frame.name)
        room, added = await self._admit(key, frame, found.record.id)
        if added:
            room_id = room.record.id
            self._engine.broker.joined(room_id, key)
            member = directory.member(key, room.members[key])
            self._output.to_room(room_id, MemberJoined(room=room_id, member=member), skip=session)
            for text in directory.status_texts_of((key,)):  # a text its entry does not carry
                self._output.to_room(room_id, text, skip=session)
        self._output.reply(session, RoomReply(id=frame.id, room=directory.room_info(room)))
        self._output.status_texts(session, (room.record.id,))

    async def _admit(self, key: bytes, frame: JoinRoom, room_id: bytes) -> tuple[Room, bool]:
        """Decide the join on this relay's copy of the room's log and store it if the
        store's log is still that long, else read what it lacks and decide again (a kick,
        a ban or a new secret may have come in, or just other members' joins); a first
        refusal is decided again too, on the log read anew (a new secret the copy lacks
        opens the room). Whether ``key`` was added (False: a member already)."""
        read, stalled = -1, 0  # the log's length at the last decision; reads that found no more
        while True:
            await self._load_log(room_id, again=read >= 0)
            room = self._directory.rooms.get(room_id)
            length = room.log_read if room is not None else read
            first = read < 0
            if length <= read:
                stalled += 1
                if stalled == JOIN_ATTEMPTS:
                    raise ProtocolError(
                        ErrorCode.UNAVAILABLE, "The room's log kept changing; try again."
                    )
            read = length
            try:
                room, change = self._directory.join(key, frame, now_ms())
            except ProtocolError as exc:
                if exc.code != ErrorCode.FORBIDDEN or not first:
                    raise
                continue
            if change is None:
                return room, False
            try:
                await self._engine.apply(change)
            except LogMovedError:
                continue
            return room, True

    async def leave_room(self, session: Session, frame: LeaveRoom) -> None:
        await self._leave(session.key, frame.room)
        self._output.reply(session, Ok(id=frame.id))

    async def _leave(self, key: bytes, room_id: bytes) -> None:
        room, change = self._directory.leave(key, room_id)
        await self._engine.apply(change)
        self._engine.broker.left(room_id, key)
        if room.members:
            self._output.to_room(room_id, MemberLeft(room=room_id, key=key))

    async def _load_log(self, room_id: bytes, again: bool = False) -> None:
        """Read what this relay lacks of the room's stored membership log: the whole log
        once, then what another relay sharing the store announced it appended (or, with
        ``again``, whatever the store holds beyond this relay's copy). Read again while an
        announcement comes in during the read: that read may have been answered before
        the entry announced was stored."""
        room = self._directory.rooms.get(room_id)
        store = self._engine.store
        while room is not None and (again or room.log_stale):
            again = False
            start, seen = max(room.log_read, 0), room.log_seen
            entries: list[bytes] = []
            while True:
                page = await self._engine.call(
                    "log_entries", store.log_entries(room_id, start + len(entries), MAX_LOG_PAGE)
                )
                entries += page
                if len(page) < MAX_LOG_PAGE:
                    break
            self._log_pages.add(room_id, start, entries)
            if self._directory.rooms.get(room_id) is not room:
                return  # dropped meanwhile
            self._directory.load_log(room_id, start, entries)
            # Nothing announced during the read: it is as new as any announcement (a room
            # dropped from the store reads nothing more; the drop's notice is on its way).
            if room.log_seen == seen:
                return

    async def log_append(self, session: Session, frame: LogAppend) -> None:
        """Append a signed membership statement at the head, tell the room, and act on an
        authorised removal: the removed member stops being routed to at once."""
        await self._load_log(frame.room)
        try:
            state, entry = self._directory.check_log_append(session.key, frame.room, frame.entry)
        except ProtocolError as exc:
            if exc.code != ErrorCode.LOG_CONFLICT:
                raise
            # Another relay sharing the store may have appended (its notice still on the
            # bus): read what the store holds beyond this copy before calling it stale.
            await self._load_log(frame.room, again=True)
            state, entry = self._directory.check_log_append(session.key, frame.room, frame.entry)
        store = self._engine.store
        stored = await self._engine.call(
            "log_append", store.log_append(frame.room, entry.seq, frame.entry)
        )
        if not stored:
            self._directory.log_grew(frame.room, entry.seq + 1)
            raise ProtocolError(
                ErrorCode.LOG_CONFLICT, "Another entry was appended first: fetch it, sign again."
            )
        self._directory.log_appended(frame.room, state)
        self._log_pages.add(frame.room, entry.seq, [frame.entry])
        update = LogEntries(room=frame.room, start=entry.seq, entries=[frame.entry])
        self._output.to_room(frame.room, update)
        if entry.kind in (Kind.LEAVE, Kind.REMOVE, Kind.BAN):
            await self._remove_subject(frame.room, entry.subject)
        self._output.reply(session, Ok(id=frame.id))

    async def _remove_subject(self, room_id: bytes, subject: bytes) -> None:
        """Stop routing ``room_id`` to the subject of a removal just appended. A join stored
        through another relay sharing the store before the entry (a join is stored only on
        the log it was decided on) was announced before it: if the subject is not a member
        here, wait for the bus to bring what was announced before now."""
        room = self._directory.rooms.get(room_id)
        if room is not None and subject not in room.members:
            with contextlib.suppress(ProtocolError):  # the bus is stuck (logged): as known
                await self._engine.broker.catch_up()
            room = self._directory.rooms.get(room_id)
        if room is not None and subject in room.members:
            await self._leave(subject, room_id)

    async def log(self, session: Session, frame: LogRequest) -> None:
        self._directory.member_room(session.key, frame.room)
        page = self._log_pages.page(frame.room, frame.after, MAX_LOG_PAGE, frame.id)
        if page is None:
            store = self._engine.store
            entries = await self._engine.call(
                "log_entries", store.log_entries(frame.room, frame.after, MAX_LOG_PAGE)
            )
            self._log_pages.add(frame.room, frame.after, entries)
            page = LogEntries(id=frame.id, room=frame.room, start=frame.after, entries=entries)
        self._output.reply(session, page)

    async def members(self, session: Session, frame: MembersRequest) -> None:
        room = self._directory.member_room(session.key, frame.room)
        members = self._directory.listed_members(room)
        self._output.reply(session, MembersList(id=frame.id, room=frame.room, members=members))
        self._output.status_texts(session, (frame.room,))

    async def list_rooms(self, session: Session, frame: ListRooms) -> None:
        rooms = [self._directory.summary(room) for room in self._directory.listed()]
        self._output.reply(session, RoomList(id=frame.id, rooms=rooms))

    async def lookup(self, session: Session, frame: Lookup) -> None:
        await self._load_log(self._directory.lookup(frame.name).record.id)
        room = self._directory.summary(self._directory.lookup(frame.name))
        self._output.reply(session, SummaryReply(id=frame.id, room=room))

    async def prekey(self, session: Session, frame: PrekeyUpdate) -> None:
        if not prekey_signed(session.key, frame.prekey):
            raise ProtocolError(
                ErrorCode.BAD_FRAME, "The prekey is not signed by your identity key."
            )
        await self._engine.apply(self._directory.set_prekey(session.key, frame.prekey))
        self._output.reply(session, Ok(id=frame.id))

    async def prekey_lookup(self, session: Session, frame: PrekeyLookup) -> None:
        """A key's signed prekey, as it published it (the asker checks the signature)."""
        user = self._directory.users.get(frame.key)
        if user is None:
            raise ProtocolError(
                ErrorCode.FORBIDDEN,
                "That key is unknown: this relay has never seen it authenticate.",
            )
        self._output.reply(session, PrekeyFound(id=frame.id, key=frame.key, prekey=user.prekey))

    async def direct(self, session: Session, frame: DirectSend) -> None:
        check_body(frame.body, self._config.max_body)
        entry, change = self._directory.post_direct(frame.to, session.key, frame.body, now_ms())
        stored = await self._engine.apply(change)
        if isinstance(stored, Envelope):  # a shared store's numbering
            entry = stored
        self._engine.metrics.directs_in += 1
        self._output.to_key(frame.to, direct_delivery(entry))
        self._output.reply(session, Sent(id=frame.id, room=None, seq=entry.seq, ts=entry.ts))

    async def directs(self, session: Session, frame: DirectsSend) -> None:
        """Store many envelopes (a room's key shares) as single directs would be, against
        the connection's share budget: checked all or none, then stored together (one
        group commit), delivered, and answered once every one is durable."""
        if not frame.items:
            raise ProtocolError(ErrorCode.BAD_FRAME, "A `directs` frame needs at least one item.")
        for item in frame.items:
            check_body(item.body, self._config.max_body)
        now = asyncio.get_running_loop().time()
        config = self._config
        if session.shares is None:
            session.shares = TokenBucket.full(config.share_rate, config.share_burst, now)
        session.shares.rate, session.shares.burst = config.share_rate, config.share_burst
        if session.shares.wait(now, len(frame.items)) > 0:
            raise ProtocolError(
                ErrorCode.RATE_LIMITED,
                f"Slow down: at most {config.share_rate:g} `directs` envelopes per second.",
            )
        items = [(item.to, item.body) for item in frame.items]
        posted = self._directory.post_directs(session.key, items, now_ms())
        session.shares.take(now, len(frame.items))
        results = await asyncio.gather(
            *(self._engine.apply(change) for _, change in posted), return_exceptions=True
        )
        seqs = []
        for (to, _), (entry, _), stored in zip(items, posted, results, strict=True):
            if isinstance(stored, BaseException):
                continue
            if isinstance(stored, Envelope):  # a shared store's numbering
                entry = stored
            self._engine.metrics.directs_in += 1
            self._output.to_key(to, direct_delivery(entry))
            seqs.append(entry.seq)
        for failed in results:
            if isinstance(failed, BaseException):
                raise failed  # `unavailable`: the client sends the frame again
        ts = posted[0][0].ts
        self._output.reply(session, DirectsSent(id=frame.id, seqs=seqs, ts=ts))

    async def retract(self, session: Session, frame: Retract) -> None:
        """Drop a stored body its authenticated sender deleted; clients decide the delete
        itself from the signed `delete` payload, so this only stops serving the ciphertext."""
        self._directory.member_room(session.key, frame.room)
        store = self._engine.store
        done = await self._engine.call("retract", store.retract(frame.room, frame.seq, session.key))
        if done == "foreign":
            raise ProtocolError(ErrorCode.FORBIDDEN, "Only its sender may retract a message.")
        self._output.reply(session, Ok(id=frame.id))

    async def signal(self, session: Session, frame: SignalSend) -> None:
        """Pass an ephemeral body (typing) to the room's live connections: never stored,
        never answered, and over the connection's budget silently dropped."""
        self._directory.member_room(session.key, frame.room)
        now = asyncio.get_running_loop().time()
        if session.signals is None:
            session.signals = TokenBucket.full(SIGNAL_RATE, SIGNAL_BURST, now)
        if session.signals.take(now):
            signal = Signal(room=frame.room, sender=session.key, body=frame.body)
            self._output.to_room(frame.room, signal, skip=session)

    async def ack(self, session: Session, frame: Ack) -> None:
        store = self._engine.store
        removed = await self._engine.call(
            "mailbox_ack", store.mailbox_ack(session.key, frame.mailbox)
        )
        self._directory.mailbox_acked(session.key, removed)
        self._output.reply(session, Ok(id=frame.id))

    async def sync(self, session: Session, frame: Sync) -> None:
        room = self._directory.member_room(session.key, frame.room)
        remaining = frame.limit or MAX_SYNC_LIMIT
        not_before = now_ms() - self._config.history_age_s * 1000
        after = frame.after
        store = self._engine.store
        # Read before the history, so every message up to it is in what follows.
        latest = await self._engine.call("latest_seq", store.latest_seq(frame.room))
        while remaining:
            page = min(remaining, READ_PAGE)
            batch = await self._engine.call(
                "history", store.history(frame.room, after, not_before, page)
            )
            for entry in batch:
                await self._output.reply_paced(session, room_message(frame.room, entry))
            if len(batch) < page:
                break
            remaining -= page
            after = batch[-1].seq
        seq = room.seq if latest is None else latest
        self._output.reply(session, Synced(id=frame.id, room=frame.room, seq=seq))

    async def status(self, session: Session, frame: SetStatus) -> None:
        now = asyncio.get_running_loop().time()
        if self._directory.set_status(session.key, frame.status, frame.text, now):
            self._output.presence(session.key)
        self._output.reply(session, Ok(id=frame.id))

    async def tell_deletions(self, session: Session) -> None:
        """Send ``session`` the notices of rooms the operator deleted while it was a member
        (after `welcome`, before its first reply: protocol.md section 5)."""
        store = self._engine.store
        kept = await self._engine.call("deletions", store.deletions(session.key, now_ms()))
        for deletion in kept:
            notice = RoomDeletion(room=deletion.room, reason=deletion.reason, ts=deletion.ts)
            await self._output.reply_paced(session, notice)

    async def flush_mailbox(self, session: Session) -> None:
        """Send ``session``'s queued directs (after `welcome`), a page at a time."""
        after, store = 0, self._engine.store
        while True:
            batch = await self._engine.call("mailbox", store.mailbox(session.key, after, READ_PAGE))
            for entry in batch:
                await self._output.reply_paced(session, direct_delivery(entry))
            if len(batch) < READ_PAGE:
                return
            after = batch[-1].seq
