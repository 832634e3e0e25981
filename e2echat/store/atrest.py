"""At-rest encryption of the store's secret columns and message bodies.

The store key is derived from the identity, so whoever can load the identity can open
its store and nobody else can, and no second passphrase is needed. The identity object
exposes no raw seed, only signing; an Ed25519 signature is deterministic (RFC 8032), so
the signature over a label that nothing else ever signs is a secret only the identity
holder can compute, and hashing it with its own personalisation gives the key.

Each value is ``nonce(24) || XChaCha20-Poly1305(value, aad)``; the associated data names
the column and the row, so a value cannot be moved to another row or column unnoticed.
"""

from e2echat.crypto.errors import DecryptionError
from e2echat.crypto.identity import Identity
from e2echat.crypto.primitives import (
    NONCE_SIZE,
    aead_decrypt,
    aead_encrypt,
    blake2b,
    random_bytes,
)
from e2echat.protocol.transcripts import length_prefixed

STORE_KEY_LABEL = b"e2echat/v1/store-key"
STORE_KEY_PERSON = b"e2echat-store-v1"
CHECK_LABEL = b"e2echat/v1/store-check"


class StoreKeyError(Exception):
    """The store belongs to another identity, or a sealed value was altered."""


class Sealer:
    """Encrypts and decrypts values under the store key. Its repr shows nothing."""

    __slots__ = ("_key",)

    def __init__(self, identity: Identity) -> None:
        signature = identity.sign(length_prefixed(STORE_KEY_LABEL, identity.public_key))
        self._key = blake2b(signature, person=STORE_KEY_PERSON)

    def seal(self, value: bytes, *context: bytes) -> bytes:
        """Encrypt ``value`` bound to ``context`` (column label and row key)."""
        nonce = random_bytes(NONCE_SIZE)
        return nonce + aead_encrypt(self._key, nonce, value, length_prefixed(*context))

    def open(self, sealed: bytes, *context: bytes) -> bytes:
        """Decrypt a sealed value for the same ``context`` or raise ``StoreKeyError``."""
        try:
            return aead_decrypt(
                self._key, sealed[:NONCE_SIZE], sealed[NONCE_SIZE:], length_prefixed(*context)
            )
        except DecryptionError:
            raise StoreKeyError(
                "a stored value does not decrypt: the store belongs to another identity"
                " or was altered"
            ) from None

    def __repr__(self) -> str:
        return "Sealer(<redacted>)"

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("a Sealer is not picklable")
