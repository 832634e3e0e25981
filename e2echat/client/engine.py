"""The client's sans-I/O core: relay frames and time in, frames to send and values out.

``Engine`` owns the store and the crypto session and knows nothing of sockets, the
event loop or the shell: the driver feeds it every decoded relay frame and a clock,
queues the frames it returns for sending, then binds and publishes the messages and
events it returns. All of its methods run on one worker thread, one at a time, so it
needs no locks.

It coordinates parts that each own one kind of state: the ``Outbox`` (queued messages,
send ids, confirmation, retry), a ``RoomSync`` per room (the explicit sync state
machine and processed seqs), and the ``Projection`` (presence, roster snapshots, public
values). The engine itself holds the relay's view of rooms (names, members), mailbox
acknowledgements, and turns crypto outcomes into messages and events.
"""

import dataclasses
import logging
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Literal, cast

import msgspec

from e2echat.client import events as ev
from e2echat.client.contention import LogContention
from e2echat.client.conversation import Conversation, Relation, announced_blob
from e2echat.client.errors import E2EChatError, NotAllowed, NotAMember, NotInHistory
from e2echat.client.membership import room_changed
from e2echat.client.mentions import resolve_mentions
from e2echat.client.models import Member, Message, Quote, Version
from e2echat.client.outbox import BATCH_ID, DIRECT_ID, BatchLimits, Outbox, outbox_id
from e2echat.client.output import Output
from e2echat.client.projection import Projection
from e2echat.client.roomstate import RoomState
from e2echat.client.roomsync import MEMBERS_ID, SYNC_ID, RoomSync
from e2echat.crypto import events as cev
from e2echat.crypto.direct import MAX_SKEW_MS
from e2echat.crypto.errors import CryptoError
from e2echat.crypto.events import LogStatement
from e2echat.crypto.identity import Identity
from e2echat.crypto.message import HEADER_SIZE, PAD_BLOCK, parse_body
from e2echat.crypto.payload import (
    Edit,
    File,
    Read,
    RoomPayload,
    Successor,
    Text,
    Typing,
    Unsupported,
    decode_sent,
    encode_payload,
    message_id,
)
from e2echat.crypto.prekeys import SignedPrekey as CryptoPrekey
from e2echat.crypto.primitives import SIGNATURE_SIZE, TAG_SIZE
from e2echat.crypto.roomlog import AuthorityError, LogError, require_rotator
from e2echat.crypto.roomsecret import RoomSecret
from e2echat.crypto.session import AnnouncedMember, CryptoSession
from e2echat.crypto.statements import sign_name
from e2echat.protocol import (
    MAX_BODY,
    Ack,
    BlobDelete,
    Challenge,
    ClientFrame,
    DirectDelivery,
    DirectsSent,
    Error,
    ErrorCode,
    Hello,
    LogAppend,
    LogEntries,
    LogRequest,
    MemberJoined,
    MemberLeft,
    MembersList,
    MembersRequest,
    PrekeyUpdate,
    Presence,
    RelayFrame,
    Renamed,
    Retract,
    RoomDeleted,
    RoomDeletion,
    RoomInfo,
    RosterEntry,
    Sent,
    SetName,
    SetStatus,
    Signal,
    SignalSend,
    SignedPrekey,
    Synced,
    Welcome,
    hello_transcript,
)
from e2echat.protocol import Message as RelayMessage
from e2echat.protocol.constants import MAX_LOG_PAGE
from e2echat.store import HistoryItem, ReadState, RoomRecord, Store
from e2echat.store.relations import RelationError

log = logging.getLogger("e2echat")
Access = Literal["open", "password", "invite"]
Status = Literal["online", "away", "busy"]
PROOF_WAIT_MS = 5000
"""After joining a secret room, sends wait up to this long for the members' proofs."""
RECENT_DELIVERED = 4096
"""Delivered bodies remembered to recognise a resent copy (``_resent_copy``)."""
EARLY_MESSAGES = 256
"""Room messages kept for a room the relay has put us in but the engine has not yet
entered (they can overtake the application's handling of the ``room`` reply)."""
EARLY_DIRECTS = 256
"""Directs kept for a room not entered yet (a member's share can overtake the ``room``
reply the same way); past this the oldest go, and a key request recovers them."""
BLOB_DELETE_ID = "b"
"""The request id of the ``blob_delete`` that follows our delete of a file message."""
_ROSTER_EVENTS = (cev.MemberValidated, cev.MemberUnverified)
TYPING_REFRESH_MS = 3000
"""While typing goes on, "typing" is signalled again at most this often (receivers show
it for 6 s after each signal, docs/crypto.md section 8.3)."""
EPHEMERAL_FRESH_MS = 30_000
"""Typing and receipts dated further than this from our clock are stale: ignored."""
LOG_FETCH_ID = "g"
"""Request id prefix (+ room id hex) of the engine's own membership-log fetches."""
LOG_JOIN_ID = "j"
"""Request id prefix (+ room id hex) of a ``join`` entry the engine signs on its own."""
UNLISTED_ID = "u"
"""Request id prefix (+ room id hex) of the ``members`` request whose answer settles a
room that ``welcome`` did not list: deleted, if a notice came before it, else lost."""
LOG_REFETCH_MS = 30_000
"""While a member's message names a longer log than the relay served, it is fetched
again this often (and at each such message once the last fetch was answered)."""
ROOM_KEY_WAIT_MS = 5000
"""A rotated room secret that has not come this long after its log entry is asked for
(the author sends it just after the entry), then again as often while it is missing."""
SignLog = Callable[[CryptoSession, bytes, int], LogStatement]
"""Signs one membership-log statement: (session, room id, now) to the statement."""


