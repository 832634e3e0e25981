"""The room-session layer: validated rosters, lazy sharing, rotation, receive paths.

``CryptoSession`` is sans-I/O. Every method takes what arrived (relay-announced members,
bodies with the relay's claimed sender, the current time in milliseconds) and returns
an ``Outcome`` (directs to send, messages, events) or, for ``encrypt``, an ``Outgoing``.
It never talks to the network or the clock. Every method runs as one ``Txn``: remote
bad input becomes an event and changes nothing; only local misuse raises.
"""

import hmac
from collections.abc import Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field

import msgspec

from e2echat.crypto import chain as ratchet
from e2echat.crypto.chain import ChainTombstone, InboundChain, OutboundChain
from e2echat.crypto.contacts import Contacts
from e2echat.crypto.direct import (
    MAX_AGE_MS,
    MAX_SKEW_MS,
    DirectInvite,
    DirectPayload,
    Join,
    KeyRequest,
    RoomKey,
    RoomKeyRequest,
    Share,
    direct_prekey_id,
    open_direct,
    seal_direct,
)
from e2echat.crypto.errors import (
    ChainError,
    CryptoError,
    MalformedError,
    ProofError,
    ReplayError,
    StaleEnvelopeError,
)
from e2echat.crypto.events import (
    Decrypted,
    DirectAheadOfLog,
    DirectForUnknownRoom,
    DirectInvited,
    DirectRejected,
    Event,
    LogBehind,
    LogForked,
    LogRejected,
    LogStatement,
    MemberUnverified,
    MemberValidated,
    MessageDeferred,
    MessageRejected,
    Outcome,
    Outgoing,
    OutgoingDirect,
    ReplayRejected,
    RoomChanged,
    RoomKeyInstalled,
    RoomKeyMissing,
    Undecryptable,
)
from e2echat.crypto.identity import Identity
from e2echat.crypto.message import body_digest, parse_body, seal_body
from e2echat.crypto.payload import RoomPayload, check_signer, decode_payload, encode_payload
from e2echat.crypto.policy import DEFAULT_POLICY, Policy
from e2echat.crypto.prekeys import PrekeyRecord, SignedPrekey, new_prekey
from e2echat.crypto.primitives import KEY_SIZE
from e2echat.crypto.records import (
    ASKED,
    GONE,
    INBOUND,
    INVITES,
    LOG,
    LOG_ENTRIES,
    OUTBOUND,
    PENDING,
    PREKEYS,
    REFUSED,
    RETAINED,
    ROOM_KEYS,
    ROOMS,
    SEEN,
    WAITING,
    InviteRecord,
    KeyAsked,
    LogClaim,
    LogEntryRecord,
    MemberRecord,
    PendingMessage,
    Records,
    RefusedShare,
    RoomKeyRecord,
    RoomRecord,
    SeenNonce,
    Txn,
    WaitingChain,
    inbound_key,
    log_entry_key,
    pending_key,
    prekey_key,
    split_chain_key,
)
from e2echat.crypto.revised import revised
from e2echat.crypto.roomlog import (
    NO_HASH,
    NO_VERIFIER,
    ROTATING,
    TAGGED,
    Kind,
    LogEntry,
    LogError,
    LogForkError,
    LogHead,
    LogState,
    Role,
    apply_entry,
    compare_head,
    encode_entry,
    entry_hash,
    parse_entry,
)
from e2echat.crypto.roomsecret import RoomSecret, check_proof, make_proof
from e2echat.crypto.store import CryptoStore

NOT_ARRIVED = "its key has not arrived from the sender yet (asked again)"
"""Why a message still waits when no share of its chain came (not even a refused one)."""


class AnnouncedMember(msgspec.Struct, frozen=True):
    """A member as the relay announces it: identity key, display name, signed prekey."""

    key: bytes
    name: str
    prekey: SignedPrekey


@dataclass(slots=True)
class _Op:
    """The transaction and the results of one operation."""

    txn: Txn
    directs: list[OutgoingDirect] = field(default_factory=list)
    messages: list[Decrypted] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    publish_prekey: SignedPrekey | None = None

    def finish(self) -> Outcome:
        self.txn.commit()
        return Outcome(self.directs, self.messages, self.events, self.publish_prekey)


