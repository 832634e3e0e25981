"""Decoding and encoding of frames: bytes in, validated Structs out, and back."""

import re
from typing import Final, TypeVar, cast

import msgspec

from e2echat.protocol.constants import (
    MAX_ERROR_MESSAGE_CHARS,
    MAX_FRAME,
    MAX_RELAY_FRAME,
    ErrorCode,
)
from e2echat.protocol.errors import ProtocolError
from e2echat.protocol.frames import ClientFrame, RelayFrame

_client_decoder: Final = msgspec.json.Decoder(ClientFrame)
_relay_decoder: Final = msgspec.json.Decoder(RelayFrame)
_encoder: Final = msgspec.json.Encoder()
_BODY_TOO_LONG = re.compile(r"length <= \d+ - at `\$\.body`$")
_T = TypeVar("_T")


def _decode(decoder: msgspec.json.Decoder[_T], data: bytes | str, max_frame: int) -> _T:
    size = len(data.encode()) if isinstance(data, str) else len(data)
    if size > max_frame:
        raise ProtocolError(
            ErrorCode.TOO_LARGE, f"A frame may be at most {max_frame} bytes; this one is {size}."
        )
    try:
        return decoder.decode(data)
    except msgspec.ValidationError as exc:
        text = str(exc)
        code = ErrorCode.TOO_LARGE if _BODY_TOO_LONG.search(text) else ErrorCode.BAD_FRAME
        raise ProtocolError(code, _sentence(text)) from None
    except msgspec.DecodeError:
        raise ProtocolError(
            ErrorCode.BAD_FRAME, "Frame rejected: it is not one JSON object in UTF-8."
        ) from None
    except RecursionError:  # msgspec's depth guard, on arrays or objects nested very deep
        raise ProtocolError(
            ErrorCode.BAD_FRAME, "Frame rejected: it is nested too deeply."
        ) from None


def _sentence(detail: str) -> str:
    """A printable, bounded sentence from msgspec's detail, which may quote peer-chosen keys."""
    safe = "".join(ch if ch.isprintable() else f"\\u{ord(ch):04x}" for ch in detail)
    limit = MAX_ERROR_MESSAGE_CHARS - len("Frame rejected: .")
    if len(safe) > limit:
        safe = safe[: limit - 1] + "…"
    return f"Frame rejected: {safe.rstrip('.')}."


def decode_client_frame(data: bytes | str, max_frame: int = MAX_FRAME) -> ClientFrame:
    """Decode and validate one client-to-relay frame, or raise ProtocolError."""
    return cast(ClientFrame, _decode(_client_decoder, data, max_frame))


def decode_relay_frame(data: bytes | str, max_frame: int = MAX_RELAY_FRAME) -> RelayFrame:
    """Decode and validate one relay-to-client frame, or raise ProtocolError."""
    return cast(RelayFrame, _decode(_relay_decoder, data, max_frame))


def encode_frame(frame: ClientFrame | RelayFrame) -> bytes:
    """Encode a frame as the UTF-8 JSON bytes of one WebSocket text frame."""
    return _encoder.encode(frame)
