"""Direct envelopes: signed, then sealed to the recipient's signed prekey.

``body = v(1)=1 || kind(1)=0x02 || spk_id(u32 BE) || SealedBox(SPK, inner || sig)`` with
``sig = Ed25519(length_prefixed("e2echat/v1/direct", inner))``. ``inner`` is JSON naming
both ``from`` and ``to`` inside the signed bytes, so an envelope cannot be re-sealed to
someone else (the sign-then-encrypt forwarding attack). Opening verifies the signature
against the relay's claimed sender BEFORE parsing, then checks ``to``, ``from`` and
freshness.
"""

import struct
from typing import Annotated, Any

import msgspec

from e2echat.crypto.errors import (
    DecryptionError,
    EnvelopeError,
    MalformedError,
    StaleEnvelopeError,
)
from e2echat.crypto.message import CHAIN_ID_SIZE, KIND_DIRECT, ROOM_ID_SIZE, VERSION, SignFn
from e2echat.crypto.prekeys import U32, Key32, SignedPrekey
from e2echat.crypto.primitives import SIGNATURE_SIZE, seal, seal_open, verify
from e2echat.crypto.redact import redacted_fields
from e2echat.protocol.transcripts import length_prefixed

DIRECT_LABEL = b"e2echat/v1/direct"
MAX_AGE_MS = 7 * 24 * 3600 * 1000
"""Oldest acceptable ``created``: a mailbox may hold an envelope while we are away."""
MAX_SKEW_MS = 10 * 60 * 1000
"""Largest acceptable clock skew into the future."""
MAX_INNER = 4096

_PREFIX = struct.Struct(">BBI")
RoomId = Annotated[bytes, msgspec.Meta(min_length=ROOM_ID_SIZE, max_length=ROOM_ID_SIZE)]
ChainId = Annotated[bytes, msgspec.Meta(min_length=CHAIN_ID_SIZE, max_length=CHAIN_ID_SIZE)]
Proof = Annotated[bytes, msgspec.Meta(min_length=32, max_length=32)]
Nonce = Annotated[bytes, msgspec.Meta(min_length=16, max_length=16)]
"""The fresh nonce of a membership proof: each is accepted once per prover."""
Millis = Annotated[int, msgspec.Meta(ge=0, le=2**53)]


class _Direct(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag_field="t"):
    """Fields every direct payload carries (all inside the signed bytes)."""

    sender: Key32 = msgspec.field(name="from")
    to: Key32
    room_id: RoomId
    created: Millis


class Share(_Direct, frozen=True, tag="share"):
    """The sender's own chain ``chain_id`` at ``index``, whose chain key is ``ck``."""

    chain_id: ChainId
    index: U32
    ck: Key32
    proof: Proof | None = None
    epoch: U32 = 0
    nonce: Nonce | None = None

    def __repr__(self) -> str:
        return f"Share(chain_id={self.chain_id.hex()}, index={self.index}, ck=<redacted>)"

    def __rich_repr__(self) -> list[tuple[str, Any]]:
        return redacted_fields(self, ("ck", "proof"))


class Join(_Direct, frozen=True, tag="join"):
    """A joiner's membership proof to one member."""

    proof: Proof
    epoch: U32 = 0
    nonce: Nonce | None = None

    def __repr__(self) -> str:
        return f"Join(room_id={self.room_id.hex()}, proof=<redacted>)"

    def __rich_repr__(self) -> list[tuple[str, Any]]:
        return redacted_fields(self, ("proof",))


class KeyRequest(_Direct, frozen=True, tag="key_request"):
    """Asks the owner of ``chain_id`` to share it again."""

    chain_id: ChainId
    proof: Proof | None = None
    epoch: U32 = 0
    nonce: Nonce | None = None

    def __repr__(self) -> str:
        return f"KeyRequest(chain_id={self.chain_id.hex()}, proof=<redacted>)"

    def __rich_repr__(self) -> list[tuple[str, Any]]:
        return redacted_fields(self, ("proof",))


class RoomKey(_Direct, frozen=True, tag="room_key"):
    """The room secret of ``epoch``, from the member that rotated it to a remaining member.

    It is accepted only if it matches the verifier that the membership log's signed
    rotation entry for that epoch commits to, so it needs no proof of its own.
    """

    epoch: U32
    secret: Key32
    salt: Annotated[bytes, msgspec.Meta(max_length=16)] = b""

    def __repr__(self) -> str:
        return f"RoomKey(room_id={self.room_id.hex()}, epoch={self.epoch}, secret=<redacted>)"

    def __rich_repr__(self) -> list[tuple[str, Any]]:
        return redacted_fields(self, ("secret",))


RoomName = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")]


