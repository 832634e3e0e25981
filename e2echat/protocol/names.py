"""Validation of the human-chosen strings that travel in frames.

User names are display labels, not identities (the key is the identity), but they are
shown in terminals: control, format (including bidi overrides) and other non-printable
characters would let one user disguise themselves or corrupt another's screen.
"""

import re
import unicodedata

from e2echat.protocol.constants import MAX_NAME_CHARS, ErrorCode
from e2echat.protocol.errors import ProtocolError

ROOM_NAME_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")


def printable_problem(text: str) -> str | None:
    """Why ``text`` is not safe to show in a terminal, or None if it is.

    ``str.isprintable`` rejects categories Cc, Cf (bidi overrides, zero-width joiners),
    Cs, Co, Cn, Zl, Zp and every space but U+0020. The whole-string test first: names
    are decoded by the thousand in a large room's roster, and nearly all are fine.
    """
    if text.isprintable():
        return None
    char = next(char for char in text if not char.isprintable())
    return f"it contains the non-printable character U+{ord(char):04X}"


def validate_user_name(name: str) -> str:
    """Return ``name`` if it is a valid user name, else raise ProtocolError(bad_frame)."""
    if not 1 <= len(name) <= MAX_NAME_CHARS:
        raise ProtocolError(
            ErrorCode.BAD_FRAME, f"A user name must be 1 to {MAX_NAME_CHARS} characters long."
        )
    problem = printable_problem(name)
    if problem is not None:
        raise ProtocolError(ErrorCode.BAD_FRAME, f"Choose another user name: {problem}.")
    if name != name.strip():
        raise ProtocolError(ErrorCode.BAD_FRAME, "A user name must not start or end with a space.")
    if not unicodedata.is_normalized("NFC", name):
        raise ProtocolError(
            ErrorCode.BAD_FRAME, "A user name must be in Unicode normal form C (NFC)."
        )
    return name


def validate_room_name(name: str) -> str:
    """Return ``name`` if it is a valid room name, else raise ProtocolError(bad_frame)."""
    if ROOM_NAME_RE.fullmatch(name) is None:
        raise ProtocolError(
            ErrorCode.BAD_FRAME,
            "A room name is 1 to 32 characters of a-z, 0-9, '_' and '-',"
            " starting with a letter or digit.",
        )
    return name


def validate_display_text(text: str, what: str) -> str:
    """Return free text (a description, a status) if it is printable, else raise."""
    problem = printable_problem(text)
    if problem is not None:
        raise ProtocolError(ErrorCode.BAD_FRAME, f"The {what} is not accepted: {problem}.")
    return text
