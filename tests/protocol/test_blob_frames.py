"""Frames of the blob endpoint: strict decoding, one opening frame, bounded size."""

import json

import pytest

from e2echat.protocol import (
    ErrorCode,
    ProtocolError,
    Serving,
    StartDownload,
    StartUpload,
    decode_blob_client_frame,
    decode_blob_relay_frame,
    encode_blob_frame,
)

TOKEN = "A" * 43 + "="


def test_opening_frames_round_trip() -> None:
    upload = decode_blob_client_frame(json.dumps({"type": "upload", "token": TOKEN}))
    assert isinstance(upload, StartUpload)
    download = decode_blob_client_frame(json.dumps({"type": "download", "token": TOKEN}))
    assert download == StartDownload(token=upload.token, offset=0)
    assert decode_blob_client_frame(encode_blob_frame(download)) == download
    serving = decode_blob_relay_frame(encode_blob_frame(Serving(size=10, offset=2)))
    assert serving == Serving(size=10, offset=2)


@pytest.mark.parametrize(
    "raw",
    [
        b"\xff",
        "[]",
        json.dumps({"type": "send", "room": "AA==", "body": "AA=="}),
        json.dumps({"type": "upload", "token": "AAAA"}),
        json.dumps({"type": "download", "token": TOKEN, "offset": -1}),
        json.dumps({"type": "upload", "token": TOKEN, "extra": 1}),
    ],
)
def test_anything_else_is_bad_frame(raw: str | bytes) -> None:
    with pytest.raises(ProtocolError) as bad:
        decode_blob_client_frame(raw)
    assert bad.value.code == ErrorCode.BAD_FRAME


def test_oversize_control_frame() -> None:
    with pytest.raises(ProtocolError) as big:
        decode_blob_client_frame(b" " * (64 * 1024 + 1))
    assert big.value.code == ErrorCode.TOO_LARGE
