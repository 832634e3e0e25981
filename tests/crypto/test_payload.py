"""The room plaintext payload."""

import pytest

from e2echat.crypto import PayloadError, Text, decode_payload, encode_payload


def test_round_trip_and_wire_shape() -> None:
    payload = Text("hi @bob", (bytes(32),), 1234)
    data = encode_payload(payload)
    assert data.startswith(b'{"t":"text","body":"hi @bob","mentions":["')
    assert decode_payload(data) == payload


@pytest.mark.parametrize(
    "data",
    [
        b'{"t":"text","body":"x","mentions":[],"ts":1,"extra":1}',
        b'{"t":"edit","body":"x","mentions":[],"ts":1}',
        b'{"t":"text","body":"x","mentions":["AAAA"],"ts":1}',
        b'{"t":"text","body":"x","mentions":[],"ts":-1}',
        b'{"t":"text","body":1,"mentions":[],"ts":1}',
        b'{"t":"text","body":"x","ts":1}',
        b"\xff",
    ],
)
def test_strict_decoding(data: bytes) -> None:
    with pytest.raises(PayloadError):
        decode_payload(data)


def test_repr_hides_the_text() -> None:
    assert "secret words" not in repr(Text("secret words", (), 0))
