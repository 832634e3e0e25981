"""The chunked file format: round trips in any piece sizes, and every way a blob can be
cut, extended, reordered, spliced or altered fails before its plaintext is released."""

import itertools

import nacl.bindings as sodium
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from e2echat.crypto.errors import FileError
from e2echat.crypto.files import (
    CHUNK_OVERHEAD,
    CHUNK_SIZE,
    HEADER_SIZE,
    FileDecryptor,
    FileEncryptor,
    blob_hash,
    blob_size,
    chunk_count,
    decrypt_file,
    encrypt_file,
    new_file_key,
)

KEY = bytes(range(32))
SIZES = [0, 1, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, 3 * CHUNK_SIZE, 3 * CHUNK_SIZE + 7]


def data(size: int) -> bytes:
    return bytes(i * 7 % 251 for i in range(size))


@pytest.mark.parametrize("size", SIZES)
def test_round_trip_and_layout(size: int) -> None:
    blob, digest = encrypt_file(KEY, data(size))
    assert len(blob) == blob_size(size) == HEADER_SIZE + size + CHUNK_OVERHEAD * chunk_count(size)
    assert digest == blob_hash(blob)
    assert decrypt_file(KEY, size, digest, blob) == data(size)


def test_chunk_counts() -> None:
    assert [chunk_count(n) for n in (0, 1, CHUNK_SIZE, CHUNK_SIZE + 1)] == [1, 1, 1, 2]
    with pytest.raises(FileError):
        chunk_count(-1)


@settings(max_examples=40, deadline=None)
@given(
    size=st.sampled_from(SIZES),
    cuts=st.lists(st.integers(min_value=0, max_value=4 * CHUNK_SIZE), max_size=8),
)
def test_any_piece_sizes_give_the_same_blob_and_plaintext(size: int, cuts: list[int]) -> None:
    plain = data(size)
    whole, digest = encrypt_file(KEY, plain)
    bounds = sorted({0, size, *(c for c in cuts if c <= size)})
    pieces = [plain[a:b] for a, b in itertools.pairwise(bounds)]
    encryptor = FileEncryptor(KEY, size)
    # The stream's nonce is random, so compare structure, then open the piecewise blob.
    blob = b"".join(encryptor.update(p) for p in pieces) + encryptor.finish()
    assert len(blob) == len(whole)
    decryptor = FileDecryptor(KEY, size, encryptor.hash)
    blob_bounds = sorted({0, len(blob), *(c for c in cuts if c <= len(blob))})
    out = b"".join(decryptor.update(blob[a:b]) for a, b in itertools.pairwise(blob_bounds))
    decryptor.finish()
    assert out == plain
    assert digest != encryptor.hash  # a fresh header every time


def test_each_file_gets_a_fresh_key() -> None:
    assert new_file_key() != new_file_key()
    assert len(new_file_key()) == 32


def test_plaintext_is_released_only_per_authenticated_chunk() -> None:
    size = 2 * CHUNK_SIZE + 5
    blob, digest = encrypt_file(KEY, data(size))
    decryptor = FileDecryptor(KEY, size, digest)
    first = HEADER_SIZE + CHUNK_SIZE + CHUNK_OVERHEAD
    assert decryptor.update(blob[: first - 1]) == b""
    assert decryptor.update(blob[first - 1 : first]) == data(size)[:CHUNK_SIZE]


SIZE = 2 * CHUNK_SIZE + 5
C = CHUNK_SIZE + CHUNK_OVERHEAD


def _blob() -> tuple[bytes, bytes]:
    return encrypt_file(KEY, data(SIZE))


def _open(blob: bytes, digest: bytes, *, key: bytes = KEY, size: int = SIZE) -> bytes:
    return decrypt_file(key, size, digest, blob)


@pytest.mark.parametrize(
    "position", [0, HEADER_SIZE - 1, HEADER_SIZE, HEADER_SIZE + C - 1, HEADER_SIZE + 2 * C + 3]
)
def test_a_flipped_bit_anywhere_fails(position: int) -> None:
    blob, digest = _blob()
    altered = bytearray(blob)
    altered[position] ^= 0x01
    with pytest.raises(FileError):
        _open(bytes(altered), digest)


@pytest.mark.parametrize("keep", [0, HEADER_SIZE, HEADER_SIZE + C, HEADER_SIZE + 2 * C, -1])
def test_truncation_at_any_point_fails(keep: int) -> None:
    blob, digest = _blob()
    with pytest.raises(FileError, match="truncated"):
        _open(blob[:keep], digest)


def test_extra_bytes_fail() -> None:
    blob, digest = _blob()
    with pytest.raises(FileError, match="longer"):
        _open(blob + b"\0", digest)


def test_swapped_chunks_fail() -> None:
    blob, digest = _blob()
    header, one, two, rest = (
        blob[:HEADER_SIZE],
        blob[HEADER_SIZE : HEADER_SIZE + C],
        blob[HEADER_SIZE + C : HEADER_SIZE + 2 * C],
        blob[HEADER_SIZE + 2 * C :],
    )
    with pytest.raises(FileError):
        _open(header + two + one + rest, digest)


def test_a_chunk_spliced_from_another_blob_of_the_same_key_fails() -> None:
    blob, digest = _blob()
    other, _ = _blob()
    spliced = blob[: HEADER_SIZE + C] + other[HEADER_SIZE + C :]
    with pytest.raises(FileError):
        _open(spliced, digest)


def test_an_early_final_tag_fails() -> None:
    # A well-formed stream that ends after its first full chunk: a sender (or anyone
    # holding the key) cannot pass off a prefix as the whole file.
    state = sodium.crypto_secretstream_xchacha20poly1305_state()
    header = sodium.crypto_secretstream_xchacha20poly1305_init_push(state, KEY)
    final = sodium.crypto_secretstream_xchacha20poly1305_TAG_FINAL
    blob = header + sodium.crypto_secretstream_xchacha20poly1305_push(
        state, data(CHUNK_SIZE), None, final
    )
    with pytest.raises(FileError, match="out of place"):
        decrypt_file(KEY, CHUNK_SIZE + 1, blob_hash(blob), blob + b"\0" * (1 + CHUNK_OVERHEAD))


def test_wrong_key_and_wrong_hash_fail() -> None:
    blob, digest = _blob()
    with pytest.raises(FileError):
        _open(blob, digest, key=bytes(32))
    with pytest.raises(FileError, match="hash"):
        _open(blob, bytes(32))


def test_wrong_declared_size_fails() -> None:
    blob, digest = _blob()
    with pytest.raises(FileError):
        _open(blob, digest, size=SIZE - 1)
    with pytest.raises(FileError):
        _open(blob, digest, size=SIZE + 1)


def test_a_file_that_changes_while_sending_is_an_error() -> None:
    longer = FileEncryptor(KEY, 10)
    with pytest.raises(FileError, match="longer"):
        longer.update(b"x" * 11)
    shorter = FileEncryptor(KEY, 10)
    shorter.update(b"x" * 9)
    with pytest.raises(FileError, match="shorter"):
        shorter.finish()


def test_misuse_is_refused() -> None:
    with pytest.raises(FileError):
        FileEncryptor(b"short", 1)
    with pytest.raises(FileError):
        FileDecryptor(KEY, 1, b"short")
    encryptor = FileEncryptor(KEY, 0)
    with pytest.raises(FileError):
        _ = encryptor.hash
    encryptor.finish()
    with pytest.raises(FileError):
        encryptor.finish()
    assert "remaining" in repr(encryptor)
    assert KEY.hex() not in repr(FileDecryptor(KEY, 0, bytes(32)))
