"""Every frame of protocol v1 as a msgspec Struct.

Each direction is one tagged union on ``"type"``; structs forbid unknown fields and every
value is bounded, so decoding a frame is also validating it. Bytes travel as standard
base64 with padding. The JSON key ``from`` is the attribute ``sender`` (a Python keyword).
"""

from typing import Annotated, Literal

import msgspec

from e2echat.protocol import constants as c
from e2echat.protocol.constants import ErrorCode
from e2echat.protocol.errors import ProtocolError
from e2echat.protocol.names import validate_display_text, validate_room_name, validate_user_name
from e2echat.protocol.statements import (
    MAX_NAME_STATEMENT,
    MIN_NAME_STATEMENT,
    split_name_statement,
)


def _exact_bytes(size: int) -> msgspec.Meta:
    return msgspec.Meta(min_length=size, max_length=size)


PublicKey = Annotated[bytes, _exact_bytes(c.KEY_BYTES)]
Signature = Annotated[bytes, _exact_bytes(c.SIG_BYTES)]
RoomId = Annotated[bytes, _exact_bytes(c.ROOM_ID_BYTES)]
NameStatement = Annotated[
    bytes, msgspec.Meta(min_length=MIN_NAME_STATEMENT, max_length=MAX_NAME_STATEMENT)
]
Salt = Annotated[bytes, _exact_bytes(c.SALT_BYTES)]
Body = Annotated[bytes, msgspec.Meta(min_length=1, max_length=c.MAX_BODY)]
SignalBody = Annotated[bytes, msgspec.Meta(min_length=1, max_length=c.MAX_SIGNAL_BODY)]
Seq = Annotated[int, msgspec.Meta(ge=0, le=c.MAX_SEQ)]
Timestamp = Annotated[int, msgspec.Meta(ge=0, le=c.MAX_SEQ)]
RequestId = Annotated[str, msgspec.Meta(min_length=1, max_length=c.MAX_REQUEST_ID_CHARS)]
UserName = Annotated[str, msgspec.Meta(max_length=c.MAX_NAME_CHARS)]
RegistrationToken = Annotated[
    str, msgspec.Meta(min_length=16, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
]
"""A token made by the relay's operator to register a new key (docs/server.md, "Access control")."""
RoomName = Annotated[str, msgspec.Meta(max_length=c.MAX_ROOM_NAME_CHARS)]
Description = Annotated[str, msgspec.Meta(max_length=c.MAX_DESCRIPTION_CHARS)]
StatusText = Annotated[str, msgspec.Meta(max_length=c.MAX_STATUS_TEXT_CHARS)]
MaxMembers = Annotated[int, msgspec.Meta(ge=2, le=c.MAX_MEMBERS_CAP)]
Count = Annotated[int, msgspec.Meta(ge=0, le=c.MAX_SEQ)]
BlobId = Annotated[bytes, _exact_bytes(c.BLOB_ID_BYTES)]
BlobSize = Annotated[int, msgspec.Meta(ge=0, le=c.MAX_BLOB_SIZE)]
AccessKind = Literal["open", "secret"]
Status = Literal["online", "away", "busy"]
Presence_ = Literal["online", "away", "busy", "offline"]


class _Frame(msgspec.Struct, tag_field="type", forbid_unknown_fields=True, omit_defaults=True):
    """Base of every frame: tagged on ``type``, strict about fields."""


class _Value(msgspec.Struct, forbid_unknown_fields=True):
    """Base of the structured values that frames carry."""


# Shared values -------------------------------------------------------------------


class SignedPrekey(_Value):
    """An X25519 prekey, signed by the identity over ``prekey_transcript(id, key)``."""

    id: Annotated[int, msgspec.Meta(ge=0, le=c.MAX_PREKEY_ID)]
    key: PublicKey
    sig: Signature


class User(_Value):
    key: PublicKey
    name: UserName

    def __post_init__(self) -> None:
        validate_user_name(self.name)


def _check_statement(name: str, statement: bytes | None) -> None:
    """A name statement, if present, must be well formed and name exactly ``name``."""
    if statement is not None and split_name_statement(statement)[2] != name:
        raise ProtocolError(ErrorCode.BAD_FRAME, "The name statement names another name.")


class RosterEntry(_Value):
    """One member of a room as the relay lists it (unverified: the library's public
    ``Member`` joins it with the validated log and the contacts' trust)."""

    key: PublicKey
    name: UserName
    status: Presence_
    prekey: SignedPrekey
    joined: Timestamp
    name_statement: NameStatement | None = None
    """The member's signed ``name`` (crypto.md 9.6), when the relay holds one."""

    def __post_init__(self) -> None:
        validate_user_name(self.name)
        _check_statement(self.name, self.name_statement)


class RoomInfo(_Value):
    """A room as a member sees it: sent in `welcome` and in reply to create/join.

    ``partial`` (only in `welcome`, which must stay far below the client's frame limit
    for a user in many large rooms): ``members`` was left out, empty, and the client
    fetches it with `members`; an empty partial list never means everyone left (and any
    members a partial room lists are ignored).
    """

    id: RoomId
    name: RoomName
    description: Description
    max_members: MaxMembers
    listed: bool
    access_kind: AccessKind
    salt: Salt | None
    members: Annotated[list[RosterEntry], msgspec.Meta(max_length=c.MAX_MEMBERS_CAP)]
    seq: Seq
    partial: bool = False

    def __post_init__(self) -> None:
        validate_room_name(self.name)
        validate_display_text(self.description, "room description")


class RoomSummary(_Value):
    """A room as anyone may see it before joining (a joiner needs the salt)."""

    id: RoomId
    name: RoomName
    description: Description
    max_members: MaxMembers
    listed: bool
    access_kind: AccessKind
    salt: Salt | None
    member_count: Count

    def __post_init__(self) -> None:
        validate_room_name(self.name)
        validate_display_text(self.description, "room description")


class RelayLimits(_Value):
    """The limits a relay enforces, announced in `challenge`."""

    max_frame: Annotated[int, msgspec.Meta(ge=1024, le=c.MAX_FRAME)]
    max_body: Annotated[int, msgspec.Meta(ge=256, le=c.MAX_BODY)]
    max_members: MaxMembers
    history: Count
    mailbox: Count
    history_age: Annotated[int, msgspec.Meta(ge=1, le=c.MAX_SEQ)]
    """Seconds a room message is kept (clients keep the keys that open it as long)."""
    rate: Annotated[float, msgspec.Meta(gt=0)] | None = None
    """Frames per second a connection may send (sustained); None: not announced."""
    burst: Annotated[int, msgspec.Meta(ge=1, le=c.MAX_SEQ)] | None = None
    """Frames a connection may send at once."""
    signal_rate: Annotated[float, msgspec.Meta(gt=0)] | None = None
    """``signal`` frames per second (within ``rate``); more are dropped silently."""
    signal_burst: Annotated[int, msgspec.Meta(ge=1, le=c.MAX_SEQ)] | None = None
    max_directs: Annotated[int, msgspec.Meta(ge=1, le=c.MAX_DIRECTS)] | None = None
    """Envelopes one ``directs`` frame may carry; None: the relay has no ``directs``."""
    share_rate: Annotated[float, msgspec.Meta(gt=0)] | None = None
    """Envelopes per second in ``directs`` frames (their own budget, beside ``rate``)."""
    share_burst: Annotated[int, msgspec.Meta(ge=1, le=c.MAX_SEQ)] | None = None


class OpenAccess(msgspec.Struct, tag_field="kind", tag="open", forbid_unknown_fields=True):
    """Anyone the relay admits may join (and read new messages)."""


class SecretAccess(msgspec.Struct, tag_field="kind", tag="secret", forbid_unknown_fields=True):
    """Joining needs a token whose BLAKE2b hash is ``verifier``; ``salt`` for password rooms."""

    verifier: Annotated[bytes, _exact_bytes(c.TOKEN_BYTES)]
    salt: Salt | None = None


Access = OpenAccess | SecretAccess


# Client -> relay -----------------------------------------------------------------


class Hello(_Frame, tag="hello"):
    key: PublicKey
    name: UserName
    prekey: SignedPrekey
    sig: Signature
    name_statement: NameStatement | None = None
    registration_token: RegistrationToken | None = None

    def __post_init__(self) -> None:
        validate_user_name(self.name)
        _check_statement(self.name, self.name_statement)


class CreateRoom(_Frame, tag="create_room"):
    name: RoomName
    access: Access
    description: Description = ""
    max_members: MaxMembers | None = None
    listed: bool = True
    id: RequestId | None = None

    def __post_init__(self) -> None:
        validate_room_name(self.name)
        validate_display_text(self.description, "room description")


class JoinRoom(_Frame, tag="join_room"):
    name: RoomName
    token: Annotated[bytes, _exact_bytes(c.TOKEN_BYTES)] | None = None
    id: RequestId | None = None

    def __post_init__(self) -> None:
        validate_room_name(self.name)


class LeaveRoom(_Frame, tag="leave_room"):
    room: RoomId
    id: RequestId | None = None


class MembersRequest(_Frame, tag="members"):
    room: RoomId
    id: RequestId | None = None


class ListRooms(_Frame, tag="list_rooms"):
    id: RequestId | None = None


class Lookup(_Frame, tag="lookup"):
    name: RoomName
    id: RequestId | None = None

    def __post_init__(self) -> None:
        validate_room_name(self.name)


class PrekeyUpdate(_Frame, tag="prekey"):
    prekey: SignedPrekey
    id: RequestId | None = None


class PrekeyLookup(_Frame, tag="prekey_lookup"):
    """Ask for the signed prekey the relay holds for ``key`` (to start a direct
    conversation with a key no shared room lists)."""

    key: PublicKey
    id: RequestId | None = None


class Send(_Frame, tag="send"):
    room: RoomId
    body: Body
    id: RequestId | None = None


class Retract(_Frame, tag="retract"):
    """Drop the stored body of our own message ``seq`` of ``room`` (a deleted message)."""

    room: RoomId
    seq: Seq
    id: RequestId | None = None


LogEntryBytes = Annotated[bytes, msgspec.Meta(min_length=1, max_length=c.MAX_LOG_ENTRY)]


class LogAppend(_Frame, tag="log_append"):
    """Append a signed membership-log entry at the head of ``room``'s log."""

    room: RoomId
    entry: LogEntryBytes
    id: RequestId | None = None


class LogRequest(_Frame, tag="log"):
    """Ask for ``room``'s log entries from position ``after`` on."""

    room: RoomId
    after: Seq = 0
    id: RequestId | None = None


class SignalSend(_Frame, tag="signal"):
    """An ephemeral body for ``room``'s connected members: never stored, never answered."""

    room: RoomId
    body: SignalBody


class DirectSend(_Frame, tag="direct"):
    to: PublicKey
    body: Body
    id: RequestId | None = None


class DirectItem(msgspec.Struct, forbid_unknown_fields=True):
    """One sealed envelope of a ``directs`` frame, for ``to``'s mailbox."""

    to: PublicKey
    body: Body


class DirectsSend(_Frame, tag="directs"):
    """Sealed envelopes to many mailboxes in one frame (key shares to a room's members)."""

    items: Annotated[list[DirectItem], msgspec.Meta(max_length=c.MAX_DIRECTS)]
    id: RequestId | None = None


class Ack(_Frame, tag="ack"):
    mailbox: Seq
    id: RequestId | None = None


class Sync(_Frame, tag="sync"):
    room: RoomId
    after: Seq
    limit: Annotated[int, msgspec.Meta(ge=1, le=c.MAX_SYNC_LIMIT)] | None = None
    id: RequestId | None = None


class SetStatus(_Frame, tag="status"):
    status: Status
    text: StatusText | None = None
    id: RequestId | None = None

    def __post_init__(self) -> None:
        if self.text is not None:
            validate_display_text(self.text, "status text")


class BlobUpload(_Frame, tag="blob_upload"):
    """Ask for a ticket to upload an encrypted file of ``size`` bytes for ``room``.

    ``blob`` names an upload of ours in progress, to resume it; absent, a new one.
    """

    room: RoomId
    size: BlobSize
    blob: BlobId | None = None
    id: RequestId | None = None


class BlobDownload(_Frame, tag="blob_download"):
    """Ask for a ticket to download ``blob`` of ``room`` (members of ``room`` only)."""

    room: RoomId
    blob: BlobId
    id: RequestId | None = None


class BlobDelete(_Frame, tag="blob_delete"):
    """Delete one of our own blobs (complete or not)."""

    blob: BlobId
    id: RequestId | None = None


class SetName(_Frame, tag="set_name"):
    """Rename without reconnecting: the relay announces it to everyone we share a room with."""

    name: UserName
    name_statement: NameStatement
    id: RequestId | None = None

    def __post_init__(self) -> None:
        validate_user_name(self.name)
        _check_statement(self.name, self.name_statement)


ClientFrame = (
    Hello
    | CreateRoom
    | JoinRoom
    | LeaveRoom
    | MembersRequest
    | ListRooms
    | Lookup
    | PrekeyUpdate
    | PrekeyLookup
    | Send
    | Retract
    | SignalSend
    | DirectSend
    | DirectsSend
    | Ack
    | Sync
    | SetStatus
    | BlobUpload
    | BlobDownload
    | BlobDelete
    | SetName
    | LogAppend
    | LogRequest
)


# Relay -> client -----------------------------------------------------------------


class Challenge(_Frame, tag="challenge"):
    v: Annotated[int, msgspec.Meta(ge=1, le=255)]
    relay: Annotated[str, msgspec.Meta(min_length=1, max_length=c.MAX_RELAY_NAME_CHARS)]
    nonce: Annotated[bytes, _exact_bytes(c.NONCE_BYTES)]
    limits: RelayLimits

    def __post_init__(self) -> None:
        validate_display_text(self.relay, "relay name")


class Welcome(_Frame, tag="welcome"):
    user: User
    rooms: Annotated[list[RoomInfo], msgspec.Meta(max_length=c.MAX_LIST_ITEMS)]
    mailbox: Count
    ts: Timestamp | None = None
    """The relay's clock (Unix ms) when it sent the welcome: clients compare it with
    their own to warn of a clock that is off (nothing is decided by it)."""


class RoomReply(_Frame, tag="room"):
    room: RoomInfo
    id: RequestId | None = None


class MemberJoined(_Frame, tag="member_joined"):
    room: RoomId
    member: RosterEntry


class MemberLeft(_Frame, tag="member_left"):
    room: RoomId
    key: PublicKey


class RoomDeleted(_Frame, tag="room_deleted"):
    """The relay's operator deleted ``room``: its history and membership log are gone on
    the relay and its name is free. Sent to the members connected at the time."""

    room: RoomId
    reason: Annotated[str, msgspec.Meta(max_length=c.MAX_ERROR_MESSAGE_CHARS)]

    def __post_init__(self) -> None:
        validate_display_text(self.reason, "reason")


class RoomDeletion(_Frame, tag="room_deletion"):
    """The relay's notice, after ``welcome``, that its operator deleted ``room`` at ``ts``
    (relay time) while this connection did not exist: kept for every member it had, for
    the relay's retention (protocol.md section 5). A relay's statement, signed by no one."""

    room: RoomId
    reason: Annotated[str, msgspec.Meta(max_length=c.MAX_ERROR_MESSAGE_CHARS)]
    ts: Timestamp

    def __post_init__(self) -> None:
        validate_display_text(self.reason, "reason")


class LogEntries(_Frame, tag="log"):
    """Entries of ``room``'s log from position ``start`` on (a reply, or a new entry)."""

    room: RoomId
    start: Seq
    entries: Annotated[list[LogEntryBytes], msgspec.Meta(max_length=c.MAX_LOG_PAGE)]
    id: RequestId | None = None


class MembersList(_Frame, tag="members"):
    room: RoomId
    members: Annotated[list[RosterEntry], msgspec.Meta(max_length=c.MAX_MEMBERS_CAP)]
    id: RequestId | None = None


class RoomList(_Frame, tag="rooms"):
    rooms: Annotated[list[RoomSummary], msgspec.Meta(max_length=c.MAX_LIST_ITEMS)]
    id: RequestId | None = None


class SummaryReply(_Frame, tag="summary"):
    room: RoomSummary
    id: RequestId | None = None


class PrekeyFound(_Frame, tag="prekey_found"):
    """The answer to ``prekey_lookup``: ``key``'s latest signed prekey, as the key
    published it. Clients check its signature against ``key``: the relay cannot make one."""

    key: PublicKey
    prekey: SignedPrekey
    id: RequestId | None = None


class Message(_Frame, tag="message"):
    room: RoomId
    seq: Seq
    ts: Timestamp
    sender: PublicKey = msgspec.field(name="from")
    body: Body


class Signal(_Frame, tag="signal"):
    """An ephemeral body a member of ``room`` sent to the room's connected members."""

    room: RoomId
    sender: PublicKey = msgspec.field(name="from")
    body: SignalBody


class DirectDelivery(_Frame, tag="direct"):
    sender: PublicKey = msgspec.field(name="from")
    seq: Seq
    ts: Timestamp
    body: Body


class Sent(_Frame, tag="sent"):
    seq: Seq
    ts: Timestamp
    room: RoomId | None = None
    id: RequestId | None = None


class DirectsSent(_Frame, tag="sent_directs"):
    """Every envelope of a ``directs`` frame is stored: each one's mailbox seq, in order."""

    seqs: Annotated[list[Seq], msgspec.Meta(max_length=c.MAX_DIRECTS)]
    ts: Timestamp
    id: RequestId | None = None


class Synced(_Frame, tag="synced"):
    room: RoomId
    seq: Seq
    id: RequestId | None = None


class Presence(_Frame, tag="presence"):
    key: PublicKey
    status: Presence_
    text: StatusText | None = None
    last_seen: Timestamp | None = None

    def __post_init__(self) -> None:
        if self.text is not None:
            validate_display_text(self.text, "status text")


class BlobTicket(_Frame, tag="blob_ticket"):
    """A one-time ``token`` for the blob endpoint (protocol.md section "Files").

    ``offset``: bytes already stored (where an upload resumes; 0 for a download).
    """

    blob: BlobId
    token: Annotated[bytes, _exact_bytes(c.TOKEN_BYTES)]
    size: BlobSize
    offset: BlobSize
    id: RequestId | None = None


class Renamed(_Frame, tag="renamed"):
    """``key`` is now called ``name``; sent to everyone who shares a room with it."""

    key: PublicKey
    name: UserName
    name_statement: NameStatement | None = None

    def __post_init__(self) -> None:
        validate_user_name(self.name)
        _check_statement(self.name, self.name_statement)


class Ok(_Frame, tag="ok"):
    id: RequestId | None = None


class Error(_Frame, tag="error"):
    code: ErrorCode
    message: Annotated[str, msgspec.Meta(max_length=c.MAX_ERROR_MESSAGE_CHARS)]
    id: RequestId | None = None

    def __post_init__(self) -> None:
        validate_display_text(self.message, "error message")


RelayFrame = (
    Challenge
    | Welcome
    | RoomReply
    | MemberJoined
    | MemberLeft
    | RoomDeleted
    | RoomDeletion
    | MembersList
    | LogEntries
    | RoomList
    | SummaryReply
    | PrekeyFound
    | Message
    | Signal
    | DirectDelivery
    | Sent
    | DirectsSent
    | Synced
    | Presence
    | BlobTicket
    | Renamed
    | Ok
    | Error
)
