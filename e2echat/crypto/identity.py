"""The identity key: Ed25519, one per device; its public key is the user id.

At rest it is a small binary file (layout in docs/crypto.md): the seed sealed with
XChaCha20-Poly1305 under an Argon2id key of the passphrase, with the whole header as
associated data so no field can be swapped. An unencrypted file exists only by explicit
choice (bots), is written with mode 0600 and raises ``UnencryptedKeyWarning``.
Loading never writes: a wrong passphrase or a corrupt file leaves the file untouched.
"""

import os
import struct
import tempfile
import warnings
from pathlib import Path
from typing import NamedTuple

import nacl.bindings as sodium

from e2echat.crypto.errors import DecryptionError, KeyFileError, PassphraseError
from e2echat.crypto.primitives import (
    KEY_SIZE,
    NONCE_SIZE,
    TAG_SIZE,
    aead_decrypt,
    aead_encrypt,
    argon2id,
    ed25519_keypair,
    random_bytes,
    sign,
)

MAGIC = b"e2echat-identity"
VERSION = 1
MODE_PLAIN = 0
MODE_ENCRYPTED = 1
SALT_SIZE = 16
_PREFIX = struct.Struct(">16sBB32s")  # magic, version, mode, public key
_KDF_PARAMS = struct.Struct(">IQ16s24s")  # opslimit, memlimit, salt, nonce
PLAIN_SIZE = _PREFIX.size + KEY_SIZE
ENCRYPTED_SIZE = _PREFIX.size + _KDF_PARAMS.size + KEY_SIZE + TAG_SIZE


class KdfLimits(NamedTuple):
    """Argon2id cost: ``opslimit`` passes over ``memlimit`` bytes of memory."""

    opslimit: int
    memlimit: int


MODERATE = KdfLimits(
    sodium.crypto_pwhash_argon2id_OPSLIMIT_MODERATE, sodium.crypto_pwhash_argon2id_MEMLIMIT_MODERATE
)
"""Identity files: about a second and 256 MiB, paid once per start."""
INTERACTIVE = KdfLimits(
    sodium.crypto_pwhash_argon2id_OPSLIMIT_INTERACTIVE,
    sodium.crypto_pwhash_argon2id_MEMLIMIT_INTERACTIVE,
)
"""Room passwords: a join stays well under a second."""
_MAX_LIMITS = KdfLimits(
    sodium.crypto_pwhash_argon2id_OPSLIMIT_SENSITIVE,
    sodium.crypto_pwhash_argon2id_MEMLIMIT_SENSITIVE,
)
_MIN_LIMITS = KdfLimits(
    sodium.crypto_pwhash_argon2id_OPSLIMIT_MIN, sodium.crypto_pwhash_argon2id_MEMLIMIT_MIN
)


class UnencryptedKeyWarning(UserWarning):
    """An identity key was written without a passphrase."""


