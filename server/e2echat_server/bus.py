"""What relays sharing one Redis tell each other, on one pub/sub channel. Pure.

Each relay keeps the directory in memory, as a single relay does, and follows the others'
changes from these notices: the store publishes one after each directory write it made
durable (a user, a room, a membership), the broker publishes presence, node liveness and
the frames to fan out to the other relays' connections; the store's append function
publishes each room message it stored (`Appended`), in the same call. A notice carries
the state itself, not a pointer to reload it, so a relay applies it in one step of its
event loop. Notices from one relay arrive in the order it sent them; every relay ignores
its own.
"""

from typing import Literal

import msgspec

Status = Literal["online", "away", "busy", "offline"]


class UserSaved(msgspec.Struct, tag="user", frozen=True):
    key: bytes
    name: str
    prekey_id: int
    prekey: bytes
    prekey_sig: bytes
    name_statement: bytes | None = None


class UsersForgotten(msgspec.Struct, tag="forgotten", frozen=True):
    keys: list[bytes]


class RoomCreated(msgspec.Struct, tag="room", frozen=True):
    id: bytes
    name: str
    description: str
    max_members: int
    listed: bool
    access_kind: Literal["open", "secret"]
    verifier: bytes | None
    salt: bytes | None
    created: int
    creator: bytes


class MemberJoined(msgspec.Struct, tag="joined", frozen=True):
    room: bytes
    key: bytes
    joined: int


class MemberLeft(msgspec.Struct, tag="left", frozen=True):
    room: bytes
    key: bytes
    dropped: bool  # it was the last member: the room is gone


class PresenceSet(msgspec.Struct, tag="presence", frozen=True):
    """A user's presence as its relay announced it (its peers got the frame too)."""

    key: bytes
    status: Status
    text: str | None
    last_seen: int | None


class KeyOnline(msgspec.Struct, tag="online", frozen=True):
    """A connection of ``key`` authenticated on the sending relay at ``since`` (Unix ms),
    or (False) its last there closed. Relays holding an older connection of ``key``
    close it: the newest connection of an identity wins, across relays too."""

    key: bytes
    online: bool
    since: int = 0


class NodeGone(msgspec.Struct, tag="gone", frozen=True):
    """The relay ``node`` stopped renewing its heartbeat: its keys are offline there."""

    node: bytes


class ToRoom(msgspec.Struct, tag="to_room", frozen=True):
    """An encoded frame for every connection in ``room`` (on the receiving relays)."""

    room: bytes
    data: bytes


class Appended(msgspec.Struct, tag="appended", frozen=True):
    """A room message as the store numbered it: every relay delivers it to its own
    connections in ``room``. Published by the store's append function itself, which
    completes `appended_head` with ``seq`` and ``ts`` (so they are the last fields)."""

    room: bytes
    sender: bytes
    body: bytes
    seq: int
    ts: int


class ToKeys(msgspec.Struct, tag="to_keys", frozen=True):
    """An encoded frame for every connection of each of ``keys``."""

    keys: list[bytes]
    data: bytes


class KeyBanned(msgspec.Struct, tag="banned", frozen=True):
    """The operator banned ``key`` (or, False, unbanned it) on the sending relay: every
    relay closes its connection and refuses it (operator_state.py keeps the set)."""

    key: bytes
    banned: bool


class LogGrew(msgspec.Struct, tag="log", frozen=True):
    """The sending relay appended to ``room``'s membership log, which now has ``length``
    entries: every other relay whose copy is shorter reads the log from the store again
    before it next decides on it (who may join with which secret, who is banned, where
    the next entry goes)."""

    room: bytes
    length: int


class Barrier(msgspec.Struct, tag="barrier", frozen=True):
    """Sent by a relay to itself: once it is back, every notice that Redis had before it
    has arrived (Redis sends a channel's messages to a subscriber in the order it took
    them), so the relay's directory holds what other relays had published by then."""

    token: bytes


Notice = (
    UserSaved
    | UsersForgotten
    | RoomCreated
    | MemberJoined
    | MemberLeft
    | PresenceSet
    | KeyOnline
    | NodeGone
    | ToRoom
    | Appended
    | ToKeys
    | KeyBanned
    | LogGrew
    | Barrier
)


class Publication(msgspec.Struct, array_like=True, frozen=True):
    """A notice and the relay (node id) that sent it."""

    origin: bytes
    notice: Notice


_ENCODER = msgspec.msgpack.Encoder()
_DECODER = msgspec.msgpack.Decoder(Publication)


def encode(origin: bytes, notice: Notice) -> bytes:
    return _ENCODER.encode(Publication(origin, notice))


def origin_prefix(origin: bytes) -> bytes:
    """The bytes every publication of ``origin`` starts with (a two-field array, then the
    origin), so a relay tells its own apart without decoding them."""
    return b"\x92" + _ENCODER.encode(origin)


def decode(data: bytes) -> Publication:
    """Raises msgspec.DecodeError (a ValueError) on anything that is not a publication."""
    return _DECODER.decode(data)


# An Appended notice with seq and ts 0 ends with the seq's value, then the ts field.
_APPENDED_TAIL = b"\x00\xa2ts\x00"


def appended_head(origin: bytes, room: bytes, sender: bytes, body: bytes) -> bytes:
    """The publication of an `Appended` notice cut before the value of its ``seq``: the
    store's append function adds the two msgpack integers (seq, then b"\\xa2ts" and ts)
    once it has numbered the message, and publishes it."""
    whole = encode(origin, Appended(room, sender, body, 0, 0))
    if not whole.endswith(_APPENDED_TAIL):  # msgspec keeps struct fields in order
        raise RuntimeError("unexpected msgpack layout of an Appended notice")
    return whole[: -len(_APPENDED_TAIL)]
