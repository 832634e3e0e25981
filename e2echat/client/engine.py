"""The client's sans-I/O core: relay frames and time in, frames to send and events out.

``Engine`` owns the store and the crypto session and knows nothing of sockets or the
event loop: the shell (``connection``) feeds it every decoded relay frame and a clock,
sends the frames it returns, and publishes the messages and events it returns. All of
its methods run on one worker thread, one at a time, so it needs no locks.

What it adds to the crypto core: the relay's view of rooms (names, members, presence),
dedupe by room seq (the crypto core dedupes by ``(sender, chain, index)``), the outbox,
message history, mailbox acknowledgements, resume with ``sync``, and the translation of
crypto outcomes into the public ``Message`` and ``Event`` values.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal, cast

from e2echat.client import events as ev
from e2echat.client.errors import E2EChatError, NotAMember
from e2echat.client.mentions import resolve_mentions
from e2echat.client.models import Member, Message
from e2echat.client.seqs import SeqWindow
from e2echat.crypto import events as cev
from e2echat.crypto.errors import CryptoError
from e2echat.crypto.identity import Identity
from e2echat.crypto.message import HEADER_SIZE, PAD_BLOCK
from e2echat.crypto.payload import Text, decode_payload, decode_sent, encode_payload
from e2echat.crypto.prekeys import SignedPrekey as CryptoPrekey
from e2echat.crypto.primitives import SIGNATURE_SIZE, TAG_SIZE
from e2echat.crypto.roomsecret import RoomSecret
from e2echat.crypto.safety import fingerprint
from e2echat.crypto.session import CryptoSession
from e2echat.crypto.session import Member as CryptoMember
from e2echat.protocol import (
    MAX_BODY,
    MAX_SYNC_LIMIT,
    Ack,
    Challenge,
    ClientFrame,
    DirectDelivery,
    DirectSend,
    Error,
    ErrorCode,
    Hello,
    MemberJoined,
    MemberLeft,
    MembersList,
    MembersRequest,
    PrekeyUpdate,
    Presence,
    RelayFrame,
    RoomInfo,
    Send,
    Sent,
    SetStatus,
    SignedPrekey,
    Sync,
    Synced,
    Welcome,
    hello_transcript,
)
from e2echat.protocol import Member as RelayMember
from e2echat.protocol import Message as RelayMessage
from e2echat.store import HistoryItem, RoomRecord, Store

if TYPE_CHECKING:
    from e2echat.client.room import Room

log = logging.getLogger("e2echat")
Access = Literal["open", "password", "invite"]
Status = Literal["online", "away", "busy"]
OUTBOX_ID = "o"
PROOF_WAIT_MS = 5000
"""After joining a secret room, sends wait up to this long for the members' proofs."""
SYNC_ID = "s"
MEMBERS_ID = "m"
RECENT_DELIVERED = 4096
"""Delivered bodies remembered to recognise a resent copy (``_resent_copy``)."""
SYNC_SETTLE_MS = 5000
"""An empty sync moves the floor to ``synced.seq`` only after this long (see ``_synced``)."""
MAX_OUTBOX_DIGITS = 18
"""Outbox ids have at most this many digits (SQLite integers are 64-bit)."""
_ROSTER_EVENTS = (cev.MemberValidated, cev.MemberUnverified)
_DROP_ON = frozenset(
    {ErrorCode.NOT_MEMBER, ErrorCode.NO_SUCH_ROOM, ErrorCode.TOO_LARGE, ErrorCode.BAD_FRAME}
)


@dataclass
class Output:
    """What one engine step asks the shell to do: send, publish, confirm."""

    frames: list[ClientFrame] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)
    events: list[ev.Event] = field(default_factory=list)
    confirmed: list[tuple[int, Message]] = field(default_factory=list)
    """Outbox ids the relay accepted, with the message as sent."""

    def extend(self, other: Output) -> None:
        """Append everything ``other`` asks for, after what this one asks for."""
        self.frames += other.frames
        self.messages += other.messages
        self.events += other.events
        self.confirmed += other.confirmed


