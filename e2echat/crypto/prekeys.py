"""Signed prekeys: X25519 keys that direct envelopes are sealed to.

The identity signs ``prekey_transcript(id, key)`` (from e2echat.protocol) so the relay
cannot substitute its own prekey. Prekeys rotate weekly; a replaced private prekey is
kept for a grace period (envelopes sealed to it may still sit in a mailbox), then
deleted, which makes old envelopes unreadable even to us: forward secrecy for shares.
"""

from typing import Annotated, Any

import msgspec

from e2echat.crypto.errors import PrekeyError, SignatureError
from e2echat.crypto.identity import Identity
from e2echat.crypto.primitives import (
    KEY_SIZE,
    SIGNATURE_SIZE,
    random_bytes,
    verify,
    x25519_keypair,
    x25519_usable,
)
from e2echat.crypto.redact import redacted_fields
from e2echat.protocol.transcripts import prekey_transcript

U32_MAX = 2**32 - 1
Key32 = Annotated[bytes, msgspec.Meta(min_length=KEY_SIZE, max_length=KEY_SIZE)]
Sig64 = Annotated[bytes, msgspec.Meta(min_length=SIGNATURE_SIZE, max_length=SIGNATURE_SIZE)]
U32 = Annotated[int, msgspec.Meta(ge=0, le=U32_MAX)]


class SignedPrekey(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The wire form ``{id, key, sig}``: public, so it has a plain repr."""

    id: U32
    key: Key32
    sig: Sig64

    def verify(self, owner: bytes) -> None:
        """Raise ``PrekeyError`` unless ``owner`` signed this prekey and it is usable.

        A member could sign a low-order point; sealing to it fails inside libsodium, so
        it is refused here rather than failing every later ``encrypt`` in the room."""
        if not 0 <= self.id <= U32_MAX or len(self.key) != KEY_SIZE:
            # msgspec does not validate on construction: a caller-built prekey may be
            # out of the wire ranges, and must not be stored (it would not decode)
            raise PrekeyError("signed prekey id or key is out of range")
        try:
            verify(owner, prekey_transcript(self.id, self.key), self.sig)
        except SignatureError:
            raise PrekeyError("signed prekey does not verify for its owner") from None
        if not x25519_usable(self.key):
            raise PrekeyError("signed prekey is a low-order X25519 point")


class PrekeyRecord(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One of our own prekeys as persisted; ``retired`` is when it stopped being current."""

    id: U32
    secret: Key32
    signed: SignedPrekey
    created: int
    retired: int | None = None

    def __repr__(self) -> str:
        return f"PrekeyRecord(id={self.id}, created={self.created}, retired={self.retired})"

    def __rich_repr__(self) -> list[tuple[str, Any]]:
        return redacted_fields(self, ("secret",))


def new_prekey(identity: Identity, now: int, taken: set[int]) -> PrekeyRecord:
    """A fresh signed prekey with a random non-zero u32 id not in ``taken``."""
    prekey_id = 0
    while prekey_id == 0 or prekey_id in taken:
        prekey_id = int.from_bytes(random_bytes(4), "big")
    public, secret = x25519_keypair()
    sig = identity.sign(prekey_transcript(prekey_id, public))
    return PrekeyRecord(prekey_id, secret, SignedPrekey(prekey_id, public, sig), created=now)
