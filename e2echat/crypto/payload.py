"""The room plaintext: one strict msgspec JSON object per message, tagged by ``t``.

Payloads only ever travel inside the AEAD, under the sender's signature, so nothing in
them (mentions, which message an edit or reaction names, who is typing) is visible to
the relay. Decoding is strict (unknown field, wrong type, bound exceeded) because the
bytes come from an authenticated member who may still run a buggy or hostile client,
and the bytes must be the one canonical encoding of what they decode to (msgspec's
compact output, docs/crypto.md section 8.4), so that two implementations never read one
payload differently; a well-formed object of a kind this version does not know decodes
as ``Unsupported`` so that future kinds never break a client (section 8.3).

Messages are named by a ``MessageId``: the sender's key, chain id and index of the
message, exactly the triple receivers accept once (the replay identity). It is bound to
the signature, the relay cannot assign or rewrite it, and it names its own signer, so
"only the original sender may edit or delete" is checked from signed bytes alone
(``check_signer``), even by a receiver that never saw the original.
"""

import re
import struct
import unicodedata
from dataclasses import dataclass
from typing import Annotated, Any

import msgspec

from e2echat.crypto.errors import PayloadError
from e2echat.crypto.files import HASH_SIZE, MAX_FILE_SIZE
from e2echat.crypto.prekeys import Key32
from e2echat.crypto.primitives import KEY_SIZE
from e2echat.crypto.redact import redacted_fields
from e2echat.crypto.statements import SUCCESSOR_SIZE

MAX_MENTIONS = 256
MAX_EMOJI_CODEPOINTS = 16
"""Enough for the longest emoji ZWJ and tag sequences (a family, a subdivision flag)."""
MAX_EMOJI_BYTES = 64
MESSAGE_ID_SIZE = KEY_SIZE + 16 + 4
KIND_PATTERN = re.compile(r"[a-z][a-z0-9_.-]{0,31}")
"""The name of every payload kind, known or future."""

