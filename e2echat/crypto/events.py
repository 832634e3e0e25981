"""What the room-session layer reports back: values, never actions it performs itself.

``Outcome`` is the return of every ``CryptoSession`` operation: direct envelopes to send
(BEFORE any room body of the same call), decrypted messages, events for the user
interface, and a prekey to publish. None of these hold secret material.
"""

from dataclasses import dataclass, field

from e2echat.crypto.payload import Received, message_id
from e2echat.crypto.prekeys import SignedPrekey
from e2echat.crypto.roomlog import LogEntry
from e2echat.crypto.roomsecret import RoomSecret


@dataclass(frozen=True, slots=True)
class OutgoingDirect:
    """Send ``body`` as a ``direct`` frame to ``recipient`` (an identity key)."""

    recipient: bytes
    body: bytes

    def __repr__(self) -> str:
        return (
            f"OutgoingDirect(recipient={self.recipient.hex()[:16]}, body=<{len(self.body)} bytes>)"
        )


@dataclass(frozen=True, slots=True)
class Decrypted:
    """A verified, decrypted room message; ``seq`` is the relay's, passed in on receipt."""

    room_id: bytes
    sender: bytes
    seq: int
    chain_id: bytes
    index: int
    payload: Received
    digest: bytes = field(default=b"", compare=False)
    """``message.body_digest`` of the body that decrypted."""

    @property
    def message_id(self) -> bytes:
        """The name edits, deletes, replies and reactions use for this message: its
        replay identity (docs/crypto.md section 8.3)."""
        return message_id(self.sender, self.chain_id, self.index)


@dataclass(frozen=True, slots=True)
class MemberValidated:
    """We now share keys with ``member`` in ``room_id`` (proof checked, or open room)."""

    room_id: bytes
    member: bytes


@dataclass(frozen=True, slots=True)
class MemberUnverified:
    """The relay announced ``member`` but it is not validated: no keys are shared."""

    room_id: bytes
    member: bytes
    reason: str


@dataclass(frozen=True, slots=True)
class NameChanged:
    """``key`` signed a new display name (``previous`` is None for a key first seen so)."""

    key: bytes
    previous: str | None
    name: str


@dataclass(frozen=True, slots=True)
class SuccessorAccepted:
    """A checked successor statement: ``new`` replaces ``old``.

    ``carried``: the old key was verified, so the new one is now verified too.
    """

    old: bytes
    new: bytes
    carried: bool


@dataclass(frozen=True, slots=True)
class StatementRejected:
    """A name or successor statement that failed a check; nothing was recorded."""

    key: bytes
    reason: str


@dataclass(frozen=True, slots=True)
class MessageDeferred:
    """A valid-looking message whose key has not arrived: buffered and retried."""

    room_id: bytes
    sender: bytes
    seq: int


@dataclass(frozen=True, slots=True)
class Undecryptable:
    """A message that cannot be decrypted (yet): show "cannot decrypt" with ``reason``."""

    room_id: bytes
    sender: bytes
    seq: int
    reason: str
    waiting: bool = False
    """The message is kept: it is decrypted as soon as its key arrives."""


@dataclass(frozen=True, slots=True)
class ReplayRejected:
    """A message whose (sender, chain, index) was already received."""

    room_id: bytes
    sender: bytes
    seq: int
    digest: bytes = field(default=b"", compare=False)
    """``message.body_digest`` of the rejected body: equal to a delivered message's
    digest exactly when this is a byte-identical copy of it."""


@dataclass(frozen=True, slots=True)
class MessageRejected:
    """A room body that failed a check (layout, signature, AEAD, payload, room, sender)."""

    room_id: bytes
    sender: bytes
    seq: int
    reason: str


@dataclass(frozen=True, slots=True)
class DirectRejected:
    """A direct envelope that failed a check."""

    sender: bytes
    reason: str


