"""Typed, minimal access to the PyNaCl (libsodium) calls the crypto core is built from.

Only the low-level bindings are used (for BLAKE2b, the binding under them): they are
the cheapest path into libsodium, which keeps our per-message overhead close to the bare
calls (see docs/benchmarks.md).
Every libsodium failure is translated into a ``CryptoError`` subclass here, once.
"""

import nacl.bindings as sodium
import nacl.exceptions
from nacl._sodium import ffi as _ffi
from nacl._sodium import lib as _lib

from e2echat.crypto.errors import DecryptionError, MalformedError, PrekeyError, SignatureError

KEY_SIZE = 32
"""Size of every symmetric key, chain key, public key and room secret."""
SIGNATURE_SIZE = 64
NONCE_SIZE = sodium.crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
TAG_SIZE = sodium.crypto_aead_xchacha20poly1305_ietf_ABYTES
SEAL_OVERHEAD = sodium.crypto_box_SEALBYTES


def random_bytes(size: int) -> bytes:
    """``size`` bytes from the operating system's CSPRNG (libsodium ``randombytes``)."""
    return sodium.randombytes(size)


_NO_SALT = bytes(sodium.crypto_generichash_SALTBYTES)


def blake2b(data: bytes, *, key: bytes = b"", person: bytes = b"", size: int = 32) -> bytes:
    """BLAKE2b of ``data``; ``person`` (at most 16 bytes) is zero-padded.

    It calls PyNaCl's libsodium binding (``nacl._sodium``, what ``nacl.bindings`` wraps)
    directly: the wrapper's per-call argument checks, which format their error messages
    eagerly, cost several times the hash of a chain step, and a received message takes
    three of these (docs/benchmarks.md, catch-up).
    """
    if not (
        isinstance(data, bytes)
        and len(key) <= sodium.crypto_generichash_KEYBYTES_MAX
        and len(person) <= sodium.crypto_generichash_PERSONALBYTES
        and sodium.crypto_generichash_BYTES_MIN <= size <= sodium.crypto_generichash_BYTES_MAX
    ):
        raise MalformedError("BLAKE2b input, key, personalization or size out of range")
    digest = _ffi.new("unsigned char[]", size)
    padded = person.ljust(sodium.crypto_generichash_PERSONALBYTES, b"\0")
    rc = _lib.crypto_generichash_blake2b_salt_personal(
        digest, size, data, len(data), key or _ffi.NULL, len(key), _NO_SALT, padded
    )
    if rc != 0:
        raise MalformedError("BLAKE2b failed")
    return bytes(_ffi.buffer(digest, size))


def sha512(data: bytes) -> bytes:
    """SHA-512 of ``data``."""
    return sodium.crypto_hash_sha512(data)


def sign(secret_key: bytes, message: bytes) -> bytes:
    """The 64-byte detached Ed25519 signature of ``message`` (``secret_key`` is 64 bytes)."""
    return sodium.crypto_sign(message, secret_key)[:SIGNATURE_SIZE]


def verify(public_key: bytes, message: bytes, signature: bytes) -> None:
    """Raise ``SignatureError`` unless ``signature`` is ``public_key``'s over ``message``."""
    if len(signature) != SIGNATURE_SIZE or len(public_key) != KEY_SIZE:
        raise SignatureError("signature or key has the wrong length")
    try:
        sodium.crypto_sign_open(signature + message, public_key)
    except nacl.exceptions.BadSignatureError:
        raise SignatureError("signature does not verify") from None


def aead_encrypt(key: bytes, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """XChaCha20-Poly1305-IETF encryption: ciphertext with its 16-byte tag appended."""
    return sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(plaintext, aad, nonce, key)


def aead_decrypt(key: bytes, nonce: bytes, ciphertext: bytes, aad: bytes) -> bytes:
    """Open an XChaCha20-Poly1305-IETF ciphertext or raise ``DecryptionError``."""
    try:
        return sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(ciphertext, aad, nonce, key)
    except nacl.exceptions.CryptoError:
        raise DecryptionError("ciphertext does not authenticate") from None


def seal(public_key: bytes, plaintext: bytes) -> bytes:
    """libsodium sealed box (ephemeral X25519 + XSalsa20-Poly1305) to ``public_key``."""
    try:
        return sodium.crypto_box_seal(plaintext, public_key)
    except nacl.exceptions.CryptoError:
        raise PrekeyError("cannot seal to this key (a low-order point?)") from None


def seal_open(public_key: bytes, secret_key: bytes, sealed: bytes) -> bytes:
    """Open a sealed box or raise ``DecryptionError``."""
    if len(sealed) < SEAL_OVERHEAD:
        raise DecryptionError("sealed box is too short")
    try:
        return sodium.crypto_box_seal_open(sealed, public_key, secret_key)
    except nacl.exceptions.CryptoError:
        raise DecryptionError("sealed box does not open") from None


def x25519_keypair() -> tuple[bytes, bytes]:
    """A fresh X25519 key pair ``(public, secret)``."""
    return sodium.crypto_box_keypair()


def x25519_public(secret_key: bytes) -> bytes:
    """The X25519 public key of ``secret_key``."""
    return sodium.crypto_scalarmult_base(secret_key)


_PROBE_SCALAR = bytes(range(1, KEY_SIZE + 1))
"""Any fixed scalar: clamping makes it a multiple of the cofactor, so a low-order point
always multiplies to zero, whatever the scalar."""


def x25519_usable(public_key: bytes) -> bool:
    """Whether ``public_key`` can be sealed to: not a low-order (non-contributory) point.

    libsodium refuses to seal to such a key (the shared secret would be all zeros), so
    a signed prekey must be checked with this before we rely on it.
    """
    try:
        sodium.crypto_scalarmult(_PROBE_SCALAR, public_key)
    except nacl.exceptions.CryptoError:
        return False
    return True


def ed25519_keypair(seed: bytes) -> tuple[bytes, bytes]:
    """The Ed25519 key pair ``(public 32, secret 64)`` of a 32-byte ``seed``."""
    return sodium.crypto_sign_seed_keypair(seed)


def pad(data: bytes, block: int) -> bytes:
    """ISO/IEC 7816-4 padding (0x80 then zeros) to a non-zero multiple of ``block``."""
    return sodium.sodium_pad(data, block)


def unpad(data: bytes, block: int) -> bytes:
    """Strictly remove ISO/IEC 7816-4 padding or raise ``MalformedError``."""
    if not data or len(data) % block:
        raise MalformedError("padded plaintext has the wrong length")
    try:
        return sodium.sodium_unpad(data, block)
    except nacl.exceptions.CryptoError:
        raise MalformedError("plaintext padding is invalid") from None


def argon2id(password: bytes, salt: bytes, *, opslimit: int, memlimit: int) -> bytes:
    """A 32-byte Argon2id key of ``password`` and a 16-byte ``salt``."""
    return sodium.crypto_pwhash_alg(
        KEY_SIZE, password, salt, opslimit, memlimit, sodium.crypto_pwhash_ALG_ARGON2ID13
    )