class CryptoSession:
    """One identity's end-to-end state, persisted through a ``CryptoStore``."""

    def __init__(
        self,
        identity: Identity,
        store: CryptoStore,
        *,
        policy: Policy = DEFAULT_POLICY,
    ) -> None:
        self._identity = identity
        self._me = identity.public_key
        self._records = Records(store)
        self._chosen = policy
        self._policy = policy
        self.contacts = Contacts(self._records)
        """Trust, verification, petnames and names of every key seen (per key, section 9.6)."""

    def __repr__(self) -> str:
        return f"CryptoSession(me={self._me.hex()[:16]})"

    @property
    def policy(self) -> Policy:
        """The limits in force: those chosen, raised to cover the relay's retention."""
        return self._policy

    def cover_relay_retention(self, messages: int, age_ms: int) -> None:
        """The relay keeps ``messages`` per room for ``age_ms`` (its ``challenge``):
        keep whatever can still open one of them at least that long (``Policy.covering``
        of the policy chosen at construction)."""
        self._policy = self._chosen.covering(messages, age_ms)

    # -- prekeys -------------------------------------------------------------------

    def current_prekey(self, now: int) -> SignedPrekey:
        """Our current signed prekey (for ``hello``), created on first use."""
        op = _Op(self._records.begin())
        current = self._current_prekey(op, now)
        op.finish()
        return current.signed

    def _current_prekey(self, op: _Op, now: int) -> PrekeyRecord:
        records = [record for _, record in op.txn.scan(PREKEYS, b"", PrekeyRecord)]
        live = [record for record in records if record.retired is None]
        if live:
            return max(live, key=lambda record: record.created)
        record = new_prekey(self._identity, now, {r.id for r in records})
        op.txn.put(PREKEYS, prekey_key(record.id), record)
        op.publish_prekey = record.signed
        return record

    def _maintain_prekeys(self, op: _Op, now: int) -> None:
        current = self._current_prekey(op, now)
        if now - current.created >= self._policy.prekey_rotation:
            op.txn.put(
                PREKEYS, prekey_key(current.id), msgspec.structs.replace(current, retired=now)
            )
            self._current_prekey(op, now)
        for key, record in op.txn.scan(PREKEYS, b"", PrekeyRecord):
            if record.retired is not None and now - record.retired >= self._policy.prekey_grace:
                op.txn.delete(PREKEYS, key)

    # -- rooms and members -----------------------------------------------------------

    def enter_room(
        self,
        room_id: bytes,
        members: Iterable[AnnouncedMember],
        now: int,
        *,
        secret: RoomSecret | None = None,
        peer: bytes | None = None,
        proofs: bool = True,
    ) -> Outcome:
        """Reconcile a room with the relay's full member list (on join and on reconnect).

        ``peer`` makes it a direct conversation with that key (section 14), which is
        given every chain from index 0: it is entitled to the whole conversation, even
        what was sent before it first joined.

        ``secret`` makes it a secret room: members are validated by proof only. On the
        first entry into a secret room we send our proof (``join``) to every member,
        unless ``proofs`` is False (then ``join_proofs`` sends them, once the log is read).
        Members no longer listed are treated as having left.
        """
        op = _Op(self._records.begin())
        room = op.txn.get(ROOMS, room_id, RoomRecord)
        join_key = secret.join_key if secret is not None else None
        first = room is None or not (
            _same_key(room.join_key, join_key) or self._rotated_since(op, room, secret)
        )
        if room is None or first:
            # new to us, or another secret (a different room for us): start afresh;
            # chains installed under the old access mode were not proved under this one
            op.txn.delete(OUTBOUND, room_id)
            _forget_retained(op.txn, room_id)
            _bury_room_chains(op.txn, room_id, now)
            op.txn.delete(LOG, room_id)
            room = RoomRecord(
                room_id, join_key, room_secret=secret.secret if secret is not None else None
            )
        if peer is not None and room.peer != peer:
            room = msgspec.structs.replace(room, peer=peer)
        listed = {member.key: member for member in members if member.key != self._me}
        for gone in [key for key, record in room.members.items() if record.announced]:
            if gone not in listed:
                room = self._remove_member(op, room, gone)
        for member in listed.values():
            room = self._announce(op, room, member, now)
        op.txn.put(ROOMS, room_id, room)
        if first and proofs:
            self._join_proofs(op, room, now)
        return op.finish()

    def join_proofs(self, room_id: bytes, now: int) -> Outcome:
        """Our ``join`` proof to every member, at the epoch we are at: sent once a first
        entry has read the room's log (proofs made before it named epoch 0, which the
        members of a room that rotated since refuse)."""
        op = _Op(self._records.begin())
        room = op.txn.get(ROOMS, room_id, RoomRecord)
        if room is not None:
            self._join_proofs(op, room, now)
        return op.finish()

    def _join_proofs(self, op: _Op, room: RoomRecord, now: int) -> None:
        if room.join_key is None:
            return
        for key, record in room.members.items():
            if record.prekey is not None:
                proof, nonce = make_proof(room.join_key, room.room_id, room.epoch, self._me, key)
                join = Join(self._me, key, room.room_id, now, proof, room.epoch, nonce)
                self._send(op, key, join, record.prekey)

    def _rotated_since(self, op: _Op, room: RoomRecord, secret: RoomSecret | None) -> bool:
        """Whether ``secret`` is one our log has rotated away from (the client still has
        the old invite or password): we keep the newer secret the log commits to."""
        state = op.txn.get(LOG, room.room_id, LogState)
        return (
            secret is not None
            and state is not None
            and state.epoch > 0
            and _holds_current_secret(room, state)
        )

    def member_joined(self, room_id: bytes, member: AnnouncedMember, now: int) -> Outcome:
        """The relay announced a new member (``member_joined``)."""
        op = _Op(self._records.begin())
        room = self._room(op, room_id)
        if member.key != self._me:
            op.txn.put(ROOMS, room_id, self._announce(op, room, member, now))
        return op.finish()

    def member_left(self, room_id: bytes, key: bytes, now: int) -> Outcome:
        """The relay says ``key`` left: stop sharing with it and rotate if it held our chain."""
        op = _Op(self._records.begin())
        room = self._room(op, room_id)
        op.txn.put(ROOMS, room_id, self._remove_member(op, room, key))
        return op.finish()

    def leave_room(self, room_id: bytes) -> None:
        """Forget everything about a room we left (chains, roster, pending messages).

        Each inbound chain leaves a tombstone (stamped by the next ``tick``), so that
        a relay replaying its old share after we re-join cannot replay its messages.
        """
        txn = self._records.begin()
        _bury_room_chains(txn, room_id, None)
        for key, _ in txn.scan(PENDING, room_id, PendingMessage):
            txn.delete(PENDING, key)
        for key, _ in txn.scan(WAITING, room_id, WaitingChain):
            txn.delete(WAITING, key)
        txn.delete(OUTBOUND, room_id)
        _forget_retained(txn, room_id)
        txn.delete(ROOMS, room_id)
        txn.delete(LOG, room_id)
        for key, _ in txn.scan(LOG_ENTRIES, room_id, LogEntryRecord):
            txn.delete(LOG_ENTRIES, key)
        txn.commit()

    def validated_members(self, room_id: bytes) -> list[bytes]:
        """The members we share our keys with in ``room_id``."""
        room = self._records.get(ROOMS, room_id, RoomRecord)
        if room is None:
            return []
        state = self._records.get(LOG, room_id, LogState)
        return [
            key for key, record in room.members.items() if self._shareable(room, state, key, record)
        ]

    def deferred_writes(self) -> AbstractContextManager[None]:
        """Group the state writes of the operations run inside into one, at its end (a
        batch of messages advances each chain in the store once). Hold one store
        transaction around it."""
        return self._records.deferred()

    def is_validated(self, room_id: bytes, key: bytes) -> bool:
        """Whether we share our keys with ``key`` in ``room_id`` (one of
        ``validated_members``, found without listing them)."""
        room = self._records.get(ROOMS, room_id, RoomRecord)
        record = None if room is None else room.members.get(key)
        if room is None or record is None:
            return False
        return self._shareable(room, self._records.get(LOG, room_id, LogState), key, record)

    def is_secret(self, room_id: bytes) -> bool:
        """Whether ``room_id`` is a secret room (False: open, anyone admitted can read)."""
        room = self._records.get(ROOMS, room_id, RoomRecord)
        return room is not None and room.secret

    def _room(self, op: _Op, room_id: bytes) -> RoomRecord:
        room = op.txn.get(ROOMS, room_id, RoomRecord)
        if room is None:
            raise CryptoError("unknown room: call enter_room first")
        return room

    def _announce(self, op: _Op, room: RoomRecord, member: AnnouncedMember, now: int) -> RoomRecord:
        """Record a relay-announced member: prekey check, first sight, open-room validation."""
        if len(member.key) != KEY_SIZE:
            # the client must pass wire-validated members; a bad key would be stored and
            # then fail to decode on every later read of the room
            raise MalformedError("a member key is 32 bytes")
        old = room.members.get(member.key)
        prekey: SignedPrekey | None = member.prekey
        if old is None or old.prekey != member.prekey:
            try:
                member.prekey.verify(member.key)
            except CryptoError as exc:
                op.events.append(MemberUnverified(room.room_id, member.key, str(exc)))
                prekey = old.prekey if old is not None else None
        self.contacts.see(op.txn, member.key, member.name)
        validated = (old is not None and old.validated) or not room.secret
        record = MemberRecord(member.name, prekey, True, validated)
        if validated and (old is None or not old.validated):
            op.events.append(MemberValidated(room.room_id, member.key))
        elif not validated and old is None:
            op.events.append(MemberUnverified(room.room_id, member.key, "no membership proof yet"))
        room = _with_member(room, member.key, record)
        if room.secret and validated and (old is None or old.prekey is None):
            self._share_current(op, room, member.key, now)
        return room

    def _remove_member(self, op: _Op, room: RoomRecord, key: bytes) -> RoomRecord:
        if key not in room.members:
            return room
        outbound = op.txn.get(OUTBOUND, room.room_id, OutboundChain)
        if outbound is not None and key in outbound.shared:
            self._retire_outbound(op, room.room_id)
        return msgspec.structs.replace(room, members=revised(room.members, removed=[key]))

    @staticmethod
    def _shareable(
        room: RoomRecord, state: LogState | None, key: bytes, record: MemberRecord
    ) -> bool:
        """Whether we give ``key`` our keys: validated, with a prekey and, once a secret
        room has a membership log, a member of it; nobody in a frozen room.

        An open room admits whoever the relay admits, so a joiner gets our keys at once
        (before its ``join`` entry arrives: what we send meanwhile is readable by it),
        unless the log bans it."""
        if state is None:
            listed = True
        elif room.secret:
            listed = key in state.members
        else:
            listed = key not in state.banned
        return record.validated and record.prekey is not None and room.frozen is None and listed

    def _listed(self, room: RoomRecord, state: LogState | None) -> bool:
        """Whether we may share in the room at all: in a secret room with a log, only
        once the log lists us (members refuse our shares until our ``join`` is in it;
        a share they refused would count as given). Our ``join`` shares then."""
        return state is None or not room.secret or self._me in state.members

    # -- sending ---------------------------------------------------------------------------

    def encrypt(self, room_id: bytes, payload: RoomPayload, now: int) -> Outgoing:
        """Encrypt and sign ``payload`` for ``room_id``, rotating and sharing as needed."""
        op = _Op(self._records.begin())
        room = self._room(op, room_id)
        if room.frozen is not None:
            raise CryptoError(f"nothing can be sent in this room: {room.frozen}")
        outbound = self._outbound(op, room_id, now)
        outbound = self._share_missing(op, room, outbound, now)
        index, message_key, advanced = ratchet.outbound_step(outbound)
        state = op.txn.get(LOG, room_id, LogState)
        position = state.position if state is not None else LogHead(0, NO_HASH)
        body = seal_body(
            self._identity.sign,
            room_id,
            self._me,
            outbound.chain_id,
            index,
            message_key,
            encode_payload(payload),
            log_length=position.length,
            log_head=position.head,
        )
        op.txn.put(OUTBOUND, room_id, advanced)
        op.finish()
        return Outgoing(op.directs, body)

    def _outbound(self, op: _Op, room_id: bytes, now: int) -> OutboundChain:
        """Our current chain in the room; a new one if none, or if due for rotation."""
        outbound = op.txn.get(OUTBOUND, room_id, OutboundChain)
        if (
            outbound is None
            or outbound.index >= self._policy.rotate_messages
            or now - outbound.created >= self._policy.rotate_age
        ):
            self._retire_outbound(op, room_id)
            outbound = ratchet.new_outbound(now)
            op.txn.put(OUTBOUND, room_id, outbound)
        return outbound

    def _retire_outbound(self, op: _Op, room_id: bytes) -> None:
        """Stop sending on our current chain. It is kept (with ``ck_0`` and who was given
        it from which index) to answer key requests for the messages the relay still
        retains: for ``retention``, at most ``max_retained_chains`` per room."""
        outbound = op.txn.get(OUTBOUND, room_id, OutboundChain)
        if outbound is None:
            return
        op.txn.delete(OUTBOUND, room_id)
        if outbound.index == 0:
            return  # nothing was sent on it: nothing to ask for
        op.txn.put(RETAINED, room_id + outbound.chain_id, outbound)
        kept = op.txn.scan(RETAINED, room_id, OutboundChain)
        excess = len(kept) - self._policy.max_retained_chains
        for key, _chain in sorted(kept, key=lambda item: item[1].created)[: max(excess, 0)]:
            op.txn.delete(RETAINED, key)

    def _share_missing(
        self, op: _Op, room: RoomRecord, outbound: OutboundChain, now: int
    ) -> OutboundChain:
        """Share our chain with every validated member that lacks it (lazy sharing)."""
        state = op.txn.get(LOG, room.room_id, LogState)
        if not self._listed(room, state):
            return outbound
        missing = [
            (key, record)
            for key, record in room.members.items()
            if key not in outbound.shared and self._shareable(room, state, key, record)
        ]
        if not missing:
            return outbound
        shared: dict[bytes, int] = {}
        for key, record in missing:
            assert record.prekey is not None
            proof, nonce = self._proof_to(room, key)
            share = Share(
                self._me,
                key,
                room.room_id,
                now,
                outbound.chain_id,
                outbound.index,
                outbound.ck,
                proof,
                room.epoch,
                nonce,
            )
            self._send(op, key, share, record.prekey)
            shared[key] = outbound.index
        outbound = msgspec.structs.replace(outbound, shared=revised(outbound.shared, shared))
        op.txn.put(OUTBOUND, room.room_id, outbound)
        return outbound

    def _share_current(self, op: _Op, room: RoomRecord, key: bytes, now: int) -> None:
        """Share our chain with one member now (secret rooms: it also proves us to it).

        Members we do not know (a key request from a stranger) get nothing."""
        record = room.members.get(key)
        state = op.txn.get(LOG, room.room_id, LogState)
        if record is None or not self._shareable(room, state, key, record):
            return
        if not self._listed(room, state):
            return
        outbound = self._outbound(op, room.room_id, now)
        index = outbound.shared.get(key, 0 if key == room.peer else outbound.index)
        assert record.prekey is not None
        proof, nonce = self._proof_to(room, key)
        share = Share(
            self._me,
            key,
            room.room_id,
            now,
            outbound.chain_id,
            index,
            ratchet.chain_key_at(outbound, index),
            proof,
            room.epoch,
            nonce,
        )
        self._send(op, key, share, record.prekey)
        if key not in outbound.shared:
            shared = revised(outbound.shared, {key: index})
            op.txn.put(OUTBOUND, room.room_id, msgspec.structs.replace(outbound, shared=shared))

    def _proof_to(self, room: RoomRecord, key: bytes) -> tuple[bytes | None, bytes | None]:
        """A fresh ``(proof, nonce)`` of ours to ``key`` (none in an open room)."""
        if room.join_key is None:
            return None, None
        return make_proof(room.join_key, room.room_id, room.epoch, self._me, key)

    def _send(
        self, op: _Op, recipient: bytes, payload: DirectPayload, prekey: SignedPrekey
    ) -> None:
        op.directs.append(
            OutgoingDirect(recipient, seal_direct(self._identity.sign, payload, prekey))
        )

    # -- receiving room messages ------------------------------------------------------------

    def receive(
        self, room_id: bytes, sender: bytes, body: bytes, now: int, seq: int = 0
    ) -> Outcome:
        """A room ``message`` from the relay: ``sender`` is the relay's ``from``."""
        op = _Op(self._records.begin())
        self._receive(op, room_id, sender, body, now, seq)
        return op.finish()

    def _receive(
        self, op: _Op, room_id: bytes, sender: bytes, body: bytes, now: int, seq: int
    ) -> None:
        try:
            parsed = parse_body(body)
            header = parsed.header
            if header.room_id != room_id:
                raise CryptoError("message header names another room")
            if header.sender != sender:
                raise CryptoError("message header sender differs from the relay's sender")
            parsed.verify()
            self._compare_head(op, room_id, sender, LogHead(header.log_length, header.log_head))
        except (CryptoError, LogError) as exc:
            op.events.append(MessageRejected(room_id, sender, seq, str(exc)))
            return
        chain_key = inbound_key(room_id, sender, header.chain_id)
        inbound = op.txn.get(INBOUND, chain_key, InboundChain)
        if inbound is None:
            self._defer(
                op, PendingMessage(room_id, sender, header.chain_id, header.index, seq, body, now)
            )
            return
        try:
            message_key, advanced = ratchet.inbound_key(inbound, header.index, now, self._policy)
            payload = decode_payload(parsed.decrypt(message_key))
            check_signer(payload, sender)
        except ReplayError:
            op.events.append(ReplayRejected(room_id, sender, seq, body_digest(body)))
            return
        except ChainError as exc:
            op.events.append(Undecryptable(room_id, sender, seq, str(exc)))
            return
        except CryptoError as exc:
            op.events.append(MessageRejected(room_id, sender, seq, str(exc)))
            return
        op.txn.put(INBOUND, chain_key, advanced)
        op.messages.append(
            Decrypted(
                room_id, sender, seq, header.chain_id, header.index, payload, body_digest(body)
            )
        )

    def _defer(self, op: _Op, message: PendingMessage) -> None:
        """Keep a message until its chain comes (``_install``), counted in its chain's
        ``WaitingChain``; reported at once if that chain's messages already were (or a
        share of it was refused)."""
        room_id, sender, seq = message.room_id, message.sender, message.seq
        if op.txn.get(ROOMS, room_id, RoomRecord) is None:
            op.events.append(MessageRejected(room_id, sender, seq, "unknown room"))
            return
        key = pending_key(message)
        if op.txn.count(PENDING, key):  # a copy of one waiting already
            op.events.append(MessageDeferred(room_id, sender, seq))
            return
        chains = op.txn.scan(WAITING, room_id, WaitingChain)
        if sum(chain.count for _, chain in chains) >= self._policy.max_pending:
            op.events.append(Undecryptable(room_id, sender, seq, "too many messages waiting"))
            return
        chain_key = inbound_key(room_id, sender, message.chain_id)
        waiting = op.txn.get(WAITING, chain_key, WaitingChain)
        if waiting is None:
            refused = op.txn.get(REFUSED, chain_key, RefusedShare) is not None
            waiting = WaitingChain(message.received, 1, reported=refused)
        else:
            waiting = msgspec.structs.replace(waiting, count=waiting.count + 1)
        op.txn.put(PENDING, key, message)
        op.txn.put(WAITING, chain_key, waiting)
        op.events.append(MessageDeferred(room_id, sender, seq))
        if waiting.reported:
            reason = self._waiting_reason(op, chain_key)
            op.events.append(Undecryptable(room_id, sender, seq, reason, True))

    def _waiting_reason(self, op: _Op, chain_key: bytes) -> str:
        """Why the messages of a chain still wait: a share refused for its date, or none
        came."""
        refused = op.txn.get(REFUSED, chain_key, RefusedShare)
        return NOT_ARRIVED if refused is None else refused.reason

    def _report_waiting(self, op: _Op, chain_key: bytes, reason: str) -> None:
        """Report every message waiting for a chain, in index order, with ``reason``."""
        for _, message in op.txn.scan(PENDING, chain_key, PendingMessage):
            op.events.append(
                Undecryptable(message.room_id, message.sender, message.seq, reason, True)
            )

    # -- receiving direct envelopes ------------------------------------------------------------

    def receive_direct(self, sender: bytes, body: bytes, now: int) -> Outcome:
        """A ``direct`` frame from the relay: ``sender`` is the relay's ``from``."""
        op = _Op(self._records.begin())
        try:
            self._receive_direct(op, sender, body, now)
        except _DuplicateEnvelopeError:
            return Outcome()  # a second delivery of one envelope (mailbox and live) or a
            # replay: either way it was acted on once and does nothing more
        except StaleEnvelopeError as exc:
            return self._refused_for_date(sender, exc, now)
        except _AheadOfLogError as exc:
            return Outcome(events=[DirectAheadOfLog(sender, exc.room_id, body)])
        except CryptoError as exc:
            return Outcome(events=[DirectRejected(sender, str(exc))])
        return op.finish()

    def _receive_direct(self, op: _Op, sender: bytes, body: bytes, now: int) -> None:
        prekey = op.txn.get(PREKEYS, prekey_key(direct_prekey_id(body)), PrekeyRecord)
        if prekey is None:
            raise CryptoError("direct envelope is sealed to an unknown or deleted prekey")
        payload = open_direct(
            body,
            prekey_public=prekey.signed.key,
            prekey_secret=prekey.secret,
            me=self._me,
            claimed_sender=sender,
            now=now,
        )
        room = op.txn.get(ROOMS, payload.room_id, RoomRecord)
        if isinstance(payload, DirectInvite):
            kept = op.txn.get(INVITES, payload.room_id, InviteRecord)
            # a copy for a room we are in, or of an invitation we followed (and maybe
            # left since), changes nothing
            if room is None and (kept is None or not kept.followed):
                invite = InviteRecord(sender, payload.name, payload.secret, now)
                op.txn.put(INVITES, payload.room_id, invite)
                op.events.append(
                    DirectInvited(sender, payload.room_id, payload.name, payload.secret)
                )
            return
        if room is None:
            # checked and addressed to us, but nothing of it is acted on or remembered:
            # handed in again once the room is entered, it is judged afresh
            op.events.append(DirectForUnknownRoom(sender, payload.room_id, body))
            return
        if isinstance(payload, RoomKey):
            self._receive_room_key(op, room, payload, now)
            return
        if isinstance(payload, RoomKeyRequest):
            self._answer_room_key(op, room, payload, now)
            return
        room = self._validate(op, room, payload, now)
        if isinstance(payload, Share):
            self._install(op, payload, now)
        elif isinstance(payload, KeyRequest):
            self._answer_request(op, room, payload, now)
        op.txn.put(ROOMS, room.room_id, room)

    def invite_direct(
        self,
        peer: bytes,
        prekey: SignedPrekey,
        room_id: bytes,
        name: str,
        secret: bytes,
        now: int,
    ) -> OutgoingDirect:
        """The invitation of ``peer`` to our direct conversation ``room_id`` (section 14),
        sealed to ``peer``'s signed prekey, which must verify against ``peer``."""
        prekey.verify(peer)
        invite = DirectInvite(self._me, peer, room_id, now, name, secret)
        return OutgoingDirect(peer, seal_direct(self._identity.sign, invite, prekey))

    def pending_invites(self) -> list[DirectInvited]:
        """The invitations kept because their rooms are not entered yet (section 14)."""
        txn = self._records.begin()
        return [
            DirectInvited(record.sender, room_id, record.name, record.secret)
            for room_id, record in txn.scan(INVITES, b"", InviteRecord)
            if not record.followed
        ]

    def invite_done(self, room_id: bytes, now: int) -> None:
        """The invitation to ``room_id`` (if any) was followed or refused: it is not
        followed again, nor is any copy of it while one could be fresh."""
        op = _Op(self._records.begin())
        kept = op.txn.get(INVITES, room_id, InviteRecord)
        if kept is not None and not kept.followed:
            done = msgspec.structs.replace(kept, received=now, followed=True)
            op.txn.put(INVITES, room_id, done)
        op.finish()

    def _refused_for_date(self, sender: bytes, exc: StaleEnvelopeError, now: int) -> Outcome:
        """A share refused for its date (a clock is off): remember why for its chain, so
        the messages waiting for it are reported with that reason (``tick``)."""
        op = _Op(self._records.begin())
        op.events.append(DirectRejected(sender, str(exc)))
        share = exc.payload
        if isinstance(share, Share) and op.txn.get(ROOMS, share.room_id, RoomRecord) is not None:
            chain_key = inbound_key(share.room_id, sender, share.chain_id)
            reason = f"its key share was refused: {exc}"
            refused_before = op.txn.get(REFUSED, chain_key, RefusedShare) is not None
            op.txn.put(REFUSED, chain_key, RefusedShare(reason, now))
            waiting = op.txn.get(WAITING, chain_key, WaitingChain)
            if waiting is not None and not (waiting.reported and refused_before):
                # waiting already (reported as "not arrived", or not at all): say why now
                # (``tick`` keeps asking for the key); once is enough for each reason
                self._report_waiting(op, chain_key, reason)
                op.txn.put(WAITING, chain_key, msgspec.structs.replace(waiting, reported=True))
        return op.finish()

    def _validate(
        self, op: _Op, room: RoomRecord, payload: Share | Join | KeyRequest, now: int
    ) -> RoomRecord:
        """Check the sender's proof in a secret room; the first valid one validates it.

        A proof counts only for the room's current epoch, only once (its nonce is
        remembered while the envelope could still be fresh), and, once the room has a
        membership log, only from a member of it: a replayed ``join`` of a member that
        left or was removed validates nothing.
        """
        if room.join_key is None:
            return room
        sender = payload.sender
        if payload.epoch > room.epoch:
            # a proof for an epoch we have not reached: our log (or its secret) is behind
            raise _AheadOfLogError(room.room_id, f"membership proof is for epoch {payload.epoch}")
        if payload.epoch != room.epoch:
            raise ProofError(
                f"membership proof is for epoch {payload.epoch}, the room is at {room.epoch}"
            )
        check_proof(
            room.join_key, room.room_id, room.epoch, sender, self._me, payload.proof, payload.nonce
        )
        assert payload.nonce is not None
        seen_key = room.room_id + sender + payload.nonce
        if op.txn.get(SEEN, seen_key, SeenNonce) is not None:
            raise _DuplicateEnvelopeError
        op.txn.put(SEEN, seen_key, SeenNonce(now))
        state = op.txn.get(LOG, room.room_id, LogState)
        if state is not None and sender not in state.members:
            raise _AheadOfLogError(room.room_id, "the sender is not in the room's membership log")
        record = room.members.get(sender)
        if record is not None and record.validated:
            return room
        if record is None:
            record = MemberRecord("", None, announced=False, validated=True)
        else:
            record = msgspec.structs.replace(record, validated=True)
        op.events.append(MemberValidated(room.room_id, sender))
        room = _with_member(room, sender, record)
        self._share_current(op, room, sender, now)
        return room

    def _install(self, op: _Op, share: Share, now: int) -> None:
        chain_key = inbound_key(share.room_id, share.sender, share.chain_id)
        existing = op.txn.get(INBOUND, chain_key, InboundChain)
        tombstone = op.txn.get(GONE, chain_key, ChainTombstone) if existing is None else None
        installed = ratchet.install_share(
            existing,
            room_id=share.room_id,
            sender=share.sender,
            chain_id=share.chain_id,
            index=share.index,
            ck=share.ck,
            now=now,
            policy=self._policy,
            floor=tombstone.floor if tombstone is not None else 0,
        )
        if tombstone is not None:
            # an old chain come back: it retires nothing, is deleted after the grace
            # window, and counts against the per-sender cap like any retired chain
            installed = msgspec.structs.replace(installed, retired=now)
        op.txn.put(INBOUND, chain_key, installed)
        op.txn.delete(REFUSED, chain_key)
        op.txn.delete(ASKED, chain_key)  # what waited for it is handed in again below
        waiting = op.txn.scan(PENDING, chain_key, PendingMessage)
        if existing is None and tombstone is None and not waiting:
            # a new chain replaces the sender's older ones; one its messages came before
            # (a late share, an answered key request) may be an old chain: it retires none
            for key, older in op.txn.scan(
                INBOUND, inbound_key(share.room_id, share.sender), InboundChain
            ):
                if key != chain_key and older.retired is None:
                    op.txn.put(INBOUND, key, msgspec.structs.replace(older, retired=now))
        self._cap_chains(op, share.room_id, share.sender, chain_key, now)
        op.txn.delete(WAITING, chain_key)
        for key, message in waiting:  # in index order (the key ends with it)
            op.txn.delete(PENDING, key)
            self._receive(op, message.room_id, message.sender, message.body, now, message.seq)

    def _cap_chains(self, op: _Op, room_id: bytes, sender: bytes, keep: bytes, now: int) -> None:
        """Bury the sender's chains beyond ``max_inbound_chains`` (the oldest retired
        first), so a member sharing chain after chain cannot make us hold unbounded
        skipped keys."""
        chains = op.txn.scan(INBOUND, inbound_key(room_id, sender), InboundChain)
        excess = len(chains) - self._policy.max_inbound_chains
        if excess <= 0:
            return
        # retired chains go first, oldest first; then (a chain installed while its
        # messages waited retires none) the oldest installed
        others = [item for item in chains if item[0] != keep]
        others.sort(key=lambda item: (item[1].retired is None, item[1].installed))
        for key, chain in others[:excess]:
            _bury(op.txn, key, chain, now)

    def _answer_request(self, op: _Op, room: RoomRecord, request: KeyRequest, now: int) -> None:
        """Share a chain of ours again, from the index the requester was first given.

        Our current chain goes to any member we share with (lazy sharing would give it
        the same), even if it is due for rotation: the request is for it. A replaced
        chain we still keep goes only to a member that was given it while it was in use
        (so validated then) and that we share with now, at the index it was first given,
        never lower: nothing it could not read before.
        """
        key = request.sender
        chain = op.txn.get(OUTBOUND, room.room_id, OutboundChain)
        current = chain is not None and chain.chain_id == request.chain_id
        if not current:
            chain = op.txn.get(RETAINED, room.room_id + request.chain_id, OutboundChain)
            if (
                chain is None
                or (key not in chain.shared and key != room.peer)
                or now - chain.created >= self._policy.retention
            ):
                return
        record = room.members.get(key)
        state = op.txn.get(LOG, room.room_id, LogState)
        if chain is None or record is None or not self._shareable(room, state, key, record):
            return
        assert record.prekey is not None
        index = chain.shared.get(key, 0 if key == room.peer else chain.index)
        proof, nonce = self._proof_to(room, key)
        share = Share(
            self._me,
            key,
            room.room_id,
            now,
            chain.chain_id,
            index,
            ratchet.chain_key_at(chain, index),
            proof,
            room.epoch,
            nonce,
        )
        self._send(op, key, share, record.prekey)
        if current and key not in chain.shared:
            shared = revised(chain.shared, {key: index})
            op.txn.put(OUTBOUND, room.room_id, msgspec.structs.replace(chain, shared=shared))

    # -- the membership log ------------------------------------------------------------------

    def log_state(self, room_id: bytes) -> LogState | None:
        """What the validated membership log of ``room_id`` says (None: no log yet)."""
        return self._records.get(LOG, room_id, LogState)

    def room_log(self, room_id: bytes) -> list[LogEntry]:
        """Every validated entry of the room's log, oldest first (for a room info view)."""
        return [
            parse_entry(record.wire)
            for _, record in self._records.scan(LOG_ENTRIES, room_id, LogEntryRecord)
        ]

    def log_holds(self, room_id: bytes, wire: bytes) -> bool:
        """Whether our validated log holds ``wire`` (a statement we signed) at its
        position: the relay appended it, whatever it answered."""
        key = log_entry_key(room_id, parse_entry(wire).seq)
        record = self._records.get(LOG_ENTRIES, key, LogEntryRecord)
        return record is not None and hmac.compare_digest(record.wire, wire)

    def room_secret(self, room_id: bytes) -> RoomSecret | None:
        """The room secret of the current epoch as far as we have it (None: open room)."""
        room = self._records.get(ROOMS, room_id, RoomRecord)
        if room is None or room.room_secret is None:
            return None
        return RoomSecret(room.room_secret)

    def apply_log(
        self, room_id: bytes, entries: Iterable[bytes], now: int, start: int | None = None
    ) -> Outcome:
        """Validate and apply log entries from the relay, in order.

        ``start`` is the position the relay says the first entry has: an entry whose own
        position differs (an old entry replayed as new, entries reordered) is rejected.
        Entries we already hold must be byte-identical (else the relay forked the log:
        the room is frozen); the first entry that fails validation is reported and it
        and every later one are ignored. Removals drop the member from our roster and
        rotate our chain; rotations install the new room secret once it has arrived.
        Once the log reaches a position a member's message named (``LogBehind``), our
        hash there must be the one it signed, or the log forked.
        """
        op = _Op(self._records.begin())
        room = self._room(op, room_id)
        state = op.txn.get(LOG, room_id, LogState)

        def join_key_for(current: LogState) -> bytes | None:
            return room.join_key if _holds_current_secret(room, current) else None

        for offset, wire in enumerate(entries):
            position = state.length if state is not None else 0
            try:
                entry = parse_entry(wire)
                if start is not None and entry.seq != start + offset:
                    raise LogError(f"the relay served entry {entry.seq} as entry {start + offset}")
                if state is not None and entry.seq < state.length:
                    if entry.hash != self._hash_at(op, room_id, entry.seq + 1):
                        raise LogForkError(f"the relay showed another entry at {entry.seq}")
                    continue
                proven = state is not None and (not state.secret or join_key_for(state) is not None)
                state, entry = apply_entry(state, wire, join_key_for)
                if entry.kind == Kind.CREATE and state.secret != room.secret:
                    raise CryptoError("the log's access mode differs from the room's")
            except LogForkError as exc:
                room = self._freeze(op, room, str(exc))
                break
            except (CryptoError, LogError) as exc:
                op.events.append(LogRejected(room_id, position, str(exc)))
                break
            op.txn.put(LOG_ENTRIES, log_entry_key(room_id, entry.seq), LogEntryRecord(wire))
            op.events.append(RoomChanged(room_id, entry))
            room = self._after_entry(op, room, state, entry, proven, now)
        if state is not None and room.ahead is not None:
            room = self._settle_claim(op, room, state)
        if state is not None:
            op.txn.put(LOG, room_id, state)
            if state.secret and room.epoch != state.epoch:
                op.events.append(RoomKeyMissing(room_id, state.epoch))
        op.txn.put(ROOMS, room_id, room)
        return op.finish()

    def _settle_claim(self, op: _Op, room: RoomRecord, state: LogState) -> RoomRecord:
        """Check the position a member's message named beyond our log, now that our log
        may have reached it: the same hash there, or the relay forked the log. A claim of
        a member the log has removed since counts no more."""
        claim = room.ahead
        assert claim is not None
        if claim.sender not in state.members:
            return msgspec.structs.replace(room, ahead=None)
        if claim.length > state.length:
            return room
        try:
            compare_head(
                LogHead(claim.length, claim.head),
                state.position,
                lambda n: self._hash_at(op, room.room_id, n),
            )
        except LogForkError as exc:
            room = self._freeze(op, room, str(exc))
        return msgspec.structs.replace(room, ahead=None)

    def log_ahead(self, room_id: bytes) -> LogClaim | None:
        """The longest log a member's message named beyond ours (None: not behind)."""
        room = self._records.get(ROOMS, room_id, RoomRecord)
        return None if room is None else room.ahead

    def _after_entry(
        self, op: _Op, room: RoomRecord, state: LogState, entry: LogEntry, proven: bool, now: int
    ) -> RoomRecord:
        """What an applied entry changes in our own state.

        A join or admit whose tag we checked proves the joiner knows this epoch's secret
        (as a ``join`` envelope does): we validate it and share our chain with it now.
        """
        if entry.kind in TAGGED and proven and entry.subject != self._me:
            record = room.members.get(entry.subject)
            if record is None or not record.validated:
                record = (
                    MemberRecord("", None, announced=False, validated=True)
                    if record is None
                    else msgspec.structs.replace(record, validated=True)
                )
                op.events.append(MemberValidated(room.room_id, entry.subject))
                room = _with_member(room, entry.subject, record)
                op.txn.put(LOG, room.room_id, state)
                self._share_current(op, room, entry.subject, now)
            elif room.secret:
                # validated before the log listed it (its ``join`` envelope came first):
                # the chain we send on now was kept from it until this entry (a chain
                # we gave it before the log started is not that chain)
                outbound = op.txn.get(OUTBOUND, room.room_id, OutboundChain)
                if outbound is not None and entry.subject not in outbound.shared:
                    op.txn.put(LOG, room.room_id, state)
                    self._share_current(op, room, entry.subject, now)
        if entry.kind in (Kind.LEAVE, Kind.REMOVE, Kind.BAN):
            if entry.subject == self._me:
                # not returned at once: a log read again with the invite that let us back
                # in must still move to each later epoch, or our proofs name an old one
                verb = {Kind.LEAVE: "left", Kind.REMOVE: "were kicked", Kind.BAN: "were banned"}
                self._retire_outbound(op, room.room_id)
                reason = f"you {verb[entry.kind]} (log entry {entry.seq})"
                room = msgspec.structs.replace(room, removed=reason)
            else:
                room = self._remove_member(op, room, entry.subject)
        if entry.kind in TAGGED and entry.subject == self._me:
            room = msgspec.structs.replace(room, removed=None)
            op.txn.put(LOG, room.room_id, state)
            for key in [key for key, record in room.members.items() if record.validated]:
                self._share_current(op, room, key, now)  # members we validated meanwhile
        if entry.kind in ROTATING:
            # a new epoch: every sender starts a new chain, shared only with the remaining
            # members; our proofs move to the new secret once we hold it
            self._retire_outbound(op, room.room_id)
            room = self._install_epoch(op, room, state)
        return room

    def _install_epoch(self, op: _Op, room: RoomRecord, state: LogState) -> RoomRecord:
        """Move the room to the log's epoch if we hold the secret its verifier commits to."""
        if not state.secret:
            return msgspec.structs.replace(room, epoch=state.epoch)
        if _holds_current_secret(room, state):
            return msgspec.structs.replace(room, epoch=state.epoch)
        candidate = op.txn.get(ROOM_KEYS, room.room_id + state.verifier, RoomKeyRecord)
        if candidate is None:
            return room
        secret = RoomSecret(candidate.secret)
        op.txn.delete(ROOM_KEYS, room.room_id + state.verifier)
        # shares and key answers for the new epoch were refused while we lacked its
        # secret: the chains still waiting are asked for again at the next ``tick``
        for key, _asked in op.txn.scan(ASKED, room.room_id, KeyAsked):
            op.txn.delete(ASKED, key)
        return msgspec.structs.replace(
            room, epoch=state.epoch, join_key=secret.join_key, room_secret=secret.secret
        )

    def _receive_room_key(self, op: _Op, room: RoomRecord, payload: RoomKey, now: int) -> None:
        """Keep a rotated room secret from a member; install it once the log commits to it."""
        state = op.txn.get(LOG, room.room_id, LogState)
        if state is None or payload.sender not in state.members:
            raise ProofError("a room secret from someone who is not a member")
        if payload.epoch <= room.epoch:
            return  # we already hold this epoch's secret (or a newer one)
        secret = RoomSecret(payload.secret)
        op.txn.put(ROOM_KEYS, room.room_id + secret.verifier, RoomKeyRecord(secret.secret, now))
        if state.epoch == payload.epoch:
            installed = self._install_epoch(op, room, state)
            if installed.epoch != room.epoch:
                op.txn.put(ROOMS, room.room_id, installed)
                op.events.append(RoomKeyInstalled(room.room_id, installed.epoch))
                self._share_again(op, installed, now)

    def _share_again(self, op: _Op, room: RoomRecord, now: int) -> None:
        """Share our chain again, now proven with the epoch's secret, with each member we
        gave it to: a chain we started once the log moved to the epoch but before its
        secret came went out with the old epoch's proof, which members already at the new
        epoch refuse (they would read our messages only once a key request of theirs
        timed out)."""
        outbound = op.txn.get(OUTBOUND, room.room_id, OutboundChain)
        if outbound is None:
            return
        for key in list(outbound.shared):
            self._share_current(op, room, key, now)

    def request_room_key(self, room_id: bytes, now: int) -> Outcome:
        """Ask for the secret of the log's current epoch if we lack it (``RoomKeyMissing``):
        a ``room_key_request`` to the author of the entry that started the epoch and to
        every admin and owner, at most ``MAX_ROOM_KEY_ASKED`` of them. Any that holds the
        secret answers with a ``room_key``; it installs only if the log commits to it."""
        op = _Op(self._records.begin())
        room = op.txn.get(ROOMS, room_id, RoomRecord)
        state = op.txn.get(LOG, room_id, LogState)
        if room is None or state is None or not state.secret or room.epoch == state.epoch:
            return op.finish()
        if room.frozen is not None or self._me not in state.members:
            return op.finish()
        author = self._epoch_author(op, room_id, state)
        ranked = sorted(
            (key for key, role in state.members.items() if role >= Role.ADMIN),
            key=lambda key: -state.members[key],
        )
        asked = [key for key in dict.fromkeys([author, *ranked]) if key != self._me]
        for key in asked[:MAX_ROOM_KEY_ASKED]:
            record = room.members.get(key)
            if key in state.members and record is not None and record.prekey is not None:
                request = RoomKeyRequest(self._me, key, room_id, now, state.epoch)
                self._send(op, key, request, record.prekey)
        return op.finish()

    def _epoch_author(self, op: _Op, room_id: bytes, state: LogState) -> bytes:
        """Who signed the entry that started the log's current epoch."""
        for position in range(state.length - 1, -1, -1):
            record = op.txn.get(LOG_ENTRIES, log_entry_key(room_id, position), LogEntryRecord)
            if record is None:
                break
            entry = parse_entry(record.wire)
            if entry.kind in ROTATING:
                return entry.author
        return self._me

    def _answer_room_key(
        self, op: _Op, room: RoomRecord, request: RoomKeyRequest, now: int
    ) -> None:
        """Give the secret of the current epoch to a member of it that asks: the log, not
        the relay, says who is entitled; a key outside it, or an old epoch, gets nothing."""
        state = op.txn.get(LOG, room.room_id, LogState)
        record = room.members.get(request.sender)
        if (
            state is None
            or request.sender not in state.members
            or request.epoch != state.epoch
            or room.epoch != state.epoch
            or room.room_secret is None
            or room.forked is not None
            or record is None
            or record.prekey is None
        ):
            return
        answer = RoomKey(
            self._me, request.sender, room.room_id, now, state.epoch, room.room_secret, state.salt
        )
        self._send(op, request.sender, answer, record.prekey)

    def _freeze(self, op: _Op, room: RoomRecord, reason: str) -> RoomRecord:
        """Stop sending and sharing in ``room`` (fail closed), saying why."""
        if room.forked is None:
            op.events.append(LogForked(room.room_id, reason))
        self._retire_outbound(op, room.room_id)
        return msgspec.structs.replace(room, forked=reason)

    def _hash_at(self, op: _Op, room_id: bytes, length: int) -> bytes:
        """Our log's head after its first ``length`` entries."""
        if length == 0:
            return NO_HASH
        record = op.txn.get(LOG_ENTRIES, log_entry_key(room_id, length - 1), LogEntryRecord)
        if record is None:
            raise CryptoError("a log entry we validated is missing from the store")
        return entry_hash(record.wire)

    def _compare_head(self, op: _Op, room_id: bytes, sender: bytes, theirs: LogHead) -> None:
        """Check a sender's signed log position against our log; a fork freezes the room.

        A position beyond ours, signed by a member of our log, means entries have not
        reached us (``LogBehind``): it is kept until our log reaches it. Two members
        naming different heads at one position beyond ours is a fork already."""
        state = op.txn.get(LOG, room_id, LogState)
        if state is None:
            return  # we have not fetched the log yet: nothing to compare against
        room = op.txn.get(ROOMS, room_id, RoomRecord)
        try:
            if compare_head(theirs, state.position, lambda n: self._hash_at(op, room_id, n)):
                return
            if room is None or sender not in state.members:
                return  # a key outside our log tells us nothing about it
            claim = room.ahead
            if claim is not None and claim.length == theirs.length:
                if not hmac.compare_digest(claim.head, theirs.head):
                    raise LogForkError(
                        f"two members' messages name different logs at position {theirs.length}"
                    )
            elif claim is None or theirs.length > claim.length:
                claim = LogClaim(sender, theirs.length, theirs.head)
                op.txn.put(ROOMS, room_id, msgspec.structs.replace(room, ahead=claim))
            op.events.append(LogBehind(room_id, sender, state.length, theirs.length))
        except LogForkError as exc:
            if room is not None:
                op.txn.put(ROOMS, room_id, self._freeze(op, room, str(exc)))
            raise

    def create_log(
        self, room_id: bytes, now: int, *, description: str = "", salt: bytes = b""
    ) -> LogStatement:
        """The first entry of a new room's log: we are its owner. ``salt``: password rooms."""
        return self._author(room_id, Kind.CREATE, now, description=description, salt=salt)

    def join_log(self, room_id: bytes, now: int) -> LogStatement:
        """Our ``join`` entry (tagged with the current epoch's secret in a secret room)."""
        return self._author(room_id, Kind.JOIN, now)

    def leave_log(self, room_id: bytes, now: int) -> LogStatement:
        """Our ``leave`` entry."""
        return self._author(room_id, Kind.LEAVE, now)

    def kick(self, room_id: bytes, member: bytes, now: int) -> LogStatement:
        """Remove ``member`` (admins and owners): a new epoch with a new random secret."""
        return self._author(room_id, Kind.REMOVE, now, subject=member)

    def ban(self, room_id: bytes, member: bytes, now: int) -> LogStatement:
        """Remove ``member`` and refuse its joins until an admin admits it again."""
        return self._author(room_id, Kind.BAN, now, subject=member)

    def admit(self, room_id: bytes, member: bytes, now: int) -> LogStatement:
        """Let ``member`` in (admins and owners): lifts its ban. It still needs the
        current secret (a new invite or password) to enter through the relay."""
        return self._author(room_id, Kind.ADMIT, now, subject=member)

    def set_role(self, room_id: bytes, member: bytes, role: Role, now: int) -> LogStatement:
        """Appoint (``Role.ADMIN``) or demote (``Role.MEMBER``) ``member`` (owners only)."""
        return self._author(room_id, Kind.ROLE, now, subject=member, role=role)

    def rotate_secret(
        self, room_id: bytes, now: int, *, secret: RoomSecret | None = None, salt: bytes = b""
    ) -> LogStatement:
        """A new epoch with ``secret`` (a new password's, with its ``salt``) or a random
        one (revoking every invite): shared only with the remaining members."""
        return self._author(room_id, Kind.ROTATE, now, secret=secret, salt=salt)

    def describe(self, room_id: bytes, description: str, now: int) -> LogStatement:
        """Set the room's description (admins and owners)."""
        return self._author(room_id, Kind.DESCRIBE, now, description=description)

    def _author(
        self,
        room_id: bytes,
        kind: Kind,
        now: int,
        *,
        subject: bytes | None = None,
        role: Role = Role.MEMBER,
        description: str = "",
        secret: RoomSecret | None = None,
        salt: bytes = b"",
    ) -> LogStatement:
        """Sign a statement at the head of our log, after checking it as every member will.

        Nothing changes here: the entry takes effect when the relay echoes it and
        ``apply_log`` validates it; an entry the rules refuse raises (``AuthorityError``
        says which role is missing) before anything is signed away.
        """
        op = _Op(self._records.begin())
        room = self._room(op, room_id)
        if room.forked is not None:
            raise CryptoError(f"the room is frozen: {room.forked}")
        if room.removed is not None and kind != Kind.JOIN:
            raise CryptoError(f"you are not a member of this room: {room.removed}")
        state = op.txn.get(LOG, room_id, LogState)
        if (state is None) != (kind == Kind.CREATE):
            raise CryptoError("the room has a log already" if state else "the room has no log")
        position = state.position if state is not None else LogHead(0, NO_HASH)
        epoch = state.epoch if state is not None else 0
        verifier = NO_VERIFIER
        rotating = kind in ROTATING
        if kind == Kind.CREATE:
            secret = RoomSecret(room.room_secret) if room.room_secret is not None else None
        elif rotating:
            epoch += 1
            if room.secret:
                secret = secret or RoomSecret.generate()
        if rotating and secret is not None:
            verifier = secret.verifier
        join_key = None
        if kind in TAGGED and state is not None and state.secret:
            if not _holds_current_secret(room, state):
                raise ProofError(
                    "our room secret does not match the room's log: the room secret was"
                    " changed and the old password or invite no longer works, or the relay"
                    " withholds the log's newest changes"
                )
            join_key = room.join_key
        wire = encode_entry(
            self._identity.sign,
            kind=kind,
            room_id=room_id,
            seq=position.length,
            prev=position.head,
            author=self._me,
            created=now,
            subject=subject if subject is not None else self._me,
            role=Role.OWNER if kind == Kind.CREATE else role,
            epoch=epoch,
            verifier=verifier,
            salt=salt,
            description=description,
            join_key=join_key,
        )
        apply_entry(state, wire, lambda _state: join_key)
        directs: list[OutgoingDirect] = []
        if rotating and kind != Kind.CREATE and secret is not None and state is not None:
            op.txn.put(ROOM_KEYS, room_id + secret.verifier, RoomKeyRecord(secret.secret, now))
            for key in state.members:
                record = room.members.get(key)
                if key in (self._me, subject) or record is None or record.prekey is None:
                    continue
                room_key = RoomKey(self._me, key, room_id, now, epoch, secret.secret, salt)
                directs.append(
                    OutgoingDirect(key, seal_direct(self._identity.sign, room_key, record.prekey))
                )
        op.finish()
        return LogStatement(wire, directs, secret if rotating and kind != Kind.CREATE else None)

    # -- housekeeping -------------------------------------------------------------------------

    def tick(self, now: int) -> Outcome:
        """Periodic work (call every few seconds): prekey rotation, key requests for
        messages still waiting, expiry of old chains, skipped keys and pending messages."""
        op = _Op(self._records.begin())
        self._maintain_prekeys(op, now)
        policy = self._policy
        overdue: list[bytes] = []
        """Chains whose oldest message waits past the timeout."""
        for chain_key, waiting in op.txn.scan(WAITING, b"", WaitingChain):
            if waiting.since > now:
                # our clock was set back (it was ahead): wait afresh from now, not for
                # the clock to catch up with it
                waiting = msgspec.structs.replace(waiting, since=now)
                op.txn.put(WAITING, chain_key, waiting)
            if now - waiting.since >= policy.pending_expiry:
                left = self._expire_waiting(op, chain_key, waiting, now)
                if left is None:
                    continue
                waiting = left
            if now - waiting.since < policy.pending_timeout:
                continue
            overdue.append(chain_key)
            if not waiting.reported:
                self._report_waiting(op, chain_key, self._waiting_reason(op, chain_key))
                op.txn.put(WAITING, chain_key, msgspec.structs.replace(waiting, reported=True))
        self._ask_again(op, overdue, now)
        for key, inbound in op.txn.scan(INBOUND, b"", InboundChain):
            if inbound.retired is not None and now - inbound.retired >= policy.inbound_grace:
                _bury(op.txn, key, inbound, now)
            else:
                expired = ratchet.expire_skipped(inbound, now, policy)
                if expired is not inbound:
                    op.txn.put(INBOUND, key, expired)
        for key, kept in op.txn.scan(RETAINED, b"", OutboundChain):
            if now - kept.created >= policy.retention:
                op.txn.delete(RETAINED, key)
        # a tombstone outlives every share of its chain that could still be accepted: the
        # owner re-shares a chain for at most its retention, and a share stays fresh MAX_AGE
        lifetime = policy.retention + MAX_AGE_MS + MAX_SKEW_MS
        for key, tombstone in op.txn.scan(GONE, b"", ChainTombstone):
            if tombstone.deleted is None:
                op.txn.put(GONE, key, msgspec.structs.replace(tombstone, deleted=now))
            elif now - tombstone.deleted >= lifetime:
                op.txn.delete(GONE, key)
        # a nonce need only be remembered while an envelope carrying it is still fresh
        for key, seen in op.txn.scan(SEEN, b"", SeenNonce):
            if now - seen.received >= MAX_AGE_MS + MAX_SKEW_MS:
                op.txn.delete(SEEN, key)
        for key, refusal in op.txn.scan(REFUSED, b"", RefusedShare):
            if now - refusal.received >= MAX_AGE_MS + MAX_SKEW_MS:
                op.txn.delete(REFUSED, key)
        for key, candidate in op.txn.scan(ROOM_KEYS, b"", RoomKeyRecord):
            if now - candidate.received >= MAX_AGE_MS + MAX_SKEW_MS:
                op.txn.delete(ROOM_KEYS, key)
        for key, invite in op.txn.scan(INVITES, b"", InviteRecord):
            if invite.followed and now - invite.received >= MAX_AGE_MS + MAX_SKEW_MS:
                op.txn.delete(INVITES, key)
        return op.finish()

    def _expire_waiting(
        self, op: _Op, chain_key: bytes, waiting: WaitingChain, now: int
    ) -> WaitingChain | None:
        """Drop the messages of a chain that waited ``pending_expiry``; the chain's
        record for those left (None: none is)."""
        left: list[int] = []
        for key, message in op.txn.scan(PENDING, chain_key, PendingMessage):
            if now - message.received >= self._policy.pending_expiry:
                op.txn.delete(PENDING, key)
            else:
                left.append(message.received)
        if not left:
            op.txn.delete(WAITING, chain_key)
            return None
        since = min(*left, now)  # (one from "the future": our clock was set back)
        updated = msgspec.structs.replace(waiting, since=since, count=len(left))
        op.txn.put(WAITING, chain_key, updated)
        return updated

    def _ask_again(self, op: _Op, overdue: list[bytes], now: int) -> None:
        """Ask the owner of each overdue chain for it: at once, then again after twice
        the previous wait (up to ``max_request_interval``), for as long as messages wait.
        A request or its answer may be lost or refused (a clock that was off and is
        right again): the messages still follow when the key does."""
        waiting = set(overdue)
        for chain_key, _asked in op.txn.scan(ASKED, b"", KeyAsked):
            if chain_key not in waiting:
                op.txn.delete(ASKED, chain_key)
        for chain_key in overdue:
            asked = op.txn.get(ASKED, chain_key, KeyAsked)
            if asked is not None and asked.at <= now:  # (later: our clock was set back)
                wait = self._policy.pending_timeout << asked.times
                if now - asked.at < min(wait, self._policy.max_request_interval):
                    continue
            self._request_key(op, *split_chain_key(chain_key), now)
            op.txn.put(ASKED, chain_key, KeyAsked(now, 1 if asked is None else asked.times + 1))

    def member_online(self, key: bytes, now: int) -> Outcome:
        """A member came online (the relay's presence): ask it at once for the chains of
        its that messages still wait for, rather than at the next doubled wait. An owner
        that was offline, or ran with a clock that was off and restarted with it set
        right, answers now. Asked at most once per ``pending_timeout`` a chain, however
        often its presence comes."""
        op = _Op(self._records.begin())
        for chain_key, asked in op.txn.scan(ASKED, b"", KeyAsked):
            room_id, sender, chain_id = split_chain_key(chain_key)
            if sender != key or 0 <= now - asked.at < self._policy.pending_timeout:
                continue
            self._request_key(op, room_id, sender, chain_id, now)
            op.txn.put(ASKED, chain_key, KeyAsked(now, asked.times))
        return op.finish()

    def _request_key(
        self, op: _Op, room_id: bytes, sender: bytes, chain_id: bytes, now: int
    ) -> None:
        room = op.txn.get(ROOMS, room_id, RoomRecord)
        record = room.members.get(sender) if room is not None else None
        if room is None or record is None or record.prekey is None:
            return
        proof, nonce = self._proof_to(room, sender)
        request = KeyRequest(
            self._me, sender, room.room_id, now, chain_id, proof, room.epoch, nonce
        )
        self._send(op, sender, request, record.prekey)