@dataclass
class RoomState:
    """One joined room. ``member_list`` is an immutable snapshot, replaced on change,
    so the event loop can read it while the worker thread updates the room."""

    record: RoomRecord
    room: Room = field(init=False)
    members: dict[bytes, RelayMember] = field(default_factory=dict)
    member_list: tuple[Member, ...] = ()
    seqs: SeqWindow = field(default_factory=SeqWindow)
    syncing: int | None = None
    """Messages received since the last ``sync`` was sent, or None when not syncing."""
    sync_low: int | None = None
    """The lowest seq received since the last ``sync`` was sent."""
    floor_due: tuple[int, int] | None = None
    """After an empty sync: move the floor to this seq at this time (ms), see ``_synced``."""
    joined: bool = True
    awaiting: set[bytes] = field(default_factory=set)
    """Secret room: members (present at our join, or announced since) whose proof we
    still await."""
    hold_until: int = 0
    """Until then (ms), sends wait for ``awaiting`` members to prove themselves."""
    roster_pending: bool = False
    """`welcome` listed the room partial: its members are asked for and not known yet."""

    def holds(self, now: int) -> bool:
        """Whether sending should wait: a message sent before a member is validated can
        never be read by it (it gets our chain from the index current at validation),
        and members who joined while we were away are unknown until the roster comes."""
        return self.roster_pending or (bool(self.awaiting) and now < self.hold_until)


