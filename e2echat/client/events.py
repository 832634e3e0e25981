"""Events: everything besides messages that an application may want to show.

Each is a frozen dataclass deriving from ``Event``, so a handler can ``match`` on them.
Events about one room derive from ``RoomEvent``: like ``Message`` they are generic in
``room`` (the engine names the room by id, the client binds the ``Room`` handle before
publishing, see ``models``), so a new kind of room event needs no code in the client.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic

from e2echat.client.models import ConnectionState, Member, Message, R
from e2echat.crypto.direct import duration_text


@dataclass(frozen=True)
class Event:
    """Base class of every event."""


@dataclass(frozen=True)
class RoomEvent(Event, Generic[R]):
    """Base class of the events about one room."""

    room: R


@dataclass(frozen=True)
class ConnectionChanged(Event):
    """The connection moved to ``state``; ``detail`` says why when there is a reason."""

    state: ConnectionState
    detail: str | None


@dataclass(frozen=True)
class MemberJoined(RoomEvent[R]):
    """The relay announced a new member (a secret room shares keys only once it proves)."""

    member: Member


@dataclass(frozen=True)
class MemberValidated(RoomEvent[R]):
    """We now share our keys with ``member``: it proved it knows the room secret (or the
    room is open). Messages we send from now on are readable by it."""

    member: Member


@dataclass(frozen=True)
class MemberLeft(RoomEvent[R]):
    """A member left the room; we stopped sharing keys with it and rotated."""

    member: Member


@dataclass(frozen=True)
class PresenceChanged(Event):
    """A user who shares a room with us changed status."""

    member: Member


@dataclass(frozen=True)
class ConnectionReplaced(Event):
    """Our identity connected from another place (another terminal, a bot) and the relay
    handed the connection over to it. This client is now closed and does not reconnect
    on its own: connect it again to take the identity back (which closes the other)."""

    reason: str


@dataclass(frozen=True)
class MemberRenamed(Event):
    """A key we share a room with signed a new display name (``member.name``); the
    relay announced it to every room the key is in. ``previous`` is the name before."""

    member: Member
    previous: str | None


@dataclass(frozen=True)
class SuccessorAnnounced(RoomEvent[R]):
    """``member``'s key named ``successor`` as its new key, in a statement both keys
    signed (``e2echat identity rotate``). ``carried`` is True when the user had verified
    the old key: the new key is verified now (and has its petname); otherwise the new
    key is known to be the same person's, unverified."""

    member: Member
    successor: bytes = field(repr=False)
    carried: bool


@dataclass(frozen=True)
class Undecryptable(RoomEvent[R]):
    """A room message that was rejected or cannot be read: ``reason`` says why.

    ``waiting``: the message is kept and reaches ``messages()`` as soon as its key
    arrives (a late or refused key share, asked for again); otherwise it never will
    (altered, forged, a replay, sent before we joined)."""

    sender: Member | None
    seq: int
    reason: str
    waiting: bool = False


@dataclass(frozen=True)
class CatchingUp(RoomEvent[R]):
    """``room`` is fetching what it missed while we were away: ``done`` of ``total``
    room seqs, counted from the last one processed to ``seq``, the room's latest when
    we connected (an upper bound of the messages: retention may have deleted some). It
    comes when the catch-up starts, after each page the relay sends, and once more when
    it ends, with ``done == total``. A room with nothing to catch up sends none.
    Every message of the catch-up has a seq from ``seq - total + 1`` to ``seq``."""

    done: int
    total: int
    seq: int

    @property
    def finished(self) -> bool:
        return self.done >= self.total