MAX_ROOM_KEY_ASKED = 8
"""Members a ``room_key_request`` goes to at once (the epoch's author first)."""


class _AheadOfLogError(ProofError):
    """The envelope is ahead of our copy of the room's log (its sender is not in it yet,
    or its proof names a later epoch): nothing of it is kept here, and the caller may
    hand it in again once the log has grown."""

    def __init__(self, room_id: bytes, reason: str) -> None:
        super().__init__(reason)
        self.room_id = room_id


class _DuplicateEnvelopeError(ReplayError):
    """A direct envelope whose proof nonce was already accepted from its sender."""


def _same_key(first: bytes | None, second: bytes | None) -> bool:
    """Whether two optional secret keys are equal (constant time when both are set)."""
    if first is None or second is None:
        return first is second
    return hmac.compare_digest(first, second)


def _bury(txn: Txn, key: bytes, chain: InboundChain, now: int | None) -> None:
    """Delete an inbound chain, leaving a tombstone of the indices it consumed."""
    floor = chain.next
    previous = txn.get(GONE, key, ChainTombstone)
    if previous is not None:
        floor = max(floor, previous.floor)
    txn.put(GONE, key, ChainTombstone(floor, now))
    txn.delete(INBOUND, key)


def _forget_retained(txn: Txn, room_id: bytes) -> None:
    """Delete our replaced chains of a room (we left it, or it is another room now)."""
    for key, _ in txn.scan(RETAINED, room_id, OutboundChain):
        txn.delete(RETAINED, key)


def _bury_room_chains(txn: Txn, room_id: bytes, now: int | None) -> None:
    """Delete every inbound chain of a room, leaving tombstones."""
    for key, chain in txn.scan(INBOUND, room_id, InboundChain):
        _bury(txn, key, chain, now)


def _with_member(room: RoomRecord, key: bytes, record: MemberRecord) -> RoomRecord:
    return msgspec.structs.replace(room, members=revised(room.members, {key: record}))


def _holds_current_secret(room: RoomRecord, log: LogState) -> bool:
    """Whether the room secret we hold is the one the log's verifier commits to now (not
    one the log rotated away from, nor none)."""
    return room.room_secret is not None and RoomSecret(room.room_secret).verifier == log.verifier