class DirectInvite(_Direct, frozen=True, tag="dm"):
    """An invitation to the direct conversation ``room_id``: the secret two-member room
    called ``name`` whose room secret is ``secret`` (crypto.md section 14).

    Signed by the inviter and sealed to the one invitee, so only that key learns the
    secret; the invitee enters only the room of this id, and only with these two keys.
    """

    name: RoomName
    secret: Key32

    def __repr__(self) -> str:
        return f"DirectInvite(room_id={self.room_id.hex()}, name={self.name!r}, secret=<redacted>)"

    def __rich_repr__(self) -> list[tuple[str, Any]]:
        return redacted_fields(self, ("secret",))


class RoomKeyRequest(_Direct, frozen=True, tag="room_key_request"):
    """Asks a member for the room secret of ``epoch``, which the sender lacks (it was
    offline or its prekey changed when the secret was rotated, section 13.3).

    No proof: the sender is authenticated by the envelope's signature, and the log says
    whether it is a member of that epoch, so entitled to the secret.
    """

    epoch: U32


DirectPayload = Share | Join | KeyRequest | RoomKey | DirectInvite | RoomKeyRequest

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(DirectPayload)


def direct_transcript(inner: bytes) -> bytes:
    """The bytes a sender signs for a direct envelope."""
    return length_prefixed(DIRECT_LABEL, inner)


def encode_direct(payload: DirectPayload) -> bytes:
    """The ``inner`` JSON of ``payload``: its canonical bytes (crypto.md section 8.2)."""
    return _encoder.encode(payload)


def seal_direct(sign: SignFn, payload: DirectPayload, prekey: SignedPrekey) -> bytes:
    """Sign ``payload`` and seal it to ``prekey`` (already verified by the caller)."""
    inner = encode_direct(payload)
    sealed = seal(prekey.key, inner + sign(direct_transcript(inner)))
    return _PREFIX.pack(VERSION, KIND_DIRECT, prekey.id) + sealed


def direct_prekey_id(body: bytes) -> int:
    """The id of the prekey a direct body is sealed to (so the right secret can be found)."""
    if len(body) < _PREFIX.size:
        raise MalformedError("direct body is too short")
    version, kind, prekey_id = _PREFIX.unpack_from(body)
    if version != VERSION or kind != KIND_DIRECT:
        raise MalformedError("not a v1 direct body")
    return prekey_id  # type: ignore[no-any-return]


def open_direct(
    body: bytes,
    *,
    prekey_public: bytes,
    prekey_secret: bytes,
    me: bytes,
    claimed_sender: bytes,
    now: int,
) -> DirectPayload:
    """Open, verify and check a direct body; raises a ``CryptoError`` on any failure.

    ``claimed_sender`` is the relay's ``from``; ``now`` is Unix time in milliseconds.
    """
    direct_prekey_id(body)
    try:
        opened = seal_open(prekey_public, prekey_secret, body[_PREFIX.size :])
    except DecryptionError:
        raise DecryptionError("direct envelope does not open with our prekey") from None
    if len(opened) <= SIGNATURE_SIZE or len(opened) - SIGNATURE_SIZE > MAX_INNER:
        raise MalformedError("direct envelope has an invalid length")
    inner, signature = opened[:-SIGNATURE_SIZE], opened[-SIGNATURE_SIZE:]
    verify(claimed_sender, direct_transcript(inner), signature)
    try:
        payload: DirectPayload = _decoder.decode(inner)
    except (msgspec.DecodeError, RecursionError):  # msgspec's guard on very deep nesting
        raise MalformedError("direct envelope payload is not a valid direct payload") from None
    if encode_direct(payload) != inner:
        raise MalformedError("direct envelope payload is not in canonical form")
    if payload.sender != claimed_sender:
        raise EnvelopeError("direct envelope 'from' differs from the relay's sender")
    if payload.to != me:
        raise EnvelopeError("direct envelope is addressed to someone else")
    if payload.created < now - MAX_AGE_MS:
        raise StaleEnvelopeError(
            f"direct envelope is too old: dated {duration_text(now - payload.created)} before our"
            " clock, more than the 7 days accepted (the sender's clock is behind, or ours"
            " ahead)",
            payload,
        )
    if payload.created > now + MAX_SKEW_MS:
        raise StaleEnvelopeError(
            f"direct envelope is dated in the future: {duration_text(payload.created - now)} ahead"
            " of our clock, more than the 10 minutes accepted (the sender's clock is ahead,"
            " or ours behind)",
            payload,
        )
    return payload


def duration_text(ms: int) -> str:
    """A duration in ms for a person: minutes, hours or days, to the nearest (a clock
    8 days off, measured a few milliseconds late, is still "8 days")."""
    minutes = ms / 60_000
    if minutes < 119.5:
        return f"{round(minutes)} minutes"
    if minutes < 47.5 * 60:
        return f"{round(minutes / 60)} hours"
    return f"{round(minutes / (24 * 60))} days"