@dataclass(frozen=True)
class ClockSkewed(Event):
    """Our clock differs from the relay's by ``offset_ms`` (ours minus the relay's),
    more than the 10 minutes key shares tolerate: members whose clocks are right will
    refuse our key shares, and we theirs, until the clock is set right. Reported at
    connect, from the relay's ``welcome`` time (only a warning: nothing is decided by
    the relay's time)."""

    offset_ms: int

    @property
    def text(self) -> str:
        """The warning for a person."""
        side = "ahead of" if self.offset_ms > 0 else "behind"
        return (
            f"This computer's clock is {duration_text(abs(self.offset_ms))} {side} the"
            " relay's: key shares to and from"
            " members will be refused until it is set right."
        )


@dataclass(frozen=True)
class RoomJoined(RoomEvent[R]):
    """We are now a member of ``room`` (created or joined; rooms restored from the store
    are in ``Client.rooms`` as soon as the client is connected)."""


@dataclass(frozen=True)
class RoomLeft(RoomEvent[R]):
    """We left ``room``."""


@dataclass(frozen=True)
class SecretArrived(RoomEvent[R]):
    """The secret of ``epoch``, which another member's kick, ban or new secret started,
    reached this device after the change itself: ``room.invite()`` gives the new invite
    from now on (before, it raised ``SecretPending``)."""

    epoch: int


@dataclass(frozen=True)
class DirectStarted(RoomEvent[R]):
    """``peer`` started a direct conversation with us (``Client.direct`` on its side):
    ``room`` is it, a secret room of our two keys (``room.peer``), already joined."""

    peer: Member


@dataclass(frozen=True)
class RoomLost(RoomLeft[R]):
    """The relay no longer lists us in ``room`` at connect, and sent no notice that its
    operator deleted it: it lost its data, or this identity left the room from another
    place. The room's keys and history are gone from this device;
    ``Client(rejoin=True)`` (the default of ``e2echat.run``) joins it again, or creates
    it again as it was, and logs both steps at INFO."""


@dataclass(frozen=True)
class RoomDeleted(RoomLeft[R]):
    """The relay says its operator deleted ``room`` (``reason`` is the operator's text,
    as the relay sent it): its history is gone from the relay and its name is free. Live,
    or at the first connect after it (the relay keeps a notice for every member). The
    room's keys and history are gone from this device too. Not a `RoomLost`: ``rejoin``
    does not create it again."""

    reason: str


@dataclass(frozen=True)
class Notice(Event):
    """A readable message for the user: a relay error that answered no request, etc."""

    text: str


@dataclass(frozen=True)
class MessageEdited(RoomEvent[R]):
    """``message`` (as it is now: newest text, ``edited``) was edited by its sender."""

    message: Message[R]


@dataclass(frozen=True)
class MessageSent(RoomEvent[R]):
    """The relay stored our ``message`` (now with its ``seq`` and ``id``).
    ``message.send_id`` names the message ``send`` returned for it: if that one had
    ``seq`` 0 (sent offline, or not confirmed in time), it is sent now."""

    message: Message[R]


@dataclass(frozen=True)
class SendFailed(RoomEvent[R]):
    """Our message, edit, delete or reaction ``send_id`` (``Message.send_id`` of what
    ``send`` returned) will never be sent, for ``reason``: the relay refused it in a way
    no resend can cure, it could not be encrypted, or its room is gone from here (we
    left it, or the relay lost or deleted it) first. It is out of the outbox."""

    send_id: int
    reason: str

    @property
    def text(self) -> str:
        """The failure in words, for a person."""
        return f"A message could not be sent: {self.reason}"


@dataclass(frozen=True)
class MessageDeleted(RoomEvent[R]):
    """The message ``message_id`` (at ``seq``, 0 if it is not here) was deleted by its
    sender; its text is gone from this device."""

    message_id: bytes = field(repr=False)  # raw bytes: out of the repr, as every key and id
    seq: int


@dataclass(frozen=True)
class ReactionsChanged(RoomEvent[R]):
    """The reactions under ``message`` changed (``message.reactions`` holds them now)."""

    message: Message[R]
    member: Member
    emoji: str
    added: bool


