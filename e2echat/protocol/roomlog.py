"""The membership log of a room: signed, hash-chained statements every member validates.

Each entry is a statement by its author's identity key (create, join, admit, leave,
remove, ban, role change, secret rotation, description change), names the hash of the
entry before it, and is accepted only if its author had the authority at that point of
the log. The relay stores and orders entries but cannot forge, drop from the middle or
reorder them, and two members shown different histories see different head hashes
(``LogHead``, carried in every signed room message). Byte layouts: docs/crypto.md,
section 13. Pure code: ``apply_entry`` maps a state and entry bytes to a new state.

It lives in the protocol because the relay runs the same rules (it stops routing to a
member only on a valid, authorised removal, and orders appends at the head); clients run
them again with the join-tag check that needs the room secret (e2echat.crypto.roomlog).
Signatures and hashes use PyNaCl, as everywhere.
"""

import hmac
import struct
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import Annotated

import msgspec
from nacl.bindings import crypto_generichash_blake2b_salt_personal
from nacl.exceptions import BadSignatureError
from nacl.exceptions import ValueError as NaclValueError
from nacl.signing import VerifyKey

from e2echat.protocol.transcripts import length_prefixed

ROOM_ID_SIZE = 16
SIGNATURE_SIZE = 64
U32 = Annotated[int, msgspec.Meta(ge=0, le=2**32 - 1)]
Key32 = Annotated[bytes, msgspec.Meta(min_length=32, max_length=32)]
SignFn = Callable[[bytes], bytes]
TagFn = Callable[[bytes], bytes]
"""Computes the join tag of an entry from its bytes before the tag."""

LOG_VERSION = 1
LOG_LABEL = b"e2echat/v1/log"
LOG_HASH_PERSON = b"e2echat-log-v1"
HASH_SIZE = 32
TAG_SIZE = 32
SALT_SIZE = 16
MAX_DESCRIPTION = 512
"""Bytes of UTF-8 in a room description."""
NO_HASH = bytes(HASH_SIZE)
NO_VERIFIER = bytes(32)
"""The ``verifier`` of an open room (no secret) and of entries that set none."""

_FIXED = struct.Struct(">BB16sI32s32sQ32sBI32s")
FIXED_SIZE = _FIXED.size


class LogError(ValueError):
    """A log entry that is malformed, mis-chained, mis-signed or not authorised."""


class AuthorityError(LogError):
    """The author lacks the role the statement needs (raised locally before signing)."""


class Kind(IntEnum):
    """What a log entry states."""

    CREATE = 1
    JOIN = 2
    ADMIT = 3
    LEAVE = 4
    REMOVE = 5
    BAN = 6
    ROLE = 7
    ROTATE = 8
    DESCRIBE = 9


class Role(IntEnum):
    """A member's rank: a statement about a member needs a strictly higher rank."""

    MEMBER = 0
    ADMIN = 1
    OWNER = 2


ROTATING = frozenset({Kind.CREATE, Kind.REMOVE, Kind.BAN, Kind.ROTATE})
"""Kinds that start a new epoch with a new room secret (committed by ``verifier``)."""
TAGGED = frozenset({Kind.JOIN, Kind.ADMIT})
"""Kinds that carry a join tag in a secret room (proof of the epoch's secret)."""


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One parsed, signature-checked statement (public data: the relay sees all of it)."""

    kind: Kind
    room_id: bytes
    seq: int
    prev: bytes
    author: bytes
    created: int
    subject: bytes
    role: Role
    epoch: int
    verifier: bytes
    salt: bytes
    description: str
    tag: bytes
    wire: bytes

    @property
    def hash(self) -> bytes:
        """The entry's name in the chain: BLAKE2b of its wire bytes."""
        return entry_hash(self.wire)

    @property
    def before_tag(self) -> bytes:
        """The entry's bytes that its join tag covers."""
        return self.wire[: -(TAG_SIZE + SIGNATURE_SIZE)]


class LogHead(msgspec.Struct, frozen=True, array_like=True):
    """A position in the log: ``length`` entries, the last of which hashes to ``head``."""

    length: U32
    head: Annotated[bytes, msgspec.Meta(min_length=HASH_SIZE, max_length=HASH_SIZE)]


