"""Frames of the blob endpoint (``BLOB_PATH``): one transfer per WebSocket connection.

A client first gets a one-time ticket on its authenticated chat connection
(`blob_upload` / `blob_download`, answered by `blob_ticket`), then opens a second
WebSocket to ``BLOB_PATH`` on the same relay and sends one text frame, `upload` or
`download`, naming the ticket. The blob's bytes then travel as binary frames, so they
are never base64-encoded and never held whole in memory. docs/protocol.md, "Files".
"""

from typing import Annotated, Final

import msgspec

from e2echat.protocol import constants as c
from e2echat.protocol.errors import ProtocolError
from e2echat.protocol.frames import BlobId, BlobSize, Error, _exact_bytes, _Frame

MAX_BLOB_PIECE: Final = 1024 * 1024
"""The largest binary frame either side may send on the blob endpoint."""
Token = Annotated[bytes, _exact_bytes(c.TOKEN_BYTES)]


class StartUpload(_Frame, tag="upload"):
    """Client: upload the blob the ticket names; binary frames follow ``resume``."""

    token: Token


class StartDownload(_Frame, tag="download"):
    """Client: download the blob the ticket names, from byte ``offset``."""

    token: Token
    offset: BlobSize = 0


class Resume(_Frame, tag="resume"):
    """Relay: send the blob's bytes from ``offset`` (what is already stored) to its end."""

    offset: BlobSize


class Stored(_Frame, tag="stored"):
    """Relay: every byte arrived and is durable; the blob can be fetched."""

    blob: BlobId


class Serving(_Frame, tag="serving"):
    """Relay: the blob's bytes from ``offset`` to ``size`` follow as binary frames."""

    size: BlobSize
    offset: BlobSize


BlobClientFrame = StartUpload | StartDownload
BlobRelayFrame = Resume | Stored | Serving | Error

_client_decoder: Final = msgspec.json.Decoder(BlobClientFrame)
_relay_decoder: Final = msgspec.json.Decoder(BlobRelayFrame)
_encoder: Final = msgspec.json.Encoder()


def _decode(decoder: msgspec.json.Decoder[object], data: bytes | str) -> object:
    if len(data) > c.MAX_FRAME:
        raise ProtocolError(c.ErrorCode.TOO_LARGE, "A control frame may be at most 64 KiB.")
    try:
        return decoder.decode(data)
    except (msgspec.ValidationError, msgspec.DecodeError):
        raise ProtocolError(
            c.ErrorCode.BAD_FRAME, "Blob endpoint: expected one upload or download frame."
        ) from None


def decode_blob_client_frame(data: bytes | str) -> BlobClientFrame:
    """Decode the client's opening frame on the blob endpoint, or raise ProtocolError."""
    frame = _decode(_client_decoder, data)
    assert isinstance(frame, StartUpload | StartDownload)
    return frame


def decode_blob_relay_frame(data: bytes | str) -> BlobRelayFrame:
    """Decode one relay control frame on the blob endpoint, or raise ProtocolError."""
    frame = _decode(_relay_decoder, data)
    assert isinstance(frame, Resume | Stored | Serving | Error)
    return frame


def encode_blob_frame(frame: BlobClientFrame | BlobRelayFrame) -> bytes:
    """The JSON bytes of a blob-endpoint control frame."""
    return _encoder.encode(frame)