MAX_FILE_NAME_BYTES = 255
MAX_CAPTION_CHARS = 4096
BLOB_ID_SIZE = 16
MEDIA_TYPE_PATTERN = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]{0,63}/[a-z0-9][a-z0-9!#$&^_.+-]{0,63}")
"""RFC 6838 type/subtype names, lowercase, without parameters."""

_ID = struct.Struct(">32s16sI")
MessageId = Annotated[bytes, msgspec.Meta(min_length=MESSAGE_ID_SIZE, max_length=MESSAGE_ID_SIZE)]
Millis = Annotated[int, msgspec.Meta(ge=0, le=2**53)]
Mentions = Annotated[tuple[Key32, ...], msgspec.Meta(max_length=MAX_MENTIONS)]


def message_id(sender: bytes, chain_id: bytes, index: int) -> bytes:
    """The 52-byte id ``sender(32) || chain_id(16) || u32(index)`` of a room message."""
    return _ID.pack(sender, chain_id, index)


def id_sender(target: bytes) -> bytes:
    """The signer named by a message id (its first 32 bytes)."""
    return target[:KEY_SIZE]


def check_emoji(emoji: str) -> None:
    """Raise ``PayloadError`` unless ``emoji`` is one bounded, printable symbol sequence.

    A reaction is shown next to every message, so it must not carry layout: no
    whitespace, no control or format characters other than the zero-width joiner,
    variation selectors and tag characters that emoji sequences are built from.
    """
    if not emoji or len(emoji) > MAX_EMOJI_CODEPOINTS:
        raise PayloadError("a reaction must be 1 to 16 code points")
    if len(emoji.encode()) > MAX_EMOJI_BYTES:
        raise PayloadError("a reaction must be at most 64 bytes")
    for char in emoji:
        category = unicodedata.category(char)
        allowed = char == "\u200d" or "\U000e0020" <= char <= "\U000e007f"
        if category[0] in "CZ" and not allowed:
            raise PayloadError("a reaction may not contain spaces or control characters")


_ZWJ = "\u200d"
_SKIN_TONES = "".join(map(chr, range(0x1F3FB, 0x1F400)))
_MODIFIERS = "\ufe0e\ufe0f" + _SKIN_TONES
"""What may follow an emoji's symbol: the text and emoji variation selectors, skin tones."""
_REGIONAL = frozenset(map(chr, range(0x1F1E6, 0x1F200)))
_TAGS = frozenset(map(chr, range(0xE0020, 0xE007F)))
_CANCEL_TAG = "\U000e007f"
_KEYCAPS = frozenset(base + end for base in "0123456789#*" for end in ("\u20e3", "\ufe0f\u20e3"))
_SYMBOLS_OUTSIDE_SO = frozenset(
    "\u203c\u2049\u2139\u2194\u25fb\u25fc\u25fd\u25fe\u2934\u2935\u3030\u303d" + _SKIN_TONES
)
"""The emoji whose Unicode category is not So (other symbol): double exclamation,
exclamation question, information, left right arrow, four squares, two curving arrows,
wavy dash, part alternation mark; and the skin tones, emoji on their own too."""


def is_one_emoji(emoji: str) -> bool:
    """Whether ``emoji`` is one emoji, what a sender may react with: ZWJ-joined
    elements, each a flag (two regional indicators), a keycap (``0``-``9``, ``#`` or
    ``*``, an optional U+FE0F, U+20E3) or a symbol (category So, or one of the few
    emoji outside it) followed by variation selectors or skin tones and an optional tag
    sequence (a subdivision flag). Receivers take any reaction ``check_emoji`` accepts,
    so one that another client sends is never lost."""
    return all(_is_emoji_element(part) for part in emoji.split(_ZWJ))


def _is_emoji_element(part: str) -> bool:
    if part in _KEYCAPS or (len(part) == 2 and _REGIONAL.issuperset(part)):
        return True
    if not part or not (unicodedata.category(part[0]) == "So" or part[0] in _SYMBOLS_OUTSIDE_SO):
        return False
    rest = part[1:].lstrip(_MODIFIERS)
    return not rest or (len(rest) > 1 and rest[-1] == _CANCEL_TAG and _TAGS.issuperset(rest[:-1]))


def check_file_name(name: str) -> None:
    """Raise ``PayloadError`` unless ``name`` is 1 to 255 UTF-8 bytes with no control or
    format characters. It is a label: receivers still make it safe before saving."""
    if not name or len(name.encode()) > MAX_FILE_NAME_BYTES:
        raise PayloadError("a file name must be 1 to 255 bytes")
    if any(unicodedata.category(char)[0] == "C" for char in name):
        raise PayloadError("a file name may not contain control or format characters")


class _Payload(
    msgspec.Struct, tag_field="t", frozen=True, forbid_unknown_fields=True, omit_defaults=True
):
    """Fields every payload has: ``ts``, the sender's clock in ms (never trusted as order
    between senders; it orders one sender's own edits and reactions)."""


class Text(_Payload, frozen=True, tag="text"):
    """A text message; ``mentions`` are the user ids (keys) it mentions; ``reply_to`` the
    id of the message it replies to (omitted when it is no reply)."""

    body: str
    mentions: Mentions
    ts: Millis
    reply_to: MessageId | None = None

    def __repr__(self) -> str:
        reply = ", reply" if self.reply_to is not None else ""
        return (
            f"Text(body=<{len(self.body)} chars>, mentions={len(self.mentions)},"
            f" ts={self.ts}{reply})"
        )

    def __rich_repr__(self) -> list[tuple[str, Any]]:
        return redacted_fields(self, ("body", "mentions"))


class Edit(_Payload, frozen=True, tag="edit"):
    """A new version of the sender's own text message ``target``."""

    target: MessageId
    body: str
    mentions: Mentions
    ts: Millis

    def __repr__(self) -> str:
        return f"Edit(body=<{len(self.body)} chars>, mentions={len(self.mentions)}, ts={self.ts})"

    def __rich_repr__(self) -> list[tuple[str, Any]]:
        return redacted_fields(self, ("body", "mentions"))


class Delete(_Payload, frozen=True, tag="delete"):
    """The sender withdraws its own message ``target``: receivers drop its text."""

    target: MessageId
    ts: Millis


class Reaction(_Payload, frozen=True, tag="react"):
    """Adds (``add``) or removes the sender's ``emoji`` reaction to ``target``."""

    target: MessageId
    emoji: str
    add: bool
    ts: Millis

    def __post_init__(self) -> None:
        check_emoji(self.emoji)


class Typing(_Payload, frozen=True, tag="typing"):
    """The sender started (``typing``) or stopped typing; sent on the ephemeral path."""

    typing: bool
    ts: Millis


class Read(_Payload, frozen=True, tag="read"):
    """A read receipt: the sender has read the room up to and including ``target``."""

    target: MessageId
    ts: Millis


class File(_Payload, frozen=True, tag="file"):
    """An encrypted file (docs/crypto.md section 12): the relay holds ``blob``; ``key``
    opens it, ``hash`` is the blob's hash, ``size`` the file's bytes; ``name`` and
    ``type`` are the sender's labels, ``caption`` an optional text."""

    blob: Annotated[bytes, msgspec.Meta(min_length=BLOB_ID_SIZE, max_length=BLOB_ID_SIZE)]
    key: Key32
    hash: Annotated[bytes, msgspec.Meta(min_length=HASH_SIZE, max_length=HASH_SIZE)]
    size: Annotated[int, msgspec.Meta(ge=0, le=MAX_FILE_SIZE)]
    name: str
    type: str
    ts: Millis
    caption: Annotated[str, msgspec.Meta(max_length=MAX_CAPTION_CHARS)] = ""

    def __post_init__(self) -> None:
        check_file_name(self.name)
        if not MEDIA_TYPE_PATTERN.fullmatch(self.type):
            raise PayloadError("a file's media type must look like type/subtype")

    def __repr__(self) -> str:
        return f"File(name=<{len(self.name)} chars>, size={self.size}, ts={self.ts})"

    def __rich_repr__(self) -> list[tuple[str, Any]]:
        return redacted_fields(self, ("key", "name", "caption", "hash", "blob"))


class Successor(_Payload, frozen=True, tag="successor"):
    """The sender's key names its successor (``e2echat identity rotate``): ``statement``
    is a successor statement (section 9.6) signed by both keys, whose old key must be
    the sender's. Sent in every room of the old key, so its members link the keys."""

    statement: Annotated[bytes, msgspec.Meta(min_length=SUCCESSOR_SIZE, max_length=SUCCESSOR_SIZE)]
    ts: Millis


RoomPayload = Text | Edit | Delete | Reaction | Typing | Read | File | Successor
"""Every payload kind a client of this version sends."""

Relation = Edit | Delete | Reaction | Read
"""The kinds that name another message by ``target``."""

KNOWN_KINDS = frozenset(("text", "edit", "delete", "react", "typing", "read", "file", "successor"))


@dataclass(frozen=True, slots=True)
class Unsupported:
    """A well-formed payload of a kind this version does not know (a newer client's):
    shown as "unsupported message", never an error."""

    kind: str
    ts: int


Received = RoomPayload | Unsupported
"""What a decrypted message carries."""


class _Probe(msgspec.Struct, frozen=True):
    """The fields every kind, known or future, has."""

    t: str
    ts: Millis


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(RoomPayload)
_probe = msgspec.json.Decoder(_Probe)
_any = msgspec.json.Decoder()
MAX_INTEGER = 2**53
"""The largest magnitude of a JSON integer in any payload, so every JSON reader keeps it."""


def encode_payload(payload: RoomPayload) -> bytes:
    """The JSON bytes of ``payload``."""
    return _encoder.encode(payload)


def decode_sent(data: bytes) -> RoomPayload:
    """Strictly decode a payload of a kind this version sends, or raise ``PayloadError``."""
    try:
        payload: RoomPayload = _decoder.decode(data)
    except (msgspec.DecodeError, RecursionError):  # msgspec's guard on very deep nesting
        raise PayloadError("decrypted payload is not a valid room payload") from None
    if _encoder.encode(payload) != data:
        raise PayloadError("decrypted payload is not in canonical form")
    return payload


def decode_payload(data: bytes) -> Received:
    """Strictly decode a decrypted payload or raise ``PayloadError``.

    A JSON object whose ``t`` is a well-formed kind name this version does not know is
    ``Unsupported``; a known kind that fails its schema is an error.
    """
    try:
        return decode_sent(data)
    except PayloadError as exc:
        error = exc
    try:
        probe = _probe.decode(data)
    except (msgspec.DecodeError, RecursionError):
        raise error from None
    if probe.t in KNOWN_KINDS or not KIND_PATTERN.fullmatch(probe.t):
        raise error from None
    check_canonical(data)
    return Unsupported(probe.t, probe.ts)


def check_canonical(data: bytes) -> None:
    """Raise ``PayloadError`` unless ``data`` is a canonical JSON object whose first key is
    ``t``: compact, each key once, strings escaped only as msgspec escapes them, integers
    in plain decimal within 2^53, no other numbers. Key order is the sender's (a kind we
    do not know has no schema to fix it)."""
    try:
        value = _any.decode(data)
    except (msgspec.DecodeError, RecursionError):
        raise PayloadError("decrypted payload is not JSON") from None
    if not isinstance(value, dict) or next(iter(value), None) != "t":
        raise PayloadError("a payload is a JSON object whose first key is 't'")
    _check_numbers(value)
    if _encoder.encode(value) != data:
        raise PayloadError("decrypted payload is not in canonical form")


def _check_numbers(value: object) -> None:
    if isinstance(value, float) or (
        isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_INTEGER
    ):
        raise PayloadError("a payload's numbers are integers of at most 2^53")
    if isinstance(value, dict):
        for item in value.values():
            _check_numbers(item)
    elif isinstance(value, list):
        for item in value:
            _check_numbers(item)


def check_signer(payload: Received, signer: bytes) -> None:
    """Raise ``PayloadError`` if ``payload`` edits or deletes a message ``signer`` did
    not sign. Reactions and receipts may name anyone's message."""
    if isinstance(payload, Edit | Delete) and id_sender(payload.target) != signer:
        raise PayloadError(f"an {payload.__struct_config__.tag} names another sender's message")