def body_size(payload_size: int) -> int:
    """The size of the room body that carries a payload of ``payload_size`` bytes:
    header, payload padded to whole blocks (at least one padding byte), tag, signature."""
    padded = (payload_size // PAD_BLOCK + 1) * PAD_BLOCK
    return HEADER_SIZE + padded + TAG_SIZE + SIGNATURE_SIZE


def _crypto_member(member: RosterEntry) -> AnnouncedMember:
    prekey = member.prekey
    return AnnouncedMember(member.key, member.name, CryptoPrekey(prekey.id, prekey.key, prekey.sig))


def _hex_or_empty(text: str) -> bytes:
    """The bytes of a hex string, or b"" if it is not one (an untrusted echoed id)."""
    try:
        return bytes.fromhex(text)
    except ValueError:
        return b""


class Engine:
    """The client's state machine. Not thread-safe: drive it from one thread."""

    def __init__(
        self,
        identity: Identity,
        name: str | None,
        store: Store,
        session: CryptoSession,
        clock: Callable[[], int],
        proof_wait: int = PROOF_WAIT_MS,
        registration_token: str | None = None,
    ) -> None:
        self.identity = identity
        self.registration_token = registration_token
        """A registration token for a relay that admits new keys by invite only."""
        self.me = identity.public_key
        self.store = store
        self.session = session
        self.clock = clock
        self.proof_wait = proof_wait
        self.max_body = MAX_BODY
        """The relay's body limit, from its challenge (the protocol default until then)."""
        self.rooms: dict[bytes, RoomState] = {}
        self._unlisted: dict[bytes, RoomState] = {}
        """Rooms held here that this connection's ``welcome`` did not list, until the
        relay answers their ``UNLISTED_ID`` request (``welcome``)."""
        self.connected = False
        self.outbox = Outbox(store, session, self._shares_room)
        remembered = store.own_name()
        if name is None and remembered is None:
            raise E2EChatError("No display name yet: pass name= the first time this key connects.")
        self.view = Projection(self.me, name or remembered or "", session, self.rooms)
        if name is not None and name != remembered:
            store.set_own_name(name)
        self.chat = Conversation(self.me, store, self.view)
        self.send_typing = True
        """Signal our typing (``Client(typing=False)`` turns both directions off)."""
        self.show_typing = True
        self.read_receipts = False
        """Tell members how far we read (off unless the user turns it on)."""
        self._mailbox_seen = 0
        self._mailbox_acked = 0
        self._delivered: OrderedDict[bytes, None] = OrderedDict()
        """Room id + sender + body digest of recently delivered messages, oldest first."""
        self._early: list[RelayMessage] = []
        self._early_directs: list[cev.DirectForUnknownRoom | cev.DirectAheadOfLog] = []
        self._looked_up: dict[bytes, CryptoPrekey] = {}
        """Checked prekeys of keys no shared room lists (``looked_up``)."""
        for record in store.rooms():
            self._add_room(record)

    @property
    def name(self) -> str:
        """Our display name (sent in the next ``hello``)."""
        return self.view.name

    @name.setter
    def name(self, name: str) -> None:
        """Our name from now on, remembered for the next connect."""
        self.view.name = name
        self.store.set_own_name(name)
        self.view.refresh_key(self.me)

    def set_name(self, name: str) -> SetName:
        """The ``set_name`` request that renames us, with our signed name statement."""
        return SetName(name=name, name_statement=sign_name(self.identity, name, self.clock()))

    def set_petname(self, key: bytes, petname: str | None) -> None:
        """The user's own name for ``key`` (None removes it), shown instead of its name."""
        self.session.contacts.set_petname(key, petname)
        self.view.refresh_all()  # look-alike flags compare against petnamed contacts

    # Rooms and members -------------------------------------------------------------

    def _add_room(self, record: RoomRecord) -> RoomState:
        """A room's state, with what is stored of it: the validated log among it, so that
        roles and members are known from the start, and a fetch goes on from its end."""
        state = RoomState(record, RoomSync(record.id, record.last_seq))
        state.read = self.store.read_state(record.id)
        state.log = self.session.log_state(record.id)
        self.rooms[record.id] = state
        return state

    def member(self, key: bytes, room_id: bytes | None) -> Member:
        """The public view of a member (see ``Projection.member``)."""
        return self.view.member(key, room_id)

    def set_verified(self, key: bytes, verified: bool) -> None:
        """The user verified ``key`` (or withdrew it): record it, show it in every roster
        (every one: names elsewhere are now compared with a verified contact's)."""
        if verified:
            self.session.contacts.mark_verified(key)
        else:
            self.session.contacts.unverify(key)
        self.view.refresh_all()

    def enter_room(
        self,
        info: RoomInfo,
        access: Access,
        secret: RoomSecret | None,
        peer: bytes | None = None,
        *,
        invited: bool = False,
        log: Sequence[bytes] = (),
        whole_log: bool = True,
    ) -> Output:
        """We created or joined a room (the relay's ``room`` reply); ``peer`` makes it
        our direct conversation with that key (crypto.md section 14): one we created
        (its invitation to ``peer`` is queued in the same transaction as the room, so a
        crash cannot leave a conversation nobody was invited to) or, ``invited``, one
        ``peer`` invited us to (``DirectStarted``). ``log`` is the room's membership log
        as fetched right after joining (empty for a new room), or only its first page
        unless ``whole_log``: the client applies the rest page by page, then calls
        ``log_fetched``.

        A secret room with a log does not get our ``join`` proofs as directs: its members
        refuse them until our ``join`` entry is in the log, whose tag proves us to all of
        them at once (``needs_join``, then the client appends it). Before the whole log is
        here the proofs are held (``log_fetched`` sends them if the log lists us)."""
        existing = self.rooms.get(info.id)
        if existing is not None and secret is None:
            # Joined again without the password or invite: the room stays what the
            # user made it (only what the user supplies decides that, never the relay).
            access = existing.record.access
            secret = self._secret_of(existing.record)
        if existing is not None and peer is None:
            peer = existing.record.peer
        record = RoomRecord(
            info.id,
            info.name,
            access,
            info.description,
            None if secret is None else secret.secret,
            # the invitee of a direct conversation reads it from its first message
            0 if invited and existing is None else info.seq,
            peer,
        )
        out = Output()
        with self.store.transaction():
            self.session.invite_done(info.id, self.clock())
            self.store.save_room(record)
            if existing is not None:
                existing.record = record
            state = existing or self._add_room(record)
            if self.connected and invited and existing is None:
                out.frames.append(state.sync.connect(False))  # its backlog is ours too
            elif self.connected:
                state.sync.joined()
            if existing is None and secret is not None:
                online = {m.key for m in info.members if m.status != "offline"}
                state.awaiting = online - {self.me}
                state.hold_until = self.clock() + self.proof_wait
            # a first entry proves us once the log is read: at the epoch it brings us to
            self._reconcile(state, info.members, out, proofs=existing is not None or not log)
            if log:
                self._apply_log(state, log, out, 0)
            if existing is None and log:
                state.proofs_held = not whole_log
                if whole_log:
                    out.extend(self._prove_ourselves(state))
            if existing is None and peer is not None and not invited:
                out.extend(self.invite(info.id, peer))
        if existing is None:
            out.events.append(ev.RoomJoined(info.id))
            if peer is not None and invited:
                out.events.append(ev.DirectStarted(info.id, self.member(peer, info.id)))
        with self.store.transaction():
            self._replay_held_directs(info.id, out)
        early = [f for f in self._early if f.room == info.id and f.seq > info.seq]
        self._early = [f for f in self._early if f.room != info.id]
        with self.store.transaction():
            for frame in early:
                self._room_message(frame, out)
            self.store.set_last_seq(info.id, state.sync.floor)
        return out

    def _secret_of(self, record: RoomRecord) -> RoomSecret | None:
        return None if record.secret is None else RoomSecret(record.secret)

    def looked_up(self, peer: bytes, prekey: SignedPrekey) -> None:
        """``peer``'s signed prekey as the relay answered a ``prekey_lookup``: kept (in
        memory) for inviting a key no shared room lists. Raises ``PrekeyError`` unless
        ``peer`` signed it and it is usable: the relay cannot substitute one."""
        checked = CryptoPrekey(prekey.id, prekey.key, prekey.sig)
        checked.verify(peer)
        self._looked_up[peer] = checked

    def invite(self, room_id: bytes, peer: bytes) -> Output:
        """Invite ``peer`` to our direct conversation ``room_id``: the invitation is kept
        in the outbox until the relay confirms it (the mailbox holds it while ``peer`` is
        away). Raises ``LookupError`` when neither a room we share lists ``peer``'s
        prekey nor a lookup found it (``looked_up``)."""
        state = self.rooms[room_id]
        listed = next((s.members[peer] for s in self.rooms.values() if peer in s.members), None)
        prekey = (
            CryptoPrekey(listed.prekey.id, listed.prekey.key, listed.prekey.sig)
            if listed is not None
            else self._looked_up.get(peer)
        )
        if prekey is None or state.record.secret is None:
            raise LookupError("no room we share lists that key's signed prekey")
        direct = self.session.invite_direct(
            peer,
            prekey,
            room_id,
            state.record.name,
            state.record.secret,
            self.clock(),
        )
        out = Output()
        with self.store.transaction():
            out.frames += self.outbox.queue_directs([direct], self.connected)
        return out

    def pending_invites(self) -> list[cev.DirectInvited]:
        """Invitations kept for rooms not entered yet (joined after each ``welcome``)."""
        return self.session.pending_invites()

    def refuse_invite(self, room_id: bytes) -> None:
        """An invitation that cannot be followed (its room is gone or not that room)."""
        with self.store.transaction():
            self.session.invite_done(room_id, self.clock())

    def _outsiders(
        self, state: RoomState, members: list[RosterEntry], out: Output
    ) -> list[RosterEntry]:
        """The relay's members, less any it lists in a direct conversation besides its
        two keys: they are ignored (no key is shared with them) and reported."""
        peer = state.record.peer
        if peer is None:
            return members
        kept = []
        for member in members:
            if member.key in (self.me, peer):
                kept.append(member)
            else:
                out.events.append(
                    ev.Notice(
                        f"The relay listed {member.name!r} ({member.key.hex()[:16]}) in a direct"
                        " conversation of two: ignored, nothing is shared with it."
                    )
                )
        return kept

    def _reconcile(
        self, state: RoomState, members: list[RosterEntry], out: Output, *, proofs: bool = True
    ) -> None:
        """Take the relay's full member list (join, reconnect, ``members``); without
        ``proofs`` the ``join`` directs of a first entry wait for the log (see
        ``enter_room``)."""
        members = self._outsiders(state, members, out)
        before = set(state.members)
        listed = {member.key for member in members}
        gone = [self.member(key, state.id) for key in before - listed - {self.me}]
        state.members = {member.key: member for member in members}
        state.awaiting &= listed
        outcome = self.session.enter_room(
            state.id,
            [_crypto_member(m) for m in members],
            self.clock(),
            secret=self._secret_of(state.record),
            peer=state.record.peer,
            proofs=proofs,
        )
        self._apply(outcome, out)
        self._signed_names(members)
        self.view.refresh(state)
        if before:
            for key in listed - before - {self.me}:
                out.events.append(ev.MemberJoined(state.id, self.member(key, state.id)))
        out.events += [ev.MemberLeft(state.id, member) for member in gone]

    def reconcile(self, room_id: bytes, members: list[RosterEntry]) -> Output:
        """A fresh member list from the relay (a ``members`` reply, the shell's or ours).
        If it is the roster a partial room waited for, the room resumes (see ``welcome``)."""
        out = Output()
        state = self.rooms.get(room_id)
        if state is not None:
            with self.store.transaction():
                self._reconcile(state, members, out)
            self._resume(state, out, refused=False)
        return out

    def _resume(self, state: RoomState, out: Output, *, refused: bool) -> None:
        """A partial room's roster came (or cannot): sync it and send what waited."""
        sync = state.sync.roster_came(refused)
        if sync is not None:
            out.frames.append(sync)
            out.extend(self.flush_outbox())

    def left(self, room_id: bytes, *, lost: bool = False, deleted: str | None = None) -> Output:
        """We left a room (or, ``lost``, the relay no longer lists us; or the relay's
        operator ``deleted`` it, with this reason): forget it."""
        out = Output()
        state = self.rooms.pop(room_id, None)
        if state is None:
            state = self._unlisted.pop(room_id, None)
        if state is not None:
            state.joined = False
            if deleted is not None:
                gone = "the relay says its operator deleted the room"
            else:
                gone = "the relay no longer lists us in the room" if lost else "we left the room"
            out.events += self.outbox.abandon(room_id, gone)
            self.session.leave_room(room_id)
            self.store.delete_room(room_id)
            self.chat.forget_room(room_id)
            if deleted is not None:
                out.events.append(ev.RoomDeleted(room_id, deleted))
            else:
                out.events.append(ev.RoomLost(room_id) if lost else ev.RoomLeft(room_id))
        return out

    # Connection --------------------------------------------------------------------

    def hello(self, challenge: Challenge) -> Hello:
        """Our signed ``hello`` for this challenge (whose limits we follow: its body size,
        and its history, which the crypto core's windows and caps must cover)."""
        limits = challenge.limits
        self.max_body = limits.max_body
        self.outbox.batch_limits = (
            None
            if limits.max_directs is None
            else BatchLimits(limits.max_directs, limits.max_frame)
        )
        self.session.cover_relay_retention(limits.history, limits.history_age * 1000)
        prekey = self.session.current_prekey(self.clock())
        signed = SignedPrekey(id=prekey.id, key=prekey.key, sig=prekey.sig)
        transcript = hello_transcript(
            challenge.relay, challenge.nonce, self.me, self.name, prekey.id, prekey.key, prekey.sig
        )
        return Hello(
            key=self.me,
            name=self.name,
            prekey=signed,
            sig=self.identity.sign(transcript),
            name_statement=sign_name(self.identity, self.name, self.clock()),
            registration_token=self.registration_token,
        )

    def welcome(self, welcome: Welcome) -> Output:
        """Authenticated: reconcile rooms, resume each with ``sync``, flush the outbox."""
        self.connected = True
        self._mailbox_seen = self._mailbox_acked = 0
        out = Output()
        if welcome.ts is not None and abs(self.clock() - welcome.ts) > MAX_SKEW_MS:
            skewed = ev.ClockSkewed(self.clock() - welcome.ts)
            log.warning("%s", skewed.text)
            out.events.append(skewed)
        own = self.view.welcome()
        if own is not None:
            out.frames.append(SetStatus(status=cast(Status, own[0]), text=own[1]))
        listed = {info.id: info for info in welcome.rooms}
        for room_id in [r for r in self.rooms if r not in listed]:
            # Lost, or deleted by the operator while we were away: the relay's notices of
            # deletions come before its answer to this request (protocol.md section 5).
            self._unlisted[room_id] = self.rooms.pop(room_id)
            out.frames.append(MembersRequest(room=room_id, id=f"{UNLISTED_ID}{room_id.hex()}"))
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
                if not info.partial:
                    self._reconcile(state, info.members, out)
                # A partial room's members were left out (protocol.md section 4): an
                # empty list is not "everyone left", so no reconcile until the
                # ``members`` reply. The sync waits for it too, and so do live
                # messages, member events and sends for the room (``RoomSync``,
                # ``holds``): messages would decrypt without the roster (shares carry
                # the chains), but senders and mentions could not be named, members
                # who joined while we were away would miss our chain, and the roster's
                # diff would replay those events. (Secret-room proofs come as directs,
                # checked against the room secret, so they need not wait.) One round
                # trip later the room resumes in ``reconcile`` as a full room does here.
                out.frames.append(state.sync.connect(info.partial, info.seq))
                self._report_catch_up(state, out)
                state.log_rejoin = True
                state.rejoin, state.rejoin_at = None, None  # a new connection starts over
                out.frames.append(self._log_request(state))
        out.extend(self.flush_outbox())
        return out

    def disconnected(self) -> None:
        """The connection is gone: sends queue up until the next ``welcome``."""
        self.connected = self.view.connected = False
        self.rooms.update(self._unlisted)  # not settled: the next welcome decides again
        self._unlisted.clear()
        self._early.clear()
        self.outbox.disconnected()
        for state in self.rooms.values():
            state.sync.disconnect()

    def tick(self) -> Output:
        """Periodic work: crypto housekeeping, mailbox acknowledgement."""
        out = Output()
        now = self.clock()
        with self.store.transaction():
            self._apply(self.session.tick(now), out)
            for state in self.rooms.values():
                if state.sync.tick(now):
                    self.store.set_last_seq(state.id, state.sync.floor)
                self._ask_room_key(state, now, out)
                if state.log_behind and now - state.log_fetch[1] >= LOG_REFETCH_MS:
                    out.frames.append(self._log_request(state))
                if self.connected and state.rejoin_at is not None and now >= state.rejoin_at:
                    state.rejoin_at = None
                    state.log_rejoin = True
                    out.frames.append(self._log_request(state))
        if self.connected and self._mailbox_seen > self._mailbox_acked:
            out.frames.append(Ack(mailbox=self._mailbox_seen))
            self._mailbox_acked = self._mailbox_seen
        return out

    # Sending -----------------------------------------------------------------------

    def queue(
        self,
        room_id: bytes,
        text: str,
        reply_to: bytes | None = None,
        mentions: tuple[bytes, ...] = (),
    ) -> tuple[int, Message[bytes], Output]:
        """Put a message in the outbox (a reply to the stored message ``reply_to``, which
        it mentions the sender of); send it now if connected.

        ``mentions`` are keys mentioned explicitly, before those ``@name`` resolves to
        (by the names members go by and their petnames). Raises ``E2EChatError`` (and
        queues nothing) for an empty or too long message, a reply to a message that is
        not here, or an ambiguous ``@name``.
        """
        state = self._room_state(room_id)
        if not text:
            raise E2EChatError("An empty message is not sent.")
        mentions = tuple(dict.fromkeys(mentions + _mentioned(state, text)))
        quote = None
        if reply_to is not None:
            quote = self.chat.quote(room_id, reply_to)
            if not quote.available or quote.deleted or quote.sender is None:
                raise NotInHistory("That message is not here to reply to.")
            if quote.sender.key != self.me and quote.sender.key not in mentions:
                mentions = (*mentions, quote.sender.key)
        now = self.clock()
        payload = Text(text, mentions, now, reply_to)
        item_id, out = self._enqueue(state, payload)
        state.typing_sent = (False, 0)  # receivers stop showing us typing at the message
        return item_id, self._provisional(room_id, item_id, payload, quote), out

    def relate(self, room_id: bytes, relation: Relation) -> tuple[int, Output]:
        """Queue an edit, delete or reaction of a stored message; raises ``E2EChatError``
        (and queues nothing) for what receivers would refuse: editing or deleting someone
        else's message, a message that is not here, an emoji that is not one."""
        state = self._room_state(room_id)
        if isinstance(relation, Edit):  # an edit mentions whom its new text names
            relation = msgspec.structs.replace(relation, mentions=_mentioned(state, relation.body))
        try:
            self.chat.check_relation(room_id, relation)
        except RelationError as exc:
            reason = str(exc)
            if "not here" in reason:
                raise NotInHistory(f"That cannot be done: {reason}.") from None
            raise NotAllowed(f"That cannot be done: {reason}.") from None
        return self._enqueue(state, relation)

    def _room_state(self, room_id: bytes) -> RoomState:
        state = self.rooms.get(room_id)
        if state is None:
            raise NotAMember("You are not a member of that room.")
        return state

    def queue_file(self, room_id: bytes, payload: File) -> tuple[int, Message[bytes], Output]:
        """Put the message of an uploaded file in the outbox; send it now if connected."""
        item_id, out = self._enqueue(self._room_state(room_id), payload)
        return item_id, self._provisional(room_id, item_id, payload), out

    def _provisional(
        self, room_id: bytes, item_id: int, payload: Text | File, quote: Quote | None = None
    ) -> Message[bytes]:
        """Our queued message as ``send`` returns it: seq 0, with its ``send_id``."""
        message = self.view.message(room_id, self.me, 0, payload.ts, payload)
        return dataclasses.replace(message, reply_to=quote, send_id=item_id)

    def _enqueue(self, state: RoomState, payload: RoomPayload) -> tuple[int, Output]:
        encoded = encode_payload(payload)
        if body_size(len(encoded)) > self.max_body:
            raise E2EChatError(
                f"The message is too long: {len(encoded)} bytes of payload; the relay"
                f" takes encrypted bodies of at most {self.max_body} bytes."
            )
        with self.store.transaction():
            item_id = self.outbox.enqueue(state.id, encoded)
            out = self.flush_outbox() if self.connected else Output()
        return item_id, out

    def _shares_room(self, key: bytes) -> bool:
        """Whether ``key`` is, as the relay tells, in a room we are in (a batch may go
        only to such keys)."""
        return any(key in state.members for state in self.rooms.values() if state.joined)

    def flush_outbox(self) -> Output:
        """Send every queued direct and message not already on its way, oldest first
        (nothing while disconnected: what is sent then would count as on its way)."""
        if not self.connected:
            return Output()
        frames, failures = self.outbox.flush(self.rooms, self.clock(), self._unlisted)
        return Output(frames=frames, events=failures)

    def rebatch_directs(self, frames: list[ClientFrame]) -> list[ClientFrame]:
        """Directs frames that wait in a row for the link's pacer, as fewer frames (see
        ``Outbox.rebatch``)."""
        return self.outbox.rebatch(frames)

    def _confirm(self, frame: Sent, item_id: int, out: Output) -> None:
        state = self.rooms.get(frame.room) if frame.room is not None else None
        with self.store.transaction():
            item = self.outbox.confirm(item_id, frame.room)
            if item is None or state is None or item.body is None:
                return
            header = parse_body(item.body).header
            msg_id = message_id(self.me, header.chain_id, header.index)
            payload = decode_sent(item.payload)
            stored = HistoryItem(state.id, frame.seq, self.me, frame.ts, item.payload, msg_id)
            if isinstance(payload, Text | File):
                message = self.chat.store_message(state, stored, payload)
            else:
                self.store.add_history(dataclasses.replace(stored, shown=False))
                message = None
                if not isinstance(payload, Typing | Read | Successor):
                    events, erased = self.chat.relate(state, payload, self.me, msg_id)
                    out.events += events
                    if erased is not None:  # our own message: the relay may drop its copy
                        out.frames.append(Retract(room=state.id, seq=erased.seq))
                        blob = announced_blob(erased)
                        if blob is not None:  # and the file it announced, which we uploaded
                            out.frames.append(BlobDelete(blob=blob, id=BLOB_DELETE_ID))
            state.sync.seqs.add(frame.seq)
            self.store.set_last_seq(state.id, state.sync.floor)
        if message is not None:
            message = dataclasses.replace(message, send_id=item_id, live=True)  # our own
            out.confirmed.append((item_id, message))
            out.events.append(ev.MessageSent(state.id, message))
        else:
            out.related.append(item_id)

    # Receiving ---------------------------------------------------------------------

    def receive_all(self, frames: list[RelayFrame]) -> Output:
        """Handle frames that answer no request of the shell, in order, in one store
        transaction: a catch-up of thousands of messages commits once per batch, and
        each room's floor and each chain's state is written once per batch.

        Remote bad input becomes events (the crypto core reports rather than raises);
        should a check still raise, that frame is dropped with a notice, never the link.
        A frame whose handling fails otherwise (a bug) is logged and dropped, its
        history writes undone; the frames around it go on.
        """
        out = Output()
        with self.store.transaction(), self.session.deferred_writes():
            for frame in frames:
                try:
                    with self.store.savepoint():
                        out.extend(self._receive(frame))
                except CryptoError as exc:
                    out.events.append(ev.Notice(f"A frame from the relay was rejected: {exc}."))
                except Exception:
                    log.exception(
                        "internal error handling a %s frame; it was dropped", type(frame).__name__
                    )
            for room_id in {f.room for f in frames if isinstance(f, RelayMessage)}:
                state = self.rooms.get(room_id)
                if state is not None:
                    self.store.set_last_seq(room_id, state.sync.floor)
        return out

    def receive(self, frame: RelayFrame) -> Output:
        """Handle one frame (see ``receive_all``)."""
        return self.receive_all([frame])

    def _receive(self, frame: RelayFrame) -> Output:
        out = Output()
        if isinstance(frame, RelayMessage):
            self._room_message(frame, out)
        elif isinstance(frame, Signal):
            self._signal(frame, out)
        elif isinstance(frame, DirectDelivery):
            self._direct(frame, out)
            if self.connected:
                out.extend(self.flush_outbox())
        elif isinstance(frame, Sent) and (item_id := outbox_id(frame.id)) is not None:
            self._confirm(frame, item_id, out)
        elif isinstance(frame, Sent) and (item_id := outbox_id(frame.id, DIRECT_ID)) is not None:
            with self.store.transaction():
                self.outbox.direct_confirmed(item_id)
        elif isinstance(frame, DirectsSent) and (batch := outbox_id(frame.id, BATCH_ID)):
            with self.store.transaction():
                self.outbox.batch_confirmed(batch)
        elif isinstance(frame, Synced):
            self._synced(frame, out)
        elif isinstance(frame, LogEntries):
            self._log_entries(frame, out)
        elif isinstance(frame, MembersList) and frame.id == f"{UNLISTED_ID}{frame.room.hex()}":
            out.extend(self._unlisted_answered(frame.room))
        elif isinstance(frame, MembersList) and frame.id == f"{MEMBERS_ID}{frame.room.hex()}":
            out.extend(self.reconcile(frame.room, frame.members))
        elif isinstance(frame, Error):
            self._error(frame, out)
        elif isinstance(frame, MemberJoined):
            self._member_joined(frame, out)
        elif isinstance(frame, MemberLeft):
            self._member_left(frame, out)
        elif isinstance(frame, RoomDeleted | RoomDeletion):
            out.extend(self.left(frame.room, deleted=frame.reason))
        elif isinstance(frame, Renamed):
            self._renamed(frame, out)
        elif isinstance(frame, Presence):
            member, changed = self.view.presence(frame)
            if member is not None:
                if changed:
                    out.events.append(ev.PresenceChanged(member))
                if frame.status == "online":  # it can answer the key requests it missed
                    self._apply(self.session.member_online(frame.key, self.clock()), out)
        return out

    def _room_message(self, frame: RelayMessage, out: Output) -> None:
        """One room message, inside the caller's transaction (``receive_all``,
        ``enter_room``), which then stores the room's floor once for all of them."""
        state = self.rooms.get(frame.room)
        if state is None:
            # The relay's `room` reply came first, but entering the room is the next
            # step: keep the message for it (a sync after a reconnect covers the rest).
            if len(self._early) < EARLY_MESSAGES:
                self._early.append(frame)
            return
        if not state.sync.message(frame.seq, frame):
            return  # a duplicate, held by a sync, or a room waiting for its roster
        self._process_messages(state, [frame], out, store_floor=False)

    def _process_messages(
        self, state: RoomState, frames: list[RelayMessage], out: Output, *, store_floor: bool = True
    ) -> None:
        """Decrypt, store and publish room messages (already marked processed), in one
        transaction; then store the room's floor, unless the caller does (``receive_all``
        once per batch)."""
        with self.store.transaction():
            seqs = [frame.seq for frame in frames]
            stored = self.store.stored_seqs(state.id, min(seqs), max(seqs)) if seqs else set()
            for frame in frames:
                if frame.sender != self.me and frame.seq not in stored:
                    outcome = self.session.receive(
                        state.id, frame.sender, frame.body, self.clock(), frame.seq
                    )
                    self._apply(outcome, out, frame.ts)
            if store_floor:
                self.store.set_last_seq(state.id, state.sync.floor)

    def _signal(self, frame: Signal, out: Output) -> None:
        """An ephemeral body (typing, a receipt): decrypted like any room body (signed,
        replay-checked), never stored; it carries no seq."""
        state = self.rooms.get(frame.room)
        if state is None or frame.sender == self.me or state.sync.awaiting_roster:
            return
        with self.store.transaction():
            outcome = self.session.receive(frame.room, frame.sender, frame.body, self.clock(), 0)
            self._apply(outcome, out)

    def _synced(self, frame: Synced, out: Output) -> None:
        """The end of a sync reply (see ``RoomSync.synced``)."""
        state = self.rooms.get(frame.room)
        if state is None:
            return
        more, released = state.sync.synced(frame.seq, self.clock())
        self._process_messages(state, released, out)
        if more is not None:
            out.frames.append(more)
        self._report_catch_up(state, out)

    def _report_catch_up(self, state: RoomState, out: Output) -> None:
        """Where the room's catch-up stands, for the application (``CatchingUp``)."""
        progress = state.sync.report()
        if progress is not None:
            out.events.append(ev.CatchingUp(state.id, *progress))

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
        batch = outbox_id(rid, BATCH_ID)
        if batch is not None and self.outbox.batch_refused(batch):
            out.extend(self.flush_outbox())  # its directs again at once, each alone
            return
        item_id = outbox_id(rid)
        direct_id = outbox_id(rid, DIRECT_ID)
        if item_id is not None or direct_id is not None:
            with self.store.transaction():
                dropped = (
                    self.outbox.refused(item_id, frame)
                    if item_id is not None
                    else self.outbox.direct_refused(cast(int, direct_id), frame)
                )
            if dropped is not None:
                out.events.append(dropped)
            return
        rejoining = rid.startswith(LOG_JOIN_ID) and frame.code == ErrorCode.LOG_CONFLICT
        if rejoining and (state := self.rooms.get(_hex_or_empty(rid[len(LOG_JOIN_ID) :]))):
            # another entry came first (or so the relay says): after a full-jitter wait
            # that the tick runs out, fetch it and sign again (``_log_entries``)
            if state.rejoin is not None:
                state.rejoin_at = self.clock() + round(state.rejoin.next_delay() * 1000)
            return
        if rid == BLOB_DELETE_ID:
            return  # the file of a deleted message is gone already (expired, its room deleted)
        if rid.startswith(UNLISTED_ID):
            out.extend(self._unlisted_answered(_hex_or_empty(rid[len(UNLISTED_ID) :])))
            return  # no_such_room (or not_member): what made the room unlisted
        if rid.startswith(SYNC_ID):
            state = self.rooms.get(_hex_or_empty(rid[len(SYNC_ID) :]))
            if state is not None:
                self._process_messages(state, state.sync.sync_refused(), out)
                self._report_catch_up(state, out)
        if rid.startswith(MEMBERS_ID):
            state = self.rooms.get(_hex_or_empty(rid[len(MEMBERS_ID) :]))
            if state is not None:
                self._resume(state, out, refused=True)  # no roster: don't hold the room up
        if rid.startswith(LOG_FETCH_ID):
            state = self.rooms.get(_hex_or_empty(rid[len(LOG_FETCH_ID) :]))
            if state is not None:  # refused: no fetch is on its way any more
                state.log_fetch = (False, state.log_fetch[1])
        out.events.append(ev.Notice(f"The relay reports: {frame.message}"))

    def _unlisted_answered(self, room_id: bytes) -> Output:
        """The relay answered after every deletion notice: a room ``welcome`` did not list
        and no notice deleted is lost."""
        return self.left(room_id, lost=True) if room_id in self._unlisted else Output()

    def _renamed(self, frame: Renamed, out: Output) -> None:
        """A key renamed itself: only its signed statement changes the name we show."""
        key = frame.key
        rooms = [state for state in self.rooms.values() if key in state.members]
        previous = self.member(key, rooms[0].id if rooms else None).name
        if key == self.me:
            if frame.name_statement is not None and frame.name != self.name:
                self.name = frame.name  # we renamed ourselves from another place
            return
        if frame.name_statement is None:
            return  # a relay's unsigned claim renames no one we already know
        for state in rooms:
            state.members[key] = msgspec.structs.replace(
                state.members[key], name=frame.name, name_statement=frame.name_statement
            )
        changed = self.session.contacts.apply_name(key, frame.name_statement)
        if isinstance(changed, cev.StatementRejected):
            log.warning("a rename was rejected: %s", changed.reason)
            return
        # a key the user relies on (verified, or given a petname) is a reference in every
        # room's look-alike flags, also where it is not a member
        relied_on = key in self.session.contacts.relied_on()
        for state in self.rooms.values() if relied_on else rooms:
            self.view.refresh(state)
        member = self.member(key, rooms[0].id if rooms else None)
        if member.name != previous:
            out.events.append(ev.MemberRenamed(member, previous))

    def _signed_names(self, members: list[RosterEntry]) -> None:
        """Adopt the signed names the relay lists with members (newer ones only)."""
        for member in members:
            if member.name_statement is not None and member.key != self.me:
                rejected = self.session.contacts.apply_name(member.key, member.name_statement)
                if isinstance(rejected, cev.StatementRejected):
                    log.warning("a listed name was rejected: %s", rejected.reason)

    def _member_joined(self, frame: MemberJoined, out: Output) -> None:
        state = self.rooms.get(frame.room)
        if state is None or state.sync.awaiting_roster:
            return  # the roster on its way already lists it
        if not self._outsiders(state, [frame.member], out):
            return
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
            self._signed_names([frame.member])
        self.view.member_added(state, key)
        if key != self.me:
            out.events.append(ev.MemberJoined(state.id, self.member(key, frame.room)))

    def _member_left(self, frame: MemberLeft, out: Output) -> None:
        state = self.rooms.get(frame.room)
        if state is None:
            return
        if frame.key == self.me:
            out.extend(self.left(frame.room))
            return
        if state.sync.awaiting_roster:
            return  # the roster on its way already leaves it out
        member = self.member(frame.key, frame.room)
        state.members.pop(frame.key, None)
        state.awaiting.discard(frame.key)
        with self.store.transaction():
            self._apply(self.session.member_left(frame.room, frame.key, self.clock()), out)
        self.view.member_removed(state, frame.key)
        out.events.append(ev.MemberLeft(state.id, member))

    # Crypto outcomes -----------------------------------------------------------------

    def _apply(self, outcome: cev.Outcome, out: Output, ts: int | None = None) -> None:
        """Turn a crypto outcome into frames, stored messages and public events."""
        out.frames += self.outbox.queue_directs(outcome.directs, self.connected)
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
            self._delivered_message(state, decrypted, sent, out)
        for event in outcome.events:
            if isinstance(event, _ROSTER_EVENTS) and event.room_id in self.rooms:
                # validation shows in that member's entry in that room only
                self.view.refresh_member(self.rooms[event.room_id], event.member)
        for event in outcome.events:
            self._event(event, out)

    def _delivered_message(
        self, state: RoomState, decrypted: cev.Decrypted, sent: int, out: Output
    ) -> None:
        """Store and publish one decrypted message, by kind (and the room's read state,
        if it moved)."""
        before = state.read
        self._store_delivered(state, decrypted, sent, out)
        if state.read != before:
            out.read[state.id] = state.read

    def _store_delivered(
        self, state: RoomState, decrypted: cev.Decrypted, sent: int, out: Output
    ) -> None:
        payload = decrypted.payload
        if decrypted.seq == 0:  # the ephemeral path: nothing is stored
            self._ephemeral(state, decrypted, out)
            return
        if isinstance(payload, Text | Unsupported | File):
            encoded = (
                _unsupported(payload)
                if isinstance(payload, Unsupported)
                else encode_payload(payload)
            )
            item = HistoryItem(
                state.id, decrypted.seq, decrypted.sender, sent, encoded, decrypted.message_id
            )
            message = self.chat.store_message(state, item, payload)
            if message is not None:
                self._remember_delivered(decrypted)
                out.messages.append(message)
            return
        item = HistoryItem(
            state.id, decrypted.seq, decrypted.sender, sent, b"", decrypted.message_id, shown=False
        )
        if not self.store.add_history(item):
            return  # that room seq was processed before
        self._remember_delivered(decrypted)
        if isinstance(payload, Successor):
            self._successor(state, decrypted.sender, payload.statement, out)
        elif not isinstance(payload, Typing | Read):  # those belong on the ephemeral path
            events, _ = self.chat.relate(state, payload, decrypted.sender, decrypted.message_id)
            out.events += events

    def _successor(self, state: RoomState, sender: bytes, statement: bytes, out: Output) -> None:
        """``sender`` names its new key: only its own statement counts (both keys signed
        it), and verification moves only through it (docs/crypto.md section 9.6)."""
        if statement[1 : 1 + len(sender)] != sender:
            log.warning("a successor statement of another key was refused")
            return
        result = self.session.contacts.accept_successor(statement)
        if isinstance(result, cev.StatementRejected):
            log.warning("a successor statement was rejected: %s", result.reason)
            return
        self.view.refresh_all()
        member = self.member(sender, state.id)
        out.events.append(ev.SuccessorAnnounced(state.id, member, result.new, result.carried))

    def name_successor(self, new: bytes) -> None:
        """Remember that we name ``new`` our successor (``CryptoError``: we named another)."""
        self.session.contacts.name_successor(self.me, self.name, new)

    def announce_successor(self, room_id: bytes, statement: bytes) -> tuple[int, Output]:
        """Queue our successor statement for ``room_id``'s members."""
        return self._enqueue(self._room_state(room_id), Successor(statement, self.clock()))

    def _ephemeral(self, state: RoomState, decrypted: cev.Decrypted, out: Output) -> None:
        payload = decrypted.payload
        if abs(self.clock() - payload.ts) > EPHEMERAL_FRESH_MS:
            return
        member = self.member(decrypted.sender, state.id)
        if isinstance(payload, Typing) and self.show_typing:
            out.events.append(ev.TypingChanged(state.id, member, payload.typing))
        elif isinstance(payload, Read):
            out.events.append(ev.ReadReceipt(state.id, member, payload.target))

    def _event(self, event: cev.Event, out: Output) -> None:
        """Publish one crypto event as a public event, if users need to see it."""
        if isinstance(event, cev.MemberValidated):
            state = self.rooms.get(event.room_id)
            if state is not None:
                state.awaiting.discard(event.member)
                member = self.member(event.member, event.room_id)
                out.events.append(ev.MemberValidated(state.id, member))
        elif isinstance(event, cev.ReplayRejected) and self._resent_copy(event):
            log.debug("dropped a resent copy of a delivered message (seq %d)", event.seq)
        elif isinstance(event, (cev.Undecryptable, cev.MessageRejected, cev.ReplayRejected)):
            if event.room_id in self.rooms:
                reason = (
                    "replayed message rejected"
                    if isinstance(event, cev.ReplayRejected)
                    else event.reason
                )
                waiting = isinstance(event, cev.Undecryptable) and event.waiting
                sender = self.member(event.sender, event.room_id)
                out.events.append(
                    ev.Undecryptable(event.room_id, sender, event.seq, reason, waiting)
                )
        elif isinstance(event, cev.DirectInvited):
            out.invitations.append(event)
        elif isinstance(event, cev.RoomChanged) and event.room_id in self.rooms:
            room_id = event.room_id
            out.events.append(
                room_changed(room_id, event.entry, lambda key: self.member(key, room_id))
            )
        elif isinstance(event, cev.LogForked) and (state := self.rooms.get(event.room_id)):
            state.frozen = event.reason
            log.warning("room %s frozen: %s", state.record.name, event.reason)
            out.events.append(ev.RoomFrozen(event.room_id, event.reason))
        elif isinstance(event, cev.LogRejected) and (state := self.rooms.get(event.room_id)):
            log.warning("a log entry of room %s was rejected: %s", state.record.name, event.reason)
            out.events.append(
                ev.Notice(
                    f"A change of room {state.record.name!r} from the relay was rejected"
                    f" (log entry {event.position}): {event.reason}."
                )
            )
        elif isinstance(event, cev.LogBehind) and (state := self.rooms.get(event.room_id)):
            # A fetch on its way (the one of every connect, say) may bring the entries: it
            # says so itself if it does not (`_report_withheld`). Only a message naming a
            # longer log while none is on its way is news.
            fetching = state.log_fetch[0]
            if not state.log_behind and not fetching:
                member = self.member(event.sender, state.id)
                out.events.append(ev.LogBehind(state.id, member, event.held, event.named, False))
            state.log_behind = max(state.log_behind, event.named)
            if not fetching and self.connected:
                out.frames.append(self._log_request(state))
        elif isinstance(event, cev.RoomKeyInstalled) and (state := self.rooms.get(event.room_id)):
            self._keep_secret(state)  # it came after the log's rotation, in a direct
            out.events.append(ev.SecretArrived(state.id, event.epoch))
        elif isinstance(event, cev.RoomKeyMissing) and (state := self.rooms.get(event.room_id)):
            if state.room_key_asked[0] != event.epoch:
                state.room_key_asked = (event.epoch, self.clock())  # its author sends it now
        elif isinstance(event, cev.DirectForUnknownRoom | cev.DirectAheadOfLog):
            self._early_directs.append(event)
            del self._early_directs[:-EARLY_DIRECTS]
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

    def set_own_status(self, status: str, text: str | None) -> None:
        """The relay accepted our new status: show it on our own member entries."""
        self.view.set_own_status(status, text)

    # The membership log ------------------------------------------------------------

    def _log_request(self, state: RoomState) -> LogRequest:
        """Fetch the room's log from the length we hold (the engine's own fetch, marked
        on its way until its last page comes)."""
        state.log_fetch = (True, self.clock())
        length = state.log.length if state.log is not None else 0
        return LogRequest(room=state.id, after=length, id=f"{LOG_FETCH_ID}{state.id.hex()}")

    def log_length(self, room_id: bytes) -> int:
        """How many entries of the room's log we hold."""
        log = self._room_state(room_id).log
        return log.length if log is not None else 0

    def log_held(self, room_id: bytes, statements: Sequence[LogStatement]) -> LogStatement | None:
        """The one of our ``statements`` the room's validated log holds at its position."""
        self._room_state(room_id)
        held = (s for s in statements if self.session.log_holds(room_id, s.entry))
        return next(held, None)

    def apply_log(self, room_id: bytes, entries: list[bytes], start: int) -> Output:
        """Log entries from position ``start`` on that the client fetched (after a
        ``log_conflict``)."""
        out = Output()
        state = self.rooms.get(room_id)
        if state is not None:
            with self.store.transaction():
                self._apply_log(state, entries, out, start)
        return out

    def log_fetched(self, room_id: bytes) -> Output:
        """The rest of the log the client fetched page by page after entering is applied:
        send the ``join`` proofs held for it if the log lists us (else our ``join`` entry
        proves us, and they would be refused)."""
        state = self._room_state(room_id)
        held, state.proofs_held = state.proofs_held, False
        return self._prove_ourselves(state) if held else Output()

    def _prove_ourselves(self, state: RoomState) -> Output:
        """Our ``join`` proofs to the members, if the log lists us (else our ``join``
        entry proves us, and they would be refused)."""
        out = Output()
        if state.log is None or self.me in state.log.members:
            with self.store.transaction():
                self._apply(self.session.join_proofs(state.id, self.clock()), out)
        return out

    def _log_entries(self, frame: LogEntries, out: Output) -> None:
        """A log push (a new entry) or the reply to our own fetch.

        A push beyond our length means we missed entries: fetch from our length. Our
        fetch goes on page by page while each page extends the log; caught up (or
        stopped) after a reconnect, we sign the ``join`` the log still lacks (its append
        was lost with the connection). A push that starts the log of a room we are in
        already (its creator's entry came after our join: the invitation to a direct
        conversation goes out before it) is followed the same way, so our ``join`` is
        signed once the log lists its creator."""
        state = self.rooms.get(frame.room)
        if state is None:
            return
        ours = frame.id == f"{LOG_FETCH_ID}{state.id.hex()}"
        if frame.id is None and frame.start > (state.log.length if state.log else 0):
            out.frames.append(self._log_request(state))
            return
        if frame.id is not None and not ours:
            return
        started = state.log is None
        before = state.log.length if state.log is not None else 0
        with self.store.transaction():
            self._apply_log(state, frame.entries, out, frame.start)
        if not ours:
            if started and self.needs_join(state.id):
                out.extend(self.follow_log(state.id))
            return
        # the next page only after one that extended the log (all of it applied): a
        # relay serving pages that do not validate, or old ones again, is not followed
        held = state.log.length if state.log is not None else 0
        served = frame.start + len(frame.entries)
        if len(frame.entries) >= MAX_LOG_PAGE and held >= served > before:
            out.frames.append(self._log_request(state))
            return
        state.log_fetch = (False, state.log_fetch[1])
        self._report_withheld(state, out)
        if state.log_rejoin and state.id in self.rooms:
            state.log_rejoin = False
            if self.needs_join(state.id):
                self._rejoin(state, out)
            else:
                state.rejoin = None  # the log lists us: the join stands

    def _rejoin(self, state: RoomState, out: Output) -> None:
        """Sign the ``join`` the log still lacks after a reconnect, as ``Client._change``
        signs one: after a lost position, again for as long as the log grows, and at most
        ``LOG_ATTEMPTS`` times for conflicts the relay only claimed (until the next
        connection)."""
        contention = state.rejoin
        if contention is None:
            contention = state.rejoin = LogContention()
        elif not contention.took_position(self.log_length(state.id)) and contention.exhausted:
            state.rejoin = None
            out.events.append(
                ev.Notice(
                    f"Could not rejoin {state.record.name!r}: the relay kept answering"
                    " log_conflict with no new entry; it is tried again after the next connect."
                )
            )
            return
        try:
            statement = self.session.join_log(state.id, self.clock())
        except CryptoError as exc:
            out.events.append(ev.Notice(f"Could not rejoin {state.record.name!r}: {exc}."))
            return
        contention.signed(statement)
        join_id = f"{LOG_JOIN_ID}{state.id.hex()}"
        out.frames.append(LogAppend(room=state.id, entry=statement.entry, id=join_id))

    def _apply_log(
        self, state: RoomState, entries: Sequence[bytes], out: Output, start: int
    ) -> None:
        """Validate and apply entries (the relay says the first is at ``start``); keep
        the room's view of the log, its current room secret (a rotation installs a new
        one), send what waited for missing entries, and leave if the log removed us."""
        was_member = state.log is not None and self.me in state.log.members
        outcome = self.session.apply_log(state.id, entries, self.clock(), start)
        self._apply(outcome, out)
        state.log = self.session.log_state(state.id)
        ahead = self.session.log_ahead(state.id)
        was_behind, state.log_behind = state.log_behind, ahead.length if ahead else 0
        if was_behind and not state.log_behind and state.id in self.rooms:
            state.log_withheld = 0
            out.extend(self.flush_outbox())  # what waited for the missing entries goes now
        self._replay_held_directs(state.id, out)
        self._keep_secret(state)
        if was_member and state.log is not None and self.me not in state.log.members:
            out.extend(self.left(state.id))  # kicked or banned: the relay dropped us too

    def _keep_secret(self, state: RoomState) -> None:
        """Record the room's current secret (a rotation installs a new one), which its
        invite is made of."""
        current = self.session.room_secret(state.id)
        if current is not None and current.secret != state.record.secret:
            state.record = dataclasses.replace(state.record, secret=current.secret)
            self.store.save_room(state.record)

    def _report_withheld(self, state: RoomState, out: Output) -> None:
        """Our fetch is answered and the log still lacks entries a member's message
        named: the relay withholds them. Said once per length; sends keep waiting."""
        ahead = self.session.log_ahead(state.id)
        if ahead is None or state.log_withheld >= ahead.length:
            return
        state.log_withheld = ahead.length
        held = state.log.length if state.log is not None else 0
        log.warning(
            "the relay withholds changes of room %s: %d entries named, %d served",
            state.record.name,
            ahead.length,
            held,
        )
        member = self.member(ahead.sender, state.id)
        out.events.append(ev.LogBehind(state.id, member, held, ahead.length, True))

    def _replay_held_directs(self, room_id: bytes, out: Output) -> None:
        """Hand in again the directs held for ``room_id`` (they came before we entered
        it, or before its log listed their sender); one still early is held again."""
        held = [d for d in self._early_directs if d.room_id == room_id]
        self._early_directs = [d for d in self._early_directs if d.room_id != room_id]
        for direct in held:
            self._apply(self.session.receive_direct(direct.sender, direct.body, self.clock()), out)

    def follow_log(self, room_id: bytes) -> Output:
        """Fetch the room's log again and sign our ``join`` if it still lacks us: we
        entered while its creator's entry was not appended yet (nor pushed to us), so
        neither our fetch nor a push started it. Without the entry, the log's members
        would never list us and refuse to share with us."""
        out = Output()
        state = self.rooms.get(room_id)
        if state is not None and self.connected and (state.log is None or self.needs_join(room_id)):
            state.log_rejoin = True
            out.frames.append(self._log_request(state))
        return out

    def needs_join(self, room_id: bytes) -> bool:
        """Whether the room has a log that does not list us (nor bans us): we must
        append our ``join`` entry."""
        log = self._room_state(room_id).log
        return log is not None and self.me not in log.members and self.me not in log.banned

    def sign_log(self, room_id: bytes, sign: SignLog) -> LogStatement:
        """Sign a membership-log statement after checking it as every member will.

        Raises ``NotAllowed`` (nothing signed, nothing changed) if the rules refuse it:
        our role does not permit it, the subject is not a member, the room has no log."""
        self._changeable(room_id)
        try:
            return sign(self.session, room_id, self.clock())
        except AuthorityError as exc:
            raise NotAllowed(f"You are not allowed to do that: {exc}.") from None
        except (CryptoError, LogError) as exc:
            raise NotAllowed(f"That cannot be done in this room: {exc}.") from None

    def check_rotator(self, room_id: bytes) -> None:
        """Raise ``NotAllowed`` (as ``sign_log`` would) if the rules refuse us a change
        of the room's secret now: the room is frozen, or we are not an admin or owner.
        Nothing is signed: this is asked before a new password is asked for."""
        log = self._changeable(room_id).log
        if log is None:
            return  # no log: signing says so
        try:
            require_rotator(log, self.me)
        except AuthorityError as exc:
            raise NotAllowed(f"You are not allowed to do that: {exc}.") from None

    def _changeable(self, room_id: bytes) -> RoomState:
        """The room's state, unless its log is frozen (``NotAllowed``)."""
        state = self._room_state(room_id)
        if state.frozen is not None:
            raise NotAllowed(f"Nothing can be changed in this room: {state.frozen}.")
        return state

    def log_appended(self, room_id: bytes, statement: LogStatement) -> Output:
        """The relay appended our statement: send its directs (a rotation's new secret,
        sealed to each remaining member), durably, like key shares."""
        out = Output()
        with self.store.transaction():
            out.frames += self.outbox.queue_directs(statement.directs, self.connected)
        return out

    def _ask_room_key(self, state: RoomState, now: int, out: Output) -> None:
        """Ask again for a rotated room secret that has not come (``ROOM_KEY_WAIT_MS``)."""
        epoch, since = state.room_key_asked
        log = state.log
        if log is None or epoch != log.epoch or now - since < ROOM_KEY_WAIT_MS:
            return
        current = self.session.room_secret(state.id)
        if current is not None and current.verifier == log.verifier:
            state.room_key_asked = (-1, 0)  # it came
            return
        state.room_key_asked = (epoch, now)
        outcome = self.session.request_room_key(state.id, now)
        out.frames += self.outbox.queue_directs(outcome.directs, self.connected)

    def log_entries(self, room_id: bytes) -> list["ev.RoomChanged[bytes]"]:
        """Every validated change of the room's log, oldest first (for a room info view)."""
        self._room_state(room_id)
        return [
            room_changed(room_id, entry, lambda key: self.member(key, room_id))
            for entry in self.session.room_log(room_id)
        ]

    # Local reads -------------------------------------------------------------------

    def history(
        self, room_id: bytes, limit: int, before: int | None = None, after: int | None = None
    ) -> list[Message[bytes]]:
        """Up to ``limit`` stored messages of a room, oldest first: the newest (below seq
        ``before``), or the oldest from seq ``after`` on (to jump to a message)."""
        if room_id not in self.rooms:
            return []
        items = (
            self.store.history(room_id, limit, before)
            if after is None
            else self.store.history_after(room_id, after, limit)
        )
        return [m for m in map(self.chat.message, items) if m is not None]

    def pending(self, room_id: bytes) -> list[Message[bytes]]:
        """Our messages of a room still in the outbox (kept across restarts), oldest
        first, as ``queue`` returned them: seq 0, and the ``send_id`` their
        ``MessageSent`` or ``SendFailed`` will name. Edits, deletes and reactions are
        not messages of their own and are left out."""
        pending: list[Message[bytes]] = []
        for item in self.outbox.items(room_id):
            payload = decode_sent(item.payload)
            if isinstance(payload, Text):
                quote = (
                    None if payload.reply_to is None else self.chat.quote(room_id, payload.reply_to)
                )
                pending.append(self._provisional(room_id, item.id, payload, quote))
            elif isinstance(payload, File):
                pending.append(self._provisional(room_id, item.id, payload))
        return pending

    def versions(self, room_id: bytes, msg_id: bytes) -> list[Version]:
        """Every version of a stored message, the original first."""
        return self.chat.versions(room_id, msg_id)

    def search(self, query: str, room_id: bytes | None, limit: int) -> list[Message[bytes]]:
        """Stored messages (of one room or all) holding every word of ``query``."""
        return self.chat.search(query, room_id, limit)

    def index_step(self) -> bool:
        """Build the search index a step further; True once it is complete."""
        return self.chat.index_step()

    def read_state(self, room_id: bytes) -> ReadState:
        return self._room_state(room_id).read

    # Read state and typing -----------------------------------------------------------

    def mark_read(self, room_id: bytes, seq: int | None = None) -> Output:
        """Move the read marker to ``seq`` (the newest message if None); with read
        receipts on, tell the members (ephemerally) which message we read up to."""
        state = self._room_state(room_id)
        with self.store.transaction():
            before = state.read
            read = self.chat.mark_read(state, seq)
        out = Output()
        if read != before:
            out.read[room_id] = read
        if not self.read_receipts or read.read_seq == before.read_seq:
            return out
        newest = self.store.history(room_id, 1, read.read_seq + 1)
        if newest and newest[-1].msg_id:
            out.extend(self._signal_out(state, Read(newest[-1].msg_id, self.clock())))
        return out

    def typing(self, room_id: bytes, typing: bool) -> Output:
        """Signal that we are (still) typing, or stopped: "typing" at most every
        ``TYPING_REFRESH_MS``, "stopped" only after a "typing"; nothing when typing
        indicators are off."""
        state = self._room_state(room_id)
        now = self.clock()
        was, when = state.typing_sent
        if not self.send_typing or (typing and was and now - when < TYPING_REFRESH_MS):
            return Output()
        if not typing and not was:
            return Output()
        state.typing_sent = (typing, now)
        return self._signal_out(state, Typing(typing, now))

    def _signal_out(self, state: RoomState, payload: Typing | Read) -> Output:
        now = self.clock()
        if not self.connected or state.holds(now):
            return Output()
        try:
            with self.store.transaction():
                outgoing = self.session.encrypt(state.id, payload, now)
                # the shares a signal makes are the chain's shares for later messages too
                frames: list[ClientFrame] = [*self.outbox.queue_directs(outgoing.directs, True)]
        except CryptoError:
            return Output()  # nothing to tell: a typing signal is worth no notice
        frames.append(SignalSend(room=state.id, body=outgoing.body))
        return Output(frames=frames)


def _unsupported(payload: Unsupported) -> bytes:
    """What is stored for a message of a kind this version cannot show: its kind."""
    return b'{"t":"' + payload.kind.encode() + b'","ts":' + str(payload.ts).encode() + b"}"


def _mentioned(state: RoomState, text: str) -> tuple[bytes, ...]:
    """The keys ``text`` mentions by the names members go by and their petnames; raises
    ``AmbiguousMention`` for a bare ``@name`` several members go by."""
    roster = [(m.name, m.key) for m in state.member_list]
    roster += [(m.petname, m.key) for m in state.member_list if m.petname is not None]
    return resolve_mentions(text, roster)