@dataclass(frozen=True, slots=True)
class DirectForUnknownRoom:
    """A direct envelope that checked, for a room we are not in: it may have overtaken
    our entering the room, so the caller keeps ``body`` and hands it in again then."""

    sender: bytes
    room_id: bytes
    body: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class DirectAheadOfLog:
    """A direct envelope from a sender our copy of the room's membership log does not
    list yet: its ``join`` entry may still be on its way (the share overtook the log
    push), so the caller keeps ``body`` and hands it in again once the log has grown."""

    sender: bytes
    room_id: bytes
    body: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class DirectInvited:
    """``sender`` invites us to a direct conversation: the secret room ``name`` of id
    ``room_id`` whose room secret is ``secret`` (checked: signed by ``sender``, sealed
    to us). The caller joins it, and enters it only if the relay's room has that id."""

    sender: bytes
    room_id: bytes
    name: str
    secret: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class RoomChanged:
    """A membership-log entry was validated and applied: ``entry`` says who did what.

    Kinds: create, join, admit, leave, remove (kick), ban, role, rotate (secret
    changed: new password or invites revoked), describe. Public data only.
    """

    room_id: bytes
    entry: LogEntry


@dataclass(frozen=True, slots=True)
class LogRejected:
    """A log entry from the relay failed validation; it and every later entry are ignored."""

    room_id: bytes
    position: int
    reason: str


@dataclass(frozen=True, slots=True)
class LogForked:
    """The relay showed us a log that differs from another member's (or from what it
    showed us before): the room is frozen, nothing more is sent or shared in it."""

    room_id: bytes
    reason: str


@dataclass(frozen=True, slots=True)
class LogBehind:
    """A message ``sender`` signed names a membership log of ``named`` entries; we hold
    ``held``. Entries are missing (the relay dropped or withholds them): fetch the log.
    Until it reaches ``named`` nothing should be sent in the room (it might go to a
    member the missing entries removed)."""

    room_id: bytes
    sender: bytes
    held: int
    named: int


@dataclass(frozen=True, slots=True)
class RoomKeyMissing:
    """The log rotated the room secret to ``epoch`` and its secret has not reached us
    yet: proofs of other members will not check until it arrives."""

    room_id: bytes
    epoch: int


@dataclass(frozen=True, slots=True)
class RoomKeyInstalled:
    """The secret of ``epoch`` came after the log had moved to it and is ours now: the
    room's invite and our proofs use it from here on."""

    room_id: bytes
    epoch: int


Event = (
    MemberValidated
    | MemberUnverified
    | MessageDeferred
    | Undecryptable
    | ReplayRejected
    | MessageRejected
    | DirectRejected
    | DirectForUnknownRoom
    | DirectAheadOfLog
    | DirectInvited
    | RoomChanged
    | LogRejected
    | LogForked
    | LogBehind
    | RoomKeyMissing
    | RoomKeyInstalled
)


@dataclass(frozen=True, slots=True)
class Outcome:
    """Everything one operation asks the caller to do or show."""

    directs: list[OutgoingDirect] = field(default_factory=list)
    messages: list[Decrypted] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    publish_prekey: SignedPrekey | None = None
    """A new signed prekey to send to the relay in a ``prekey`` frame."""


@dataclass(frozen=True, slots=True)
class LogStatement:
    """A membership-log entry we signed: send ``entry`` to the relay to append, then the
    ``directs`` (the new room secret, sealed to each remaining member, for rotations).

    ``secret`` is the new room secret of a rotation (for a new invite), else None.
    """

    entry: bytes
    directs: list[OutgoingDirect]
    secret: RoomSecret | None = None

    def __repr__(self) -> str:
        return f"LogStatement(entry=<{len(self.entry)} bytes>, directs={len(self.directs)})"


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A room message ready to send: send every direct in ``directs`` first, then ``body``."""

    directs: list[OutgoingDirect]
    body: bytes

    def __repr__(self) -> str:
        return f"Outgoing(directs={len(self.directs)}, body=<{len(self.body)} bytes>)"