@dataclass(frozen=True)
class TypingChanged(RoomEvent[R]):
    """``member`` started or stopped typing. Show it for 6 seconds at
    most unless it is repeated: a client that went away never says it stopped."""

    member: Member
    typing: bool


@dataclass(frozen=True)
class ReadReceipt(RoomEvent[R]):
    """``member`` read the room up to the message ``message_id`` (a receipt its user
    chose to send: they are off by default)."""

    member: Member
    message_id: bytes = field(repr=False)  # raw bytes: out of the repr, as every key and id


@dataclass(frozen=True)
class UnreadChanged(RoomEvent[R]):
    """The room's unread or mention count or its read marker moved (``room.unread``,
    ``room.mentions`` and ``room.read_seq`` hold the same values): a message from
    someone else arrived past the marker, an unread one was deleted, or the marker was
    moved (``room.mark_read``). One event per room for a batch of frames, after the
    batch's messages, so a catch-up of thousands of messages is a handful of events."""

    unread: int
    mentions: int
    read_seq: int


ROLE_CHANGE_WORDS = {"admin": "made {subject} an admin", "member": "made {subject} a member"}
_CHANGE_WORDS = {
    "create": "created the room",
    "join": "joined",
    "admit": "let {subject} in (ban lifted)",
    "leave": "left",
    "kick": "kicked {subject}",
    "ban": "banned {subject}",
    "rotate": "changed the room secret (old password and invites no longer work)",
    "describe": "set the description",
}


@dataclass(frozen=True)
class RoomChanged(RoomEvent[R]):
    """A change of the room's membership log, signed by ``author`` and checked by this
    client against the rules (the relay decides nothing): ``kind`` is "create", "join",
    "admit" (a ban lifted), "leave", "kick", "ban", "role" (``role`` is "admin" or
    "member"), "rotate" (a new password or revoked invites) or "describe"
    (``description``). Kicks, bans and rotations start epoch ``epoch``.

    ``position`` is the entry's place in the log; ``created`` the author's time (ms).
    """

    kind: str
    author: Member
    subject: Member | None
    role: str | None
    epoch: int
    description: str | None
    position: int
    created: int

    @property
    def text(self) -> str:
        """The change in words, for a person ("alice kicked carol")."""
        return self.describe(lambda member: member.display_name)

    def describe(self, name: Callable[[Member], str]) -> str:
        """The change in words with members named by ``name`` (an app tags namesakes)."""
        subject = name(self.subject) if self.subject is not None else ""
        if self.kind == "role":
            words = ROLE_CHANGE_WORDS.get(self.role or "", "changed the role of {subject}")
        else:
            words = _CHANGE_WORDS.get(self.kind, self.kind)
        return f"{name(self.author)} {words.format(subject=subject)}"


@dataclass(frozen=True)
class LogBehind(RoomEvent[R]):
    """A message ``member`` signed names a membership log of ``named`` entries and this
    client holds ``held``: changes of the room have not reached us (a relay dropping or
    withholding them). The client fetches them, and until they come nothing is sent in
    the room (it could reach someone a missing entry removed). ``withheld``: the relay
    was asked for them and did not serve them."""

    member: Member
    held: int
    named: int
    withheld: bool

    @property
    def text(self) -> str:
        """The lag in words, for a person."""
        name = self.member.display_name
        if self.withheld:
            return (
                f"The relay withholds changes of this room: {name}'s message names"
                f" {self.named} membership changes, the relay serves {self.held}."
                " Nothing is sent here until they arrive."
            )
        return (
            f"{name}'s message names {self.named} membership changes of this room and"
            f" {self.held} reached us: fetching the rest."
        )


@dataclass(frozen=True)
class RoomFrozen(RoomEvent[R]):
    """The relay showed us a membership log that differs from another member's (or from
    what it showed us before): nothing more is sent or shared in ``room``, and its
    messages are refused. ``reason`` says where the histories part."""

    reason: str
