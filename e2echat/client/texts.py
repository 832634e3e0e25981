"""Checks of the free texts a client sends, made before any I/O with the limit in the
unit of the layer that refuses it.

A room description travels twice: in ``create_room`` (docs/protocol.md: at most 200
characters, printable) and in the room's signed membership log, as the text of its
``create`` or ``describe`` entry (docs/crypto.md section 13.1: at most 512 bytes of
UTF-8). One check holds every description we send, at creation or later, to both, so
none that one layer takes is refused by the other, and any description set later could
also be a room's first.
"""

from e2echat.client.errors import InvalidRoomOption
from e2echat.protocol import ProtocolError, validate_display_text
from e2echat.protocol.constants import MAX_DESCRIPTION_CHARS
from e2echat.protocol.roomlog import MAX_DESCRIPTION


def check_description(description: str) -> None:
    """Raise ``InvalidRoomOption`` unless ``description`` fits both the relay's frame
    and the membership log: a printable string of at most 200 characters that take at
    most 512 bytes of UTF-8."""
    if not isinstance(description, str):
        raise InvalidRoomOption("A room description is a string.")
    if len(description) > MAX_DESCRIPTION_CHARS:
        raise InvalidRoomOption(
            f"A room description has at most {MAX_DESCRIPTION_CHARS} characters;"
            f" this one has {len(description)}."
        )
    size = len(description.encode())
    if size > MAX_DESCRIPTION:
        raise InvalidRoomOption(
            f"A room description has at most {MAX_DESCRIPTION} bytes of UTF-8 (the"
            f" room's signed log holds no more); this one has {size}."
        )
    try:
        validate_display_text(description, "room description")
    except ProtocolError as exc:
        raise InvalidRoomOption(exc.message) from None