class Identity:
    """An Ed25519 identity key pair. Its repr shows the public key only."""

    __slots__ = ("_public_key", "_secret_key", "_seed")

    def __init__(self, seed: bytes) -> None:
        if len(seed) != KEY_SIZE:
            raise KeyFileError("an identity seed is 32 bytes")
        self._seed = seed
        self._public_key, self._secret_key = ed25519_keypair(seed)

    @classmethod
    def generate(cls) -> "Identity":
        """A fresh identity from the OS random generator."""
        return cls(random_bytes(KEY_SIZE))

    @property
    def public_key(self) -> bytes:
        """The 32-byte Ed25519 public key: the user id."""
        return self._public_key

    def sign(self, message: bytes) -> bytes:
        """The detached Ed25519 signature of ``message``."""
        return sign(self._secret_key, message)

    def __repr__(self) -> str:
        return f"Identity(public_key={self._public_key.hex()}, secret=<redacted>)"

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("an Identity is not picklable; save it with save()")

    def save(
        self, path: Path, passphrase: str, *, limits: KdfLimits = MODERATE, overwrite: bool = True
    ) -> None:
        """Write the identity to ``path`` encrypted under ``passphrase`` (atomic, 0600).

        With ``overwrite=False`` an existing file is left alone: ``FileExistsError``.
        """
        data = self.encrypted_file(
            passphrase, limits, random_bytes(SALT_SIZE), random_bytes(NONCE_SIZE)
        )
        _write_private(path, data, overwrite)

    def encrypted_file(
        self, passphrase: str, limits: KdfLimits, salt: bytes, nonce: bytes
    ) -> bytes:
        """The bytes of an encrypted identity file (``save`` draws ``salt`` and ``nonce``
        at random; fixed ones are for known-answer vectors)."""
        if not passphrase:
            raise PassphraseError("an empty passphrase is not allowed; use save_unencrypted")
        _check_limits(limits)
        prefix = _PREFIX.pack(MAGIC, VERSION, MODE_ENCRYPTED, self._public_key)
        header = prefix + _KDF_PARAMS.pack(limits.opslimit, limits.memlimit, salt, nonce)
        key = argon2id(
            passphrase.encode(), salt, opslimit=limits.opslimit, memlimit=limits.memlimit
        )
        return header + aead_encrypt(key, nonce, self._seed, header)

    def plain_file(self) -> bytes:
        """The bytes of an unencrypted identity file (what ``save_unencrypted`` writes)."""
        return _PREFIX.pack(MAGIC, VERSION, MODE_PLAIN, self._public_key) + self._seed

    def save_unencrypted(self, path: Path, *, overwrite: bool = True, stacklevel: int = 2) -> None:
        """Write the identity to ``path`` in clear (atomic, mode 0600), with a warning.

        ``stacklevel`` is passed to ``warnings.warn``, so that a wrapper can point the
        warning at its own caller's line.
        """
        _write_private(path, self.plain_file(), overwrite)
        warnings.warn(
            f"identity key written WITHOUT encryption to {path}; protect this file",
            UnencryptedKeyWarning,
            stacklevel=stacklevel,
        )

    @classmethod
    def load(cls, path: Path, passphrase: str | None = None) -> "Identity":
        """Read an identity file; ``passphrase`` is needed if it is encrypted."""
        data = _read(path)
        _magic, _version, mode, public_key = _PREFIX.unpack_from(data)
        if mode == MODE_PLAIN:
            if len(data) != PLAIN_SIZE:
                raise KeyFileError(f"identity file {path} has the wrong size")
            identity = cls(data[_PREFIX.size :])
        else:
            if len(data) != ENCRYPTED_SIZE:
                raise KeyFileError(f"identity file {path} has the wrong size")
            if passphrase is None:
                raise PassphraseError(f"identity file {path} is encrypted: a passphrase is needed")
            opslimit, memlimit, salt, nonce = _KDF_PARAMS.unpack_from(data, _PREFIX.size)
            limits = KdfLimits(opslimit, memlimit)
            try:
                _check_limits(limits)
            except KeyFileError:
                raise KeyFileError(f"identity file {path} has invalid Argon2id limits") from None
            header_size = _PREFIX.size + _KDF_PARAMS.size
            key = argon2id(passphrase.encode(), salt, opslimit=opslimit, memlimit=memlimit)
            try:
                seed = aead_decrypt(key, nonce, data[header_size:], data[:header_size])
            except DecryptionError:
                raise PassphraseError(
                    f"wrong passphrase for identity file {path} (or the file was altered)"
                ) from None
            identity = cls(seed)
        if identity.public_key != public_key:
            raise KeyFileError(f"identity file {path} is corrupt: key pair does not match")
        return identity


def read_public_key(path: Path) -> bytes:
    """The public key recorded in an identity file, without needing the passphrase."""
    return _PREFIX.unpack_from(_read(path))[3]  # type: ignore[no-any-return]


def _read(path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise KeyFileError(f"cannot read identity file {path}: {exc.strerror}") from None
    if len(data) < _PREFIX.size:
        raise KeyFileError(f"identity file {path} is truncated")
    magic, version, mode, _ = _PREFIX.unpack_from(data)
    if magic != MAGIC or version != VERSION or mode not in (MODE_PLAIN, MODE_ENCRYPTED):
        raise KeyFileError(f"{path} is not an e2echat identity file (v{VERSION})")
    return data


def _check_limits(limits: KdfLimits) -> None:
    if not (
        _MIN_LIMITS.opslimit <= limits.opslimit <= _MAX_LIMITS.opslimit
        and _MIN_LIMITS.memlimit <= limits.memlimit <= _MAX_LIMITS.memlimit
    ):
        raise KeyFileError("Argon2id limits are out of range")


def _write_private(path: Path, data: bytes, overwrite: bool) -> None:
    """Write ``data`` atomically and durably: a 0600 temporary file in the same directory,
    fsync, rename (or, without ``overwrite``, a hard link that fails if ``path`` exists,
    so two processes racing to create an identity cannot replace each other's), fsync of
    the directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".identity-", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # the rename itself survives a crash
    finally:
        os.close(directory)