def body_size(payload_size: int) -> int:
    """The size of the room body that carries a payload of ``payload_size`` bytes:
    header, payload padded to whole blocks (at least one padding byte), tag, signature."""
    padded = (payload_size // PAD_BLOCK + 1) * PAD_BLOCK
    return HEADER_SIZE + padded + TAG_SIZE + SIGNATURE_SIZE


def _crypto_member(member: RelayMember) -> CryptoMember:
    prekey = member.prekey
    return CryptoMember(member.key, member.name, CryptoPrekey(prekey.id, prekey.key, prekey.sig))


def _outbox_id(request_id: str | None) -> int | None:
    """The outbox id in one of our send ids (``o<id>``), or None for any other id.

    The relay echoes ids back, so they are untrusted input: only ASCII digits of a
    size SQLite can hold are an outbox id.
    """
    if request_id is None or not request_id.startswith(OUTBOX_ID):
        return None
    digits = request_id[len(OUTBOX_ID) :]
    if not (digits.isascii() and digits.isdigit() and len(digits) <= MAX_OUTBOX_DIGITS):
        return None
    return int(digits)


def _hex_or_empty(text: str) -> bytes:
    """The bytes of a hex string, or b"" if it is not one (an untrusted echoed id)."""
    try:
        return bytes.fromhex(text)
    except ValueError:
        return b""


def _sent_at(ts: int) -> datetime:
    return datetime.fromtimestamp(ts / 1000, UTC)


class Engine:
    """The client's state machine. Not thread-safe: drive it from one thread."""

    def __init__(
        self,
        identity: Identity,
        name: str,
        store: Store,
        session: CryptoSession,
        room_factory: Callable[[RoomState], Room],
        clock: Callable[[], int],
        proof_wait: int = PROOF_WAIT_MS,
    ) -> None:
        self.identity = identity
        self.me = identity.public_key
        self.name = name
        self.store = store
        self.session = session
        self.clock = clock
        self.proof_wait = proof_wait
        self.max_body = MAX_BODY
        """The relay's body limit, from its challenge (the protocol default until then)."""
        self._room_factory = room_factory
        self.rooms: dict[bytes, RoomState] = {}
        self.connected = False
        self._presence: dict[bytes, tuple[str, str | None]] = {}
        self._inflight: set[int] = set()
        self._mailbox_seen = 0
        self._mailbox_acked = 0
        self._delivered: OrderedDict[bytes, None] = OrderedDict()
        """Room id + sender + body digest of recently delivered messages, oldest first."""
        for record in store.rooms():
            self._add_room(record)

    # Rooms and members -------------------------------------------------------------

    def _add_room(self, record: RoomRecord) -> RoomState:
        state = RoomState(record, seqs=SeqWindow(record.last_seq))
        state.room = self._room_factory(state)
        self.rooms[record.id] = state
        return state

    def member(self, key: bytes, room_id: bytes | None) -> Member:
        """The public view of a member, from the relay's data and our crypto state."""
        state = self.rooms.get(room_id) if room_id is not None else None
        relay_member = state.members.get(key) if state is not None else None
        if relay_member is None:
            relay_member = next(
                (s.members[key] for s in self.rooms.values() if key in s.members), None
            )
        name = relay_member.name if relay_member is not None else self._fallback_name(key)
        if key == self.me:
            # Our own presence is what we know, not what the relay listed before it flipped.
            own = self._presence.get(key, ("online", None))
            status, text = own if self.connected else ("offline", None)
        else:
            status, text = self._presence.get(
                key, (relay_member.status if relay_member is not None else "offline", None)
            )
        contact = self.session.contacts.get(key)
        verified = contact is not None and contact.verified
        validated = key == self.me or (
            room_id is not None and key in self.session.validated_members(room_id)
        )
        return Member(
            key, name, status, text, fingerprint(key), verified, validated, key == self.me
        )

    def _fallback_name(self, key: bytes) -> str:
        return self.name if key == self.me else key.hex()[:8]

    def set_verified(self, key: bytes, verified: bool) -> None:
        """The user verified ``key`` (or withdrew it): record it, show it in every roster."""
        if verified:
            self.session.contacts.mark_verified(key)
        else:
            self.session.contacts.unverify(key)
        self._refresh_trust(key)

    def _refresh_trust(self, key: bytes) -> None:
        for state in self.rooms.values():
            if key in state.members:
                self._refresh_members(state)

    def _refresh_members(self, state: RoomState) -> None:
        keys = sorted(state.members, key=lambda k: (state.members[k].name.casefold(), k))
        state.member_list = tuple(self.member(key, state.record.id) for key in keys)

    def enter_room(
        self, info: RoomInfo, access: Access, secret: RoomSecret | None
    ) -> tuple[Room, Output]:
        """We created or joined a room (the relay's ``room`` reply)."""
        existing = self.rooms.get(info.id)
        if existing is not None and secret is None:
            # Joined again without the password or invite: the room stays what the
            # user made it (only what the user supplies decides that, never the relay).
            access = existing.record.access
            secret = self._secret_of(existing.record)
        record = RoomRecord(
            info.id,
            info.name,
            access,
            info.description,
            None if secret is None else secret.secret,
            info.seq,
        )
        out = Output()
        with self.store.transaction():
            self.store.save_room(record)
            if existing is not None:
                existing.record = record
            state = existing or self._add_room(record)
            if existing is None and secret is not None:
                online = {m.key for m in info.members if m.status != "offline"}
                state.awaiting = online - {self.me}
                state.hold_until = self.clock() + self.proof_wait
            self._reconcile(state, info.members, out)
        if existing is None:
            out.events.append(ev.RoomJoined(state.room))
        return state.room, out

    def _secret_of(self, record: RoomRecord) -> RoomSecret | None:
        return None if record.secret is None else RoomSecret(record.secret)

    def _reconcile(self, state: RoomState, members: list[RelayMember], out: Output) -> None:
        """Take the relay's full member list (join, reconnect, ``members``)."""
        before = set(state.members)
        listed = {member.key for member in members}
        gone = [self.member(key, state.record.id) for key in before - listed - {self.me}]
        state.members = {member.key: member for member in members}
        state.awaiting &= listed
        outcome = self.session.enter_room(
            state.record.id,
            [_crypto_member(m) for m in members],
            self.clock(),
            secret=self._secret_of(state.record),
        )
        self._apply(outcome, out)
        self._refresh_members(state)
        if before:
            for key in listed - before - {self.me}:
                out.events.append(ev.MemberJoined(state.room, self.member(key, state.record.id)))
        out.events += [ev.MemberLeft(state.room, member) for member in gone]

    def reconcile(self, room_id: bytes, members: list[RelayMember]) -> Output:
        """A fresh member list from the relay (a ``members`` reply, the shell's or ours).
        If it is the roster a partial room waited for, the room resumes (see ``welcome``)."""
        out = Output()
        state = self.rooms.get(room_id)
        if state is not None:
            with self.store.transaction():
                self._reconcile(state, members, out)
            self._resume(state, out)
        return out

    def _resume(self, state: RoomState, out: Output) -> None:
        """A partial room's roster came (or cannot): sync it and send what waited."""
        if state.roster_pending:
            state.roster_pending = False
            out.frames.append(self._sync(state))
            out.extend(self.flush_outbox())

    def left(self, room_id: bytes) -> Output:
        """We left a room (or the relay no longer lists us): forget it."""
        out = Output()
        state = self.rooms.pop(room_id, None)
        if state is not None:
            state.joined = False
            self.session.leave_room(room_id)
            self.store.delete_room(room_id)
            out.events.append(ev.RoomLeft(state.room))
        return out

    # Connection --------------------------------------------------------------------

    def hello(self, challenge: Challenge) -> Hello:
        """Our signed ``hello`` for this challenge."""
        self.max_body = challenge.limits.max_body
        prekey = self.session.current_prekey(self.clock())
        signed = SignedPrekey(id=prekey.id, key=prekey.key, sig=prekey.sig)
        transcript = hello_transcript(
            challenge.relay, challenge.nonce, self.me, self.name, prekey.id, prekey.key, prekey.sig
        )
        return Hello(key=self.me, name=self.name, prekey=signed, sig=self.identity.sign(transcript))

    def welcome(self, welcome: Welcome) -> Output:
        """Authenticated: reconcile rooms, resume each with ``sync``, flush the outbox."""
        self.connected = True
        self._mailbox_seen = self._mailbox_acked = 0
        out = Output()
        own = self._presence.get(self.me)
        self._presence = {}
        if own is not None:
            self._presence[self.me] = own
            out.frames.append(SetStatus(status=cast(Status, own[0]), text=own[1]))
        listed = {info.id: info for info in welcome.rooms}
        for room_id in [r for r in self.rooms if r not in listed]:
            out.extend(self.left(room_id))
        with self.store.transaction():
            for info in welcome.rooms:
                state = self.rooms.get(info.id)
                if state is None:
                    out.events.append(
                        ev.Notice(
                            f"The relay lists room {info.name!r} that this device has no keys"
                            " for; leave it and join again to take part."
                        )
                    )
                    continue
                state.roster_pending = info.partial
                if info.partial:
                    # Its members were left out (protocol.md section 4): an empty list is
                    # not "everyone left", so no reconcile until the ``members`` reply.
                    # The sync waits for it too, and so do live messages, member events
                    # and sends for the room (``_room_message``, ``holds``): messages
                    # would decrypt without the roster (shares carry the chains), but
                    # senders and mentions could not be named, members who joined while
                    # we were away would miss our chain, and the roster's diff would
                    # replay those events. (Secret-room proofs come as directs, checked
                    # against the room secret, so they need not wait.) One round trip
                    # later the room resumes in ``reconcile`` as a full room does here.
                    out.frames.append(
                        MembersRequest(room=info.id, id=f"{MEMBERS_ID}{info.id.hex()}")
                    )
                    continue
                self._reconcile(state, info.members, out)
                out.frames.append(self._sync(state))
        out.extend(self.flush_outbox())
        return out

    def disconnected(self) -> None:
        """The connection is gone: sends queue up until the next ``welcome``."""
        self.connected = False
        self._inflight.clear()
        for state in self.rooms.values():
            state.syncing = state.sync_low = state.floor_due = None
            state.roster_pending = False

    def _sync(self, state: RoomState) -> Sync:
        """Ask for what the room got after our floor; replies are counted to page on."""
        state.syncing = 0
        return Sync(
            room=state.record.id,
            after=state.seqs.floor,
            limit=MAX_SYNC_LIMIT,
            id=f"{SYNC_ID}{state.record.id.hex()}",
        )

    def tick(self) -> Output:
        """Periodic work: crypto housekeeping, mailbox acknowledgement."""
        out = Output()
        now = self.clock()
        with self.store.transaction():
            self._apply(self.session.tick(now), out)
            for state in self.rooms.values():
                if state.floor_due is not None and now >= state.floor_due[1]:
                    state.seqs.advance_to(state.floor_due[0])
                    state.floor_due = None
                    self.store.set_last_seq(state.record.id, state.seqs.floor)
        if self.connected and self._mailbox_seen > self._mailbox_acked:
            out.frames.append(Ack(mailbox=self._mailbox_seen))
            self._mailbox_acked = self._mailbox_seen
        return out

    # Sending -----------------------------------------------------------------------

    def queue(self, room_id: bytes, text: str) -> tuple[int, Message, Output]:
        """Put a message in the outbox; send it now if connected.

        Raises ``E2EChatError`` (and queues nothing) for an empty or too long message.
        """
        state = self.rooms.get(room_id)
        if state is None:
            raise NotAMember("You are not a member of that room.")
        if not text:
            raise E2EChatError("An empty message is not sent.")
        roster = [(m.name, m.key) for m in state.members.values()]
        mentions = resolve_mentions(text, roster)
        now = self.clock()
        payload = encode_payload(Text(text, mentions, now))
        if body_size(len(payload)) > self.max_body:
            raise E2EChatError(
                f"The message is too long: {len(text.encode())} bytes of text; the relay"
                f" takes encrypted bodies of at most {self.max_body} bytes."
            )
        with self.store.transaction():
            item_id = self.store.enqueue(room_id, payload)
            out = self.flush_outbox() if self.connected else Output()
        return item_id, self._message(state, self.me, 0, now, Text(text, mentions, now)), out

    def flush_outbox(self) -> Output:
        """Send every queued message not already on its way, oldest first.

        A message is encrypted once and its body kept, so a resend after a lost reply
        carries the same bytes (receivers drop the copy quietly: see ``_resent_copy``).
        """
        out = Output()
        now = self.clock()
        for item in self.store.outbox():
            if item.id in self._inflight:
                continue
            state = self.rooms.get(item.room_id)
            if state is None:
                self.store.remove_outbox(item.id)
                continue
            if state.holds(now):
                continue
            body = item.body
            if body is None:
                try:
                    with self.store.transaction():
                        outgoing = self.session.encrypt(
                            item.room_id, decode_sent(item.payload), self.clock()
                        )
                        self.store.set_outbox_body(item.id, outgoing.body)
                except CryptoError as exc:
                    self.store.remove_outbox(item.id)
                    out.events.append(ev.Notice(f"A message could not be encrypted: {exc}."))
                    continue
                out.frames += [DirectSend(to=d.recipient, body=d.body) for d in outgoing.directs]
                body = outgoing.body
            out.frames.append(Send(room=item.room_id, body=body, id=f"{OUTBOX_ID}{item.id}"))
            self._inflight.add(item.id)
        return out

    def _confirm(self, frame: Sent, item_id: int, out: Output) -> None:
        self._inflight.discard(item_id)
        item = self.store.outbox_item(item_id)
        state = self.rooms.get(frame.room) if frame.room is not None else None
        if item is None or state is None or item.room_id != frame.room:
            return
        with self.store.transaction():
            self.store.remove_outbox(item_id)
            self.store.add_history(
                HistoryItem(item.room_id, frame.seq, self.me, frame.ts, item.payload)
            )
            state.seqs.add(frame.seq)
            self.store.set_last_seq(item.room_id, state.seqs.floor)
        payload = decode_sent(item.payload)
        assert isinstance(payload, Text)  # the outbox holds text messages only
        out.confirmed.append((item_id, self._message(state, self.me, frame.seq, frame.ts, payload)))

    # Receiving ---------------------------------------------------------------------

    def receive(self, frame: RelayFrame) -> Output:
        """Handle one frame that answers no request of the shell.

        Remote bad input becomes events (the crypto core reports rather than raises);
        should a check still raise, the frame is dropped with a notice, never the link.
        """
        try:
            return self._receive(frame)
        except CryptoError as exc:
            return Output(events=[ev.Notice(f"A frame from the relay was rejected: {exc}.")])

    def _receive(self, frame: RelayFrame) -> Output:
        out = Output()
        if isinstance(frame, RelayMessage):
            self._room_message(frame, out)
        elif isinstance(frame, DirectDelivery):
            self._direct(frame, out)
            if self.connected:
                out.extend(self.flush_outbox())
        elif isinstance(frame, Sent) and (item_id := _outbox_id(frame.id)) is not None:
            self._confirm(frame, item_id, out)
        elif isinstance(frame, Synced):
            self._synced(frame, out)
        elif isinstance(frame, MembersList) and frame.id == f"{MEMBERS_ID}{frame.room.hex()}":
            out.extend(self.reconcile(frame.room, frame.members))
        elif isinstance(frame, Error):
            self._error(frame, out)
        elif isinstance(frame, MemberJoined):
            self._member_joined(frame, out)
        elif isinstance(frame, MemberLeft):
            self._member_left(frame, out)
        elif isinstance(frame, Presence):
            self._presence_changed(frame, out)
        return out

    def _room_message(self, frame: RelayMessage, out: Output) -> None:
        state = self.rooms.get(frame.room)
        if state is None or state.roster_pending:
            return  # a room waiting for its roster gets this from its sync (stored first)
        if state.syncing is not None:
            state.syncing += 1
            state.sync_low = frame.seq if state.sync_low is None else min(state.sync_low, frame.seq)
        if not state.seqs.add(frame.seq):
            return
        with self.store.transaction():
            if frame.sender != self.me and not self.store.has_history(frame.room, frame.seq):
                outcome = self.session.receive(
                    frame.room, frame.sender, frame.body, self.clock(), frame.seq
                )
                self._apply(outcome, out, frame.ts)
            self.store.set_last_seq(frame.room, state.seqs.floor)

    def _synced(self, frame: Synced, out: Output) -> None:
        """The end of a sync reply. ``frame.seq`` is the room's latest seq "at that
        moment" (protocol.md §6), which may belong to messages not stored or broadcast
        yet: they come live later, so the floor never jumps over them. It jumps only over
        what retention deleted: the seqs below the lowest one the sync returned (the relay
        stores and broadcasts in seq order). A sync that returned nothing cannot tell
        deleted from on-the-way seqs, so the floor moves to ``frame.seq`` only after
        ``SYNC_SETTLE_MS`` (on a tick), by when stragglers have arrived."""
        state = self.rooms.get(frame.room)
        if state is None or state.syncing is None:
            return
        received, state.syncing = state.syncing, None
        lowest, state.sync_low = state.sync_low, None
        if lowest is not None:
            state.seqs.advance_to(lowest - 1)
        elif frame.seq > state.seqs.floor:
            state.floor_due = (frame.seq, self.clock() + SYNC_SETTLE_MS)
        self.store.set_last_seq(frame.room, state.seqs.floor)
        if received >= MAX_SYNC_LIMIT:
            out.frames.append(self._sync(state))

    def _direct(self, frame: DirectDelivery, out: Output) -> None:
        """A direct envelope. Mailbox delivery is at-least-once, and a copy is harmless:
        the crypto core ignores a share it already holds and a proof it already checked.
        So no seq is trusted across connections (a relay that lost its data restarts its
        mailbox seqs); the highest seq seen is only what the next ``ack`` confirms."""
        with self.store.transaction():
            self._apply(self.session.receive_direct(frame.sender, frame.body, self.clock()), out)
        self._mailbox_seen = max(self._mailbox_seen, frame.seq)

    def _error(self, frame: Error, out: Output) -> None:
        rid = frame.id or ""
        item_id = _outbox_id(rid)
        if item_id is not None:
            self._inflight.discard(item_id)
            if frame.code in _DROP_ON:
                self.store.remove_outbox(item_id)
                out.events.append(ev.Notice(f"A message could not be sent: {frame.message}"))
            return
        if rid.startswith(SYNC_ID):
            state = self.rooms.get(_hex_or_empty(rid[len(SYNC_ID) :]))
            if state is not None:
                state.syncing = None
        if rid.startswith(MEMBERS_ID):
            state = self.rooms.get(_hex_or_empty(rid[len(MEMBERS_ID) :]))
            if state is not None:
                self._resume(state, out)  # no roster this time: don't hold the room up
        out.events.append(ev.Notice(f"The relay reports: {frame.message}"))

    def _member_joined(self, frame: MemberJoined, out: Output) -> None:
        state = self.rooms.get(frame.room)
        if state is None or state.roster_pending:
            return  # the roster on its way already lists it
        key = frame.member.key
        state.members[key] = frame.member
        if state.record.access != "open" and key != self.me:
            # Its proof is on its way (a joiner sends one to every member at once).
            state.awaiting.add(key)
            state.hold_until = max(state.hold_until, self.clock() + self.proof_wait)
        with self.store.transaction():
            self._apply(
                self.session.member_joined(frame.room, _crypto_member(frame.member), self.clock()),
                out,
            )
        self._refresh_members(state)
        if key != self.me:
            out.events.append(
                ev.MemberJoined(state.room, self.member(frame.member.key, frame.room))
            )

    def _member_left(self, frame: MemberLeft, out: Output) -> None:
        state = self.rooms.get(frame.room)
        if state is None:
            return
        if frame.key == self.me:
            out.extend(self.left(frame.room))
            return
        if state.roster_pending:
            return  # the roster on its way already leaves it out
        member = self.member(frame.key, frame.room)
        state.members.pop(frame.key, None)
        state.awaiting.discard(frame.key)
        with self.store.transaction():
            self._apply(self.session.member_left(frame.room, frame.key, self.clock()), out)
        self._refresh_members(state)
        out.events.append(ev.MemberLeft(state.room, member))

    def _presence_changed(self, frame: Presence, out: Output) -> None:
        room_id = next((r for r, s in self.rooms.items() if frame.key in s.members), None)
        if room_id is None:
            return  # not someone we share a room with: nothing to show, nothing to keep
        self._presence[frame.key] = (frame.status, frame.text)
        for state in self.rooms.values():
            if frame.key in state.members:
                self._refresh_members(state)
        out.events.append(ev.PresenceChanged(self.member(frame.key, room_id)))

    # Crypto outcomes -----------------------------------------------------------------

    def _apply(self, outcome: cev.Outcome, out: Output, ts: int | None = None) -> None:
        """Turn a crypto outcome into frames, stored messages and public events."""
        out.frames += [DirectSend(to=d.recipient, body=d.body) for d in outcome.directs]
        if outcome.publish_prekey is not None and self.connected:
            p = outcome.publish_prekey
            out.frames.append(PrekeyUpdate(prekey=SignedPrekey(id=p.id, key=p.key, sig=p.sig)))
        for decrypted in outcome.messages:
            state = self.rooms.get(decrypted.room_id)
            if state is None:
                continue
            # A message that waited for its key comes without the relay's timestamp:
            # the sender's own (inside the signed payload) stands in for it.
            sent = ts if ts is not None else decrypted.payload.ts
            payload = decrypted.payload
            if not isinstance(payload, Text):
                continue  # this version shows text messages only
            stored = self.store.add_history(
                HistoryItem(
                    decrypted.room_id,
                    decrypted.seq,
                    decrypted.sender,
                    sent,
                    encode_payload(payload),
                )
            )
            if not stored:
                continue  # that room seq reached the application before
            self._remember_delivered(decrypted)
            out.messages.append(
                self._message(state, decrypted.sender, decrypted.seq, sent, payload)
            )
        if any(isinstance(e, _ROSTER_EVENTS) for e in outcome.events):
            for state in self.rooms.values():
                self._refresh_members(state)
        for event in outcome.events:
            self._event(event, out)

    def _event(self, event: cev.Event, out: Output) -> None:
        """Publish one crypto event as a public event, if users need to see it."""
        if isinstance(event, cev.MemberValidated):
            state = self.rooms.get(event.room_id)
            if state is not None:
                state.awaiting.discard(event.member)
                member = self.member(event.member, event.room_id)
                out.events.append(ev.MemberValidated(state.room, member))
        elif isinstance(event, cev.ReplayRejected) and self._resent_copy(event):
            log.debug("dropped a resent copy of a delivered message (seq %d)", event.seq)
        elif isinstance(event, (cev.Undecryptable, cev.MessageRejected, cev.ReplayRejected)):
            state = self.rooms.get(event.room_id)
            if state is not None:
                reason = (
                    "replayed message rejected"
                    if isinstance(event, cev.ReplayRejected)
                    else event.reason
                )
                sender = self.member(event.sender, event.room_id)
                out.events.append(ev.Undecryptable(state.room, sender, event.seq, reason))
        elif isinstance(event, cev.DirectRejected):
            name = self.member(event.sender, None).name
            out.events.append(ev.Notice(f"A key message from {name} was rejected: {event.reason}."))

    def _resent_copy(self, event: cev.ReplayRejected) -> bool:
        """Whether a replay is a byte-identical copy of a message we delivered: what a
        sender resends when the connection dropped before the relay confirmed it.

        The crypto core rejected it either way (it is never shown twice); only a copy of
        something delivered is benign enough to drop quietly. Identical bytes mean the
        same signed header, so the same sender, chain and index.
        """
        key = event.room_id + event.sender + event.digest
        return bool(event.digest) and key in self._delivered

    def _remember_delivered(self, message: cev.Decrypted) -> None:
        """Keep the digest of a delivered body among the last ``RECENT_DELIVERED``.

        In memory, not in the store: a resend follows its original within the sender's
        reconnect, and an index over every stored message cost the receive path about
        10%. A copy that arrives after this client restarted, or thousands of messages
        later, is reported as a replay, as any other replay is.
        """
        if message.digest:
            self._delivered[message.room_id + message.sender + message.digest] = None
            if len(self._delivered) > RECENT_DELIVERED:
                self._delivered.popitem(last=False)

    def _message(
        self, state: RoomState, sender: bytes, seq: int, ts: int, payload: Text
    ) -> Message:
        mentions = tuple(self.member(key, state.record.id) for key in payload.mentions)
        return Message(
            text=payload.body,
            sender=self.member(sender, state.record.id),
            room=state.room,
            mentions=mentions,
            mentions_me=self.me in payload.mentions,
            seq=seq,
            sent_at=_sent_at(ts),
            own=sender == self.me,
        )

    def set_own_status(self, status: str, text: str | None) -> None:
        """The relay accepted our new status: show it on our own member entries."""
        self._presence[self.me] = (status, text)
        for state in self.rooms.values():
            self._refresh_members(state)

    # Local reads -------------------------------------------------------------------

    def history(self, room_id: bytes, limit: int) -> list[Message]:
        """The last ``limit`` stored messages of a room, oldest first."""
        state = self.rooms.get(room_id)
        if state is None:
            return []
        messages = []
        for item in self.store.history(room_id, limit):
            try:
                payload = decode_payload(item.payload)
            except CryptoError:
                continue
            if not isinstance(payload, Text):
                continue
            messages.append(self._message(state, item.sender, item.seq, item.ts, payload))
        return messages
