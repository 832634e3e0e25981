"""The room message body: ``hdr || ct || sig``, byte for byte as in docs/crypto.md.

``hdr = v(1)=1 || kind(1)=0x01 || room_id(16) || sender(32) || chain_id(16) ||
index(u32 BE) || nonce(24) || kc(32) || log_length(u32 BE) || log_head(32)`` is the AEAD
associated data, the plaintext is padded to a multiple of 256 bytes, and the sender signs
``length_prefixed("e2echat/v1/msg", hdr, ct)``. ``kc`` is the key commitment
``B2(mk)``: a receiver opens the ciphertext only with the one key the sender signed for.
``log_length, log_head`` is the sender's view of the room's membership log, which
receivers compare with theirs. These functions are pure: the ratchet state lives in
``chain`` and ``session``.
"""

import hmac
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

from e2echat.crypto.errors import DecryptionError, MalformedError, PayloadError
from e2echat.crypto.kdf import key_commitment
from e2echat.crypto.primitives import (
    NONCE_SIZE,
    SIGNATURE_SIZE,
    TAG_SIZE,
    aead_decrypt,
    aead_encrypt,
    pad,
    random_bytes,
    unpad,
    verify,
)
from e2echat.protocol.constants import MAX_BODY as PROTOCOL_MAX_BODY
from e2echat.protocol.transcripts import length_prefixed

VERSION = 1
KIND_ROOM = 0x01
KIND_DIRECT = 0x02
ROOM_ID_SIZE = 16
CHAIN_ID_SIZE = 16
PAD_BLOCK = 256
MAX_BODY = PROTOCOL_MAX_BODY  # the largest body a relay may accept
MESSAGE_LABEL = b"e2echat/v1/msg"

_HEADER = struct.Struct(">BB16s32s16sI24s32sI32s")
HEADER_SIZE = _HEADER.size
MIN_BODY = HEADER_SIZE + PAD_BLOCK + TAG_SIZE + SIGNATURE_SIZE
SignFn = Callable[[bytes], bytes]
"""Signs a transcript with the sender's identity (``Identity.sign``)."""

MAX_PAYLOAD = (MAX_BODY - HEADER_SIZE - TAG_SIZE - SIGNATURE_SIZE) // PAD_BLOCK * PAD_BLOCK - 1
"""The largest payload whose padded body still fits the relay's 48 KiB body limit."""


@dataclass(frozen=True, slots=True)
class Header:
    """The parsed cleartext header of a room message."""

    room_id: bytes
    sender: bytes
    chain_id: bytes
    index: int
    nonce: bytes
    commitment: bytes
    log_length: int = 0
    log_head: bytes = bytes(32)


class RoomBody(NamedTuple):
    """A strictly parsed room body, not yet verified or decrypted."""

    header: Header
    header_bytes: bytes
    ciphertext: bytes
    signature: bytes

    def verify(self) -> None:
        """Raise ``SignatureError`` unless the header's sender signed header and ciphertext."""
        verify(
            self.header.sender,
            signed_transcript(self.header_bytes, self.ciphertext),
            self.signature,
        )

    def decrypt(self, message_key: bytes) -> bytes:
        """The unpadded plaintext under ``message_key`` (raises on any alteration).

        The key must match the signed commitment first: a member given another key for
        this chain (an equivocating sender) rejects the message instead of reading
        another text from the same signed bytes.
        """
        if not hmac.compare_digest(key_commitment(message_key), self.header.commitment):
            raise DecryptionError("message key does not match the signed key commitment")
        padded = aead_decrypt(message_key, self.header.nonce, self.ciphertext, self.header_bytes)
        return unpad(padded, PAD_BLOCK)


def signed_transcript(header_bytes: bytes, ciphertext: bytes) -> bytes:
    """The bytes a sender signs for a room message."""
    return length_prefixed(MESSAGE_LABEL, header_bytes, ciphertext)


def encode_header(header: Header) -> bytes:
    """The 162-byte header."""
    return _HEADER.pack(
        VERSION,
        KIND_ROOM,
        header.room_id,
        header.sender,
        header.chain_id,
        header.index,
        header.nonce,
        header.commitment,
        header.log_length,
        header.log_head,
    )


def seal_body(
    sign: SignFn,
    room_id: bytes,
    sender: bytes,
    chain_id: bytes,
    index: int,
    message_key: bytes,
    payload: bytes,
    nonce: bytes | None = None,
    *,
    log_length: int = 0,
    log_head: bytes = bytes(32),
) -> bytes:
    """Encrypt, then sign, ``payload`` as message ``index`` of a chain; the body bytes.

    ``nonce`` is random unless given (known-answer vectors only); ``log_length`` and
    ``log_head`` are our position in the room's membership log (zero: no log).
    """
    if len(payload) > MAX_PAYLOAD:
        raise PayloadError(f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD}")
    header = Header(
        room_id,
        sender,
        chain_id,
        index,
        nonce or random_bytes(NONCE_SIZE),
        key_commitment(message_key),
        log_length,
        log_head,
    )
    header_bytes = encode_header(header)
    ciphertext = aead_encrypt(message_key, header.nonce, pad(payload, PAD_BLOCK), header_bytes)
    return header_bytes + ciphertext + sign(signed_transcript(header_bytes, ciphertext))


def body_digest(body: bytes) -> bytes:
    """A name of these exact body bytes, for a body whose signature VERIFIED: its
    64-byte Ed25519 signature (not secret: the relay sees the body).

    The outcome of a receipt carries it so that the client can tell a resent copy of a
    message it already delivered (the very same bytes, dropped quietly) from a replay
    with other bytes (reported); the replay check itself does not depend on it. Two
    verified bodies with one signature are one body: the signature binds the sender's
    key and ``hdr || ct`` (the rest of the body), and libsodium's strict verification
    leaves no second valid encoding, so a different body under the same signature would
    take an Ed25519 forgery (a SHA-512 collision), even for the key's owner. It costs
    nothing, where hashing the body cost 4.5 µs per message (a few % of the receive path).
    """
    return body[-SIGNATURE_SIZE:]


def parse_body(body: bytes) -> RoomBody:
    """Strictly split a room body; raises ``MalformedError`` on any layout violation."""
    size = len(body)
    if size < MIN_BODY or size > MAX_BODY:
        raise MalformedError("room body has an invalid length")
    if (size - HEADER_SIZE - TAG_SIZE - SIGNATURE_SIZE) % PAD_BLOCK:
        raise MalformedError("room body ciphertext is not a whole number of pad blocks")
    fields = _HEADER.unpack_from(body)
    version, kind, room_id, sender, chain_id, index, nonce, commitment, length, head = fields
    if version != VERSION or kind != KIND_ROOM:
        raise MalformedError("not a v1 room message body")
    return RoomBody(
        Header(room_id, sender, chain_id, index, nonce, commitment, length, head),
        body[:HEADER_SIZE],
        body[HEADER_SIZE:-SIGNATURE_SIZE],
        body[-SIGNATURE_SIZE:],
    )
