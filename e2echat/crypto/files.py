"""Encrypted files: a fresh key per file, libsodium secretstream in fixed-size chunks.

A file travels as an opaque *blob* that the relay stores and serves; the key, the
blob's hash, the file's size, name and media type travel only inside a room (or
direct) message, so the relay sees none of them. The layout (docs/crypto.md, "Files"):

    blob = header(24) || c_0 || ... || c_{n-1}
    c_i  = secretstream_push(chunk_i, ad = none, tag = MESSAGE, or FINAL for i = n-1)

Every chunk but the last holds exactly ``CHUNK_SIZE`` plaintext bytes; the last holds
the rest (1 to ``CHUNK_SIZE`` bytes, or 0 for an empty file, which is one empty final
chunk). So the blob's length follows from the plaintext size, and a receiver knows
before it starts how many bytes to expect: a short, long, reordered, spliced or altered
blob fails in the chunk where it happens, before any of that chunk is released.

Both directions are incremental (constant memory whatever the file's size) and do no
I/O: the shell reads and writes the bytes.
"""

from typing import Final

import nacl.bindings as sodium
import nacl.exceptions
import nacl.hashlib

from e2echat.crypto.errors import FileError
from e2echat.crypto.primitives import KEY_SIZE, random_bytes

CHUNK_SIZE: Final = 64 * 1024
"""Plaintext bytes per chunk (the last chunk may be shorter)."""
HEADER_SIZE: Final = sodium.crypto_secretstream_xchacha20poly1305_HEADERBYTES
CHUNK_OVERHEAD: Final = sodium.crypto_secretstream_xchacha20poly1305_ABYTES
MAX_FILE_SIZE: Final = 2**40
"""The largest plaintext the format allows (1 TiB); relays set their own, lower limit."""
BLOB_HASH_PERSON: Final = b"e2echat-blob-v1"
HASH_SIZE: Final = 32

_TAG_MESSAGE: Final = sodium.crypto_secretstream_xchacha20poly1305_TAG_MESSAGE
_TAG_FINAL: Final = sodium.crypto_secretstream_xchacha20poly1305_TAG_FINAL


def new_file_key() -> bytes:
    """A fresh 32-byte file key: never reuse one for a second file."""
    return random_bytes(KEY_SIZE)


