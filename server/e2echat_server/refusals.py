"""What the relay says about a frame it refuses: the id salvaged from it, a clean message."""

import msgspec

from e2echat.protocol.constants import MAX_ERROR_MESSAGE_CHARS, MAX_REQUEST_ID_CHARS


class _IdOnly(msgspec.Struct):
    """Any JSON object, of which only a string ``id`` is kept (unknown fields are ignored)."""

    id: str | None = None


_decoder = msgspec.json.Decoder(_IdOnly)


def request_id(data: bytes | str) -> str | None:
    """The frame's ``id`` if it is a JSON object with a valid string id, else None."""
    try:
        found = _decoder.decode(data).id
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        return None  # RecursionError: skipping a value nested very deep
    if found is None or not 1 <= len(found) <= MAX_REQUEST_ID_CHARS or not found.isprintable():
        return None
    return found


def printable(message: str) -> str:
    """``message`` fit for an `error` frame: non-printable characters become U+FFFD, and it is cut
    to the protocol's length limit. Decoder messages may quote the peer's own field names."""
    cleaned = "".join(c if c.isprintable() else "\ufffd" for c in message)
    if len(cleaned) > MAX_ERROR_MESSAGE_CHARS:
        cleaned = cleaned[: MAX_ERROR_MESSAGE_CHARS - 1] + "\u2026"
    return cleaned
