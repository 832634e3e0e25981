"""The room plaintext: msgspec JSON ``{t:"text", body, mentions:[key...], ts}``.

It only ever travels inside the AEAD, so mentions are invisible to the relay. Decoding
is strict (unknown ``t`` or field, wrong type): the bytes come from an authenticated
member, but a member may still run a buggy or hostile client.
"""

from typing import Annotated, Any

import msgspec

from e2echat.crypto.errors import PayloadError
from e2echat.crypto.prekeys import Key32
from e2echat.crypto.redact import redacted_fields

MAX_MENTIONS = 256


class Text(msgspec.Struct, tag="text", tag_field="t", frozen=True, forbid_unknown_fields=True):
    """A text message; ``mentions`` are the user ids (keys) it mentions; ``ts`` is ms."""

    body: str
    mentions: Annotated[tuple[Key32, ...], msgspec.Meta(max_length=MAX_MENTIONS)]
    ts: Annotated[int, msgspec.Meta(ge=0)]

    def __repr__(self) -> str:
        return f"Text(body=<{len(self.body)} chars>, mentions={len(self.mentions)}, ts={self.ts})"

    def __rich_repr__(self) -> list[tuple[str, Any]]:
        return redacted_fields(self, ("body", "mentions"))


RoomPayload = Text
"""Every payload kind (a tagged union once edits, replies and reactions arrive)."""

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(RoomPayload)


def encode_payload(payload: RoomPayload) -> bytes:
    """The JSON bytes of ``payload``."""
    return _encoder.encode(payload)


def decode_payload(data: bytes) -> RoomPayload:
    """Strictly decode a decrypted payload or raise ``PayloadError``."""
    try:
        return _decoder.decode(data)
    except msgspec.DecodeError:
        raise PayloadError("decrypted payload is not a valid room payload") from None