EMPTY_HEAD = LogHead(0, NO_HASH)


class LogState(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What a validated log says now: roster with roles, bans, epoch, secret commitment."""

    room_id: Annotated[bytes, msgspec.Meta(min_length=ROOM_ID_SIZE, max_length=ROOM_ID_SIZE)]
    length: U32
    head: bytes
    epoch: U32
    verifier: Key32
    salt: bytes
    description: str
    members: dict[Key32, int]
    banned: frozenset[Key32] = frozenset()

    @property
    def secret(self) -> bool:
        """Whether the room has a room secret (created with a verifier)."""
        return self.verifier != NO_VERIFIER

    @property
    def position(self) -> LogHead:
        return LogHead(self.length, self.head)

    def role(self, key: bytes) -> Role | None:
        """``key``'s role, or None if it is not a member."""
        value = self.members.get(key)
        return None if value is None else Role(value)

    def __repr__(self) -> str:
        return (
            f"LogState(room_id={self.room_id.hex()}, length={self.length}, "
            f"epoch={self.epoch}, members={len(self.members)})"
        )


TagCheck = Callable[[LogState, "LogEntry"], None]
"""Checks a join or admit entry's tag against the state's epoch if the validator knows
its secret (raises ``LogError`` if it does not check); the relay passes none."""


def entry_hash(wire: bytes) -> bytes:
    """``B2(entry || sig; person="e2echat-log-v1")``."""
    return crypto_generichash_blake2b_salt_personal(
        wire, digest_size=HASH_SIZE, person=LOG_HASH_PERSON.ljust(16, b"\0")
    )


def log_transcript(entry: bytes) -> bytes:
    """The bytes an author signs for a log entry."""
    return length_prefixed(LOG_LABEL, entry)


def encode_entry(
    sign: SignFn,
    *,
    kind: Kind,
    room_id: bytes,
    seq: int,
    prev: bytes,
    author: bytes,
    created: int,
    subject: bytes,
    role: Role = Role.MEMBER,
    epoch: int = 0,
    verifier: bytes = NO_VERIFIER,
    salt: bytes = b"",
    description: str = "",
    tag_of: TagFn | None = None,
) -> bytes:
    """The signed wire bytes of an entry; ``tag_of`` tags a secret-room join or admit."""
    text = description.encode()
    before_tag = _FIXED.pack(
        LOG_VERSION,
        kind,
        room_id,
        seq,
        prev,
        author,
        created,
        subject,
        role,
        epoch,
        verifier,
    ) + length_prefixed(salt, text)
    tag = tag_of(before_tag) if tag_of is not None else bytes(TAG_SIZE)
    entry = before_tag + tag
    return entry + sign(log_transcript(entry))


def parse_entry(wire: bytes) -> LogEntry:
    """Strictly parse and signature-check entry bytes (authority is ``apply_entry``'s job)."""
    minimum = FIXED_SIZE + 8 + TAG_SIZE + SIGNATURE_SIZE
    if not minimum <= len(wire) <= minimum + SALT_SIZE + MAX_DESCRIPTION:
        raise LogError("log entry has an invalid length")
    fields = _FIXED.unpack_from(wire)
    version, kind, room_id, seq, prev, author, created, subject, role, epoch, verifier = fields
    offset = FIXED_SIZE
    (salt_size,) = struct.unpack_from(">I", wire, offset)
    if salt_size not in (0, SALT_SIZE):
        raise LogError("log entry salt is neither empty nor 16 bytes")
    salt = wire[offset + 4 : offset + 4 + salt_size]
    offset += 4 + salt_size
    (text_size,) = struct.unpack_from(">I", wire, offset)
    if text_size > MAX_DESCRIPTION:
        raise LogError("log entry description is too long")
    text = wire[offset + 4 : offset + 4 + text_size]
    offset += 4 + text_size
    if len(wire) != offset + TAG_SIZE + SIGNATURE_SIZE:
        raise LogError("log entry length does not match its fields")
    if version != LOG_VERSION:
        raise LogError("not a v1 log entry")
    try:
        kind, role, description = Kind(kind), Role(role), text.decode()
    except (ValueError, UnicodeDecodeError):
        raise LogError("log entry has an unknown kind, role or invalid text") from None
    entry, signature = wire[:-SIGNATURE_SIZE], wire[-SIGNATURE_SIZE:]
    try:
        VerifyKey(author).verify(log_transcript(entry), signature)
    except (BadSignatureError, NaclValueError):
        raise LogError("log entry signature does not verify for its author") from None
    return LogEntry(
        kind,
        room_id,
        seq,
        prev,
        author,
        created,
        subject,
        role,
        epoch,
        verifier,
        salt,
        description,
        entry[-TAG_SIZE:],
        wire,
    )


def apply_entry(
    state: LogState | None, wire: bytes, check_tag: TagCheck | None = None
) -> tuple[LogState, LogEntry]:
    """Validate ``wire`` as the next entry after ``state`` (None: a new log); the new state.

    Raises ``LogError`` and changes nothing on any failure: malformed, wrong room,
    position or previous hash, bad signature, or an author without the authority. Join
    tags are checked by ``check_tag`` (members of the current epoch always can).
    """
    entry = parse_entry(wire)
    if state is None:
        if entry.kind != Kind.CREATE:
            raise LogError("a log starts with a create entry")
        state = LogState(entry.room_id, 0, NO_HASH, 0, NO_VERIFIER, b"", "", {})
    if entry.room_id != state.room_id:
        raise LogError("log entry names another room")
    if entry.seq != state.length:
        raise LogError(f"log entry is at position {entry.seq}, expected {state.length}")
    if not hmac.compare_digest(entry.prev, state.head):
        raise LogError("log entry does not follow the head of the log (reordered or forked)")
    if entry.kind not in ROTATING and entry.epoch != state.epoch:
        raise LogError("log entry names another epoch than the current one")
    _RULES[entry.kind](state, entry)
    if entry.kind in TAGGED and state.secret and check_tag is not None:
        check_tag(state, entry)
    return _next_state(state, entry), entry


def _next_state(state: LogState, entry: LogEntry) -> LogState:
    members = dict(state.members)
    banned = set(state.banned)
    epoch, verifier, salt, description = state.epoch, state.verifier, state.salt, state.description
    kind = entry.kind
    if kind == Kind.CREATE:
        members[entry.author] = Role.OWNER
        description = entry.description
    elif kind in (Kind.JOIN, Kind.ADMIT):
        members[entry.subject] = Role.MEMBER
        banned.discard(entry.subject)
    elif kind in (Kind.LEAVE, Kind.REMOVE, Kind.BAN):
        members.pop(entry.subject, None)
        if kind == Kind.BAN:
            banned.add(entry.subject)
    elif kind == Kind.ROLE:
        members[entry.subject] = entry.role
    elif kind == Kind.DESCRIBE:
        description = entry.description
    if kind in ROTATING:
        epoch, verifier, salt = entry.epoch, entry.verifier, entry.salt
    return LogState(
        state.room_id,
        state.length + 1,
        entry.hash,
        epoch,
        verifier,
        salt,
        description,
        members,
        frozenset(banned),
    )


def _rank(state: LogState, key: bytes) -> int:
    """A key's rank; -1 for a non-member."""
    value = state.members.get(key)
    return -1 if value is None else value


def _require(condition: bool, reason: str) -> None:
    if not condition:
        raise AuthorityError(reason)


def _check_create(state: LogState, entry: LogEntry) -> None:
    _require(state.length == 0, "only the first entry may create the room")
    _require(entry.subject == entry.author, "the creator names itself")
    _require(entry.role == Role.OWNER and entry.epoch == 0, "a room starts with its owner, epoch 0")


def _check_join(state: LogState, entry: LogEntry) -> None:
    _require(entry.subject == entry.author, "a join is made by the joiner itself")
    _require(entry.subject not in state.members, "the joiner is already a member")
    _require(entry.subject not in state.banned, "the joiner is banned from this room")
    _check_tagged(state, entry)


def _check_admit(state: LogState, entry: LogEntry) -> None:
    _require(_rank(state, entry.author) >= Role.ADMIN, "only an admin or owner can admit")
    _require(entry.subject not in state.members, "the admitted key is already a member")
    _check_tagged(state, entry)


def _check_tagged(state: LogState, entry: LogEntry) -> None:
    _require(entry.role == Role.MEMBER, "a new member starts as a plain member")
    _require(entry.epoch == state.epoch, "a join names the current epoch")


def _check_leave(state: LogState, entry: LogEntry) -> None:
    _require(entry.subject == entry.author, "a leave is made by the leaver itself")
    _require(entry.subject in state.members, "only a member can leave")


def _check_remove(state: LogState, entry: LogEntry) -> None:
    _require(_rank(state, entry.author) >= Role.ADMIN, "only an admin or owner can kick")
    _require(entry.subject in state.members, "only a member can be kicked")
    _require(
        _rank(state, entry.author) > _rank(state, entry.subject),
        "a member can only be kicked by someone of a higher role",
    )
    _check_rotation(state, entry)


def _check_ban(state: LogState, entry: LogEntry) -> None:
    _require(_rank(state, entry.author) >= Role.ADMIN, "only an admin or owner can ban")
    _require(entry.subject not in state.banned, "that key is already banned")
    _require(
        _rank(state, entry.author) > _rank(state, entry.subject),
        "a member can only be banned by someone of a higher role",
    )
    _check_rotation(state, entry)


def require_rotator(state: LogState, author: bytes) -> None:
    """Raise ``AuthorityError`` unless ``author`` may change the room secret (an admin or
    owner): the role a rotation entry is checked for, which a client can ask about
    before it asks its user for a new password."""
    _require(
        _rank(state, author) >= Role.ADMIN,
        "only an admin or owner can change the room secret",
    )


def _check_rotate(state: LogState, entry: LogEntry) -> None:
    require_rotator(state, entry.author)
    _require(entry.subject == entry.author, "a rotation names its author")
    _check_rotation(state, entry)


def _check_rotation(state: LogState, entry: LogEntry) -> None:
    _require(entry.epoch == state.epoch + 1, "a new epoch follows the current one")
    _require(
        (entry.verifier != NO_VERIFIER) == state.secret,
        "a secret room rotates to a new secret; an open room has none",
    )


def _check_role(state: LogState, entry: LogEntry) -> None:
    _require(_rank(state, entry.author) == Role.OWNER, "only an owner can appoint or demote")
    _require(entry.subject in state.members, "only a member can be given a role")
    _require(_rank(state, entry.subject) < Role.OWNER, "an owner's role cannot be changed")
    _require(entry.role in (Role.MEMBER, Role.ADMIN), "a role change names admin or member")
    _require(_rank(state, entry.subject) != entry.role, "the member already has that role")


def _check_describe(state: LogState, entry: LogEntry) -> None:
    _require(
        _rank(state, entry.author) >= Role.ADMIN, "only an admin or owner can set the description"
    )
    _require(entry.subject == entry.author, "a description change names its author")


_RULES: dict[Kind, Callable[[LogState, LogEntry], None]] = {
    Kind.CREATE: _check_create,
    Kind.JOIN: _check_join,
    Kind.ADMIT: _check_admit,
    Kind.LEAVE: _check_leave,
    Kind.REMOVE: _check_remove,
    Kind.BAN: _check_ban,
    Kind.ROTATE: _check_rotate,
    Kind.ROLE: _check_role,
    Kind.DESCRIBE: _check_describe,
}


class LogForkError(LogError):
    """Two members' views of the log differ at the same position."""


def compare_head(theirs: LogHead, ours: LogHead, hash_at: Callable[[int], bytes]) -> bool:
    """Whether ``theirs`` (a head another member signed) is consistent with our log.

    True if it is a prefix of ours (``hash_at(n)`` is our head after ``n`` entries);
    False if it is beyond ours (we are behind: fetch the log and compare again). Raises
    ``LogForkError`` if at the same position the hashes differ: the relay showed us different
    histories.
    """
    if theirs.length > ours.length:
        return False
    expected = ours.head if theirs.length == ours.length else hash_at(theirs.length)
    if not hmac.compare_digest(expected, theirs.head):
        raise LogForkError(f"the log differs from another member's at position {theirs.length}")
    return True