def chunk_count(size: int) -> int:
    """How many chunks a plaintext of ``size`` bytes is cut into (at least one)."""
    _check_size(size)
    return max(1, -(-size // CHUNK_SIZE))


def blob_size(size: int) -> int:
    """The exact length of the blob of a ``size``-byte plaintext."""
    return HEADER_SIZE + size + CHUNK_OVERHEAD * chunk_count(size)


def _check_size(size: int) -> None:
    if not 0 <= size <= MAX_FILE_SIZE:
        raise FileError(f"a file must be 0 to {MAX_FILE_SIZE} bytes")


def _hasher() -> "nacl.hashlib.blake2b":
    return nacl.hashlib.blake2b(digest_size=HASH_SIZE, person=BLOB_HASH_PERSON)


def blob_hash(blob: bytes) -> bytes:
    """BLAKE2b-256 of a whole blob (person ``e2echat-blob-v1``)."""
    hasher = _hasher()
    hasher.update(blob)
    return hasher.digest()


class FileEncryptor:
    """Turns plaintext, fed in pieces of any size, into the blob's bytes.

    ``size`` is the plaintext's length, fixed up front because it decides which chunk
    is final; feeding more or fewer bytes than that is an error (a file that changed
    while it was being sent). ``hash`` is available once ``finish`` has run.
    """

    def __init__(self, key: bytes, size: int) -> None:
        if len(key) != KEY_SIZE:
            raise FileError("a file key is 32 bytes")
        _check_size(size)
        self._state = sodium.crypto_secretstream_xchacha20poly1305_state()
        self._header = sodium.crypto_secretstream_xchacha20poly1305_init_push(self._state, key)
        self._remaining = size
        self._pending = bytearray()
        self._hasher = _hasher()
        self._hasher.update(self._header)
        self._started = False
        self._hash: bytes | None = None

    def __repr__(self) -> str:
        return f"FileEncryptor(remaining={self._remaining})"

    def update(self, data: bytes) -> bytes:
        """Blob bytes for ``data`` (the header first); may be empty until a chunk fills."""
        if self._hash is not None:
            raise FileError("the file was already finished")
        if len(data) > self._remaining - len(self._pending):
            raise FileError("the file is longer than its declared size (did it change?)")
        self._pending += data
        out = bytearray()
        if not self._started:
            out += self._header
            self._started = True
        # Keep the last chunk back: it must carry the FINAL tag.
        while len(self._pending) >= CHUNK_SIZE and self._remaining > CHUNK_SIZE:
            out += self._push(bytes(self._pending[:CHUNK_SIZE]), _TAG_MESSAGE)
            del self._pending[:CHUNK_SIZE]
        return bytes(out)

    def finish(self) -> bytes:
        """The last blob bytes (the final chunk); raises if the plaintext fell short."""
        if self._hash is not None:
            raise FileError("the file was already finished")
        if len(self._pending) != self._remaining:
            raise FileError("the file is shorter than its declared size (did it change?)")
        out = bytearray()
        if not self._started:
            out += self._header
            self._started = True
        out += self._push(bytes(self._pending), _TAG_FINAL)
        self._pending.clear()
        self._hash = self._hasher.digest()
        return bytes(out)

    @property
    def hash(self) -> bytes:
        """The blob's hash, to put in the message that carries the key."""
        if self._hash is None:
            raise FileError("the blob's hash is known only after finish()")
        return self._hash

    def _push(self, chunk: bytes, tag: int) -> bytes:
        sealed = sodium.crypto_secretstream_xchacha20poly1305_push(self._state, chunk, None, tag)
        self._remaining -= len(chunk)
        self._hasher.update(sealed)
        return bytes(sealed)


class FileDecryptor:
    """Checks and opens a blob fed in pieces of any size, chunk by chunk.

    ``size`` and ``expected_hash`` come from the signed message. Plaintext is released
    only for chunks that authenticated; ``finish`` raises unless every byte arrived, the
    final chunk was last, and the blob's hash is the one the sender signed. A caller
    writes plaintext to a temporary file and keeps it only once ``finish`` returned.
    """

    def __init__(self, key: bytes, size: int, expected_hash: bytes) -> None:
        if len(key) != KEY_SIZE:
            raise FileError("a file key is 32 bytes")
        if len(expected_hash) != HASH_SIZE:
            raise FileError("a blob hash is 32 bytes")
        _check_size(size)
        self._key = key
        self._state = sodium.crypto_secretstream_xchacha20poly1305_state()
        self._expected_hash = expected_hash
        self._expected = blob_size(size)
        self._received = 0
        self._chunks_left = chunk_count(size)
        self._last_len = size - CHUNK_SIZE * (self._chunks_left - 1) + CHUNK_OVERHEAD
        self._pending = bytearray()
        self._hasher = _hasher()
        self._opened = False
        self._done = False

    def __repr__(self) -> str:
        return f"FileDecryptor(received={self._received}, expected={self._expected})"

    @property
    def received(self) -> int:
        """Blob bytes fed so far (for progress)."""
        return self._received

    def update(self, data: bytes) -> bytes:
        """The plaintext of every chunk that ``data`` completed, authenticated."""
        if self._done:
            raise FileError("the blob was already finished")
        if self._received + len(data) > self._expected:
            raise FileError("the blob is longer than the file it claims to hold")
        self._received += len(data)
        self._hasher.update(data)
        self._pending += data
        out = bytearray()
        if not self._opened and len(self._pending) >= HEADER_SIZE:
            header = bytes(self._pending[:HEADER_SIZE])
            del self._pending[:HEADER_SIZE]
            try:
                sodium.crypto_secretstream_xchacha20poly1305_init_pull(
                    self._state, header, self._key
                )
            except nacl.exceptions.CryptoError:
                raise FileError("the blob's header is invalid") from None
            self._opened = True
        while self._opened and self._chunks_left:
            want = self._last_len if self._chunks_left == 1 else CHUNK_SIZE + CHUNK_OVERHEAD
            if len(self._pending) < want:
                break
            out += self._pull(bytes(self._pending[:want]), final=self._chunks_left == 1)
            del self._pending[:want]
        return bytes(out)

    def finish(self) -> None:
        """Raise ``FileError`` unless the whole blob arrived and matches its hash."""
        if self._done:
            raise FileError("the blob was already finished")
        if self._chunks_left or self._received != self._expected:
            raise FileError("the blob is truncated")
        if not sodium.sodium_memcmp(self._hasher.digest(), self._expected_hash):
            raise FileError("the blob does not match the hash its sender signed")
        self._done = True

    def _pull(self, sealed: bytes, *, final: bool) -> bytes:
        try:
            chunk, tag = sodium.crypto_secretstream_xchacha20poly1305_pull(
                self._state, sealed, None
            )
        except nacl.exceptions.CryptoError:
            raise FileError("a chunk of the blob does not authenticate (altered?)") from None
        if tag != (_TAG_FINAL if final else _TAG_MESSAGE):
            raise FileError("the blob's chunks are out of place (truncated or spliced)")
        self._chunks_left -= 1
        return bytes(chunk)


def encrypt_file(key: bytes, plaintext: bytes) -> tuple[bytes, bytes]:
    """``(blob, hash)`` of a plaintext held in memory (small files and tests)."""
    encryptor = FileEncryptor(key, len(plaintext))
    blob = encryptor.update(plaintext) + encryptor.finish()
    return blob, encryptor.hash


def decrypt_file(key: bytes, size: int, expected_hash: bytes, blob: bytes) -> bytes:
    """The plaintext of a whole blob held in memory, checked like ``FileDecryptor``."""
    decryptor = FileDecryptor(key, size, expected_hash)
    plaintext = decryptor.update(blob)
    decryptor.finish()
    return plaintext
