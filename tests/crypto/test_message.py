"""The room body layout: exact sizes, padding, strict parsing, signature and AEAD."""

import pytest

from e2echat.crypto import CryptoError, Identity, MalformedError, PayloadError, SignatureError
from e2echat.crypto.message import (
    HEADER_SIZE,
    MAX_BODY,
    MAX_PAYLOAD,
    MIN_BODY,
    PAD_BLOCK,
    parse_body,
    seal_body,
)
from e2echat.crypto.primitives import SIGNATURE_SIZE, TAG_SIZE

SENDER = Identity(bytes(32))
ROOM = bytes(range(16))
CHAIN = bytes(range(16, 32))
MK = bytes(range(32))


def seal(payload: bytes, index: int = 7) -> bytes:
    return seal_body(SENDER.sign, ROOM, SENDER.public_key, CHAIN, index, MK, payload)


def open_fully(body: bytes) -> bytes:
    parsed = parse_body(body)
    parsed.verify()
    return parsed.decrypt(MK)


@pytest.mark.parametrize(("size", "blocks"), [(0, 1), (255, 1), (256, 2), (1000, 4)])
def test_padding_to_whole_blocks(size: int, blocks: int) -> None:
    body = seal(b"x" * size)
    assert len(body) == HEADER_SIZE + blocks * PAD_BLOCK + TAG_SIZE + SIGNATURE_SIZE
    parsed = parse_body(body)
    parsed.verify()
    assert parsed.decrypt(MK) == b"x" * size


def test_header_fields_and_sizes() -> None:
    assert HEADER_SIZE == 162
    assert MIN_BODY == 498
    parsed = parse_body(seal(b"hi", index=2**32 - 1))
    header = parsed.header
    assert (header.room_id, header.sender, header.chain_id, header.index) == (
        ROOM,
        SENDER.public_key,
        CHAIN,
        2**32 - 1,
    )
    assert parsed.header_bytes[:2] == b"\x01\x01"


def test_largest_payload_fits_the_relay_limit() -> None:
    assert len(seal(b"x" * MAX_PAYLOAD)) <= MAX_BODY
    with pytest.raises(PayloadError):
        seal(b"x" * (MAX_PAYLOAD + 1))


def test_strict_layout() -> None:
    body = seal(b"hi")
    for bad in [body[:-1], body + b"\x00", b"\x02" + body[1:], body[:1] + b"\x02" + body[2:]]:
        with pytest.raises(MalformedError):
            parse_body(bad)


def test_every_byte_is_protected() -> None:
    body = seal(b"hello")
    for position in range(len(body)):
        altered = bytearray(body)
        altered[position] ^= 0x01
        with pytest.raises(CryptoError):
            open_fully(bytes(altered))


def test_wrong_signer_or_key_fails() -> None:
    other = Identity(b"\x01" * 32)
    forged = seal_body(other.sign, ROOM, SENDER.public_key, CHAIN, 0, MK, b"hi")
    with pytest.raises(SignatureError):
        parse_body(forged).verify()
    with pytest.raises(CryptoError):
        parse_body(seal(b"hi")).decrypt(bytes(32))
