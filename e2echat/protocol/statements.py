"""The byte layout of a name statement: a display name signed by the key it labels.

It lives in the protocol because the relay checks it before carrying it (in `hello`,
`set_name`, `RosterEntry` and `renamed`); clients check it again (e2echat.crypto.statements)
and never take the relay's word for it. Normative text: docs/crypto.md section 9.6.
"""

import struct

from e2echat.protocol.constants import MAX_NAME_CHARS, ErrorCode
from e2echat.protocol.errors import ProtocolError
from e2echat.protocol.names import validate_user_name
from e2echat.protocol.transcripts import length_prefixed

NAME_LABEL = b"e2echat/v1/name"
STATEMENT_VERSION = 1
_U64 = struct.Struct(">Q")
_NAME_HEAD = struct.Struct(">BQ64s")  # version, issued, signature; the UTF-8 name follows
MIN_NAME_STATEMENT = _NAME_HEAD.size + 1
MAX_NAME_STATEMENT = _NAME_HEAD.size + 4 * MAX_NAME_CHARS  # at most 4 UTF-8 bytes a character


def name_transcript(key: bytes, name: str, issued: int) -> bytes:
    """The bytes a key signs to call itself ``name`` from ``issued`` (ms) on."""
    return length_prefixed(NAME_LABEL, key, _U64.pack(issued), name.encode())


def pack_name_statement(issued: int, sig: bytes, name: str) -> bytes:
    """``version || u64(issued) || sig(64) || utf8(name)``."""
    return _NAME_HEAD.pack(STATEMENT_VERSION, issued, sig) + name.encode()


def split_name_statement(statement: bytes) -> tuple[int, bytes, str]:
    """``(issued, sig, name)`` of a well-formed statement (signature not checked).

    Raises ProtocolError(bad_frame) for a wrong size or version, a name that is not
    UTF-8 or not a valid user name.
    """
    if not MIN_NAME_STATEMENT <= len(statement) <= MAX_NAME_STATEMENT:
        raise ProtocolError(ErrorCode.BAD_FRAME, "A name statement has the wrong size.")
    version, issued, sig = _NAME_HEAD.unpack_from(statement)
    if version != STATEMENT_VERSION:
        raise ProtocolError(ErrorCode.BAD_FRAME, "Unknown name statement version.")
    try:
        name = statement[_NAME_HEAD.size :].decode()
    except UnicodeDecodeError:
        raise ProtocolError(ErrorCode.BAD_FRAME, "A name statement's name is not UTF-8.") from None
    return issued, sig, validate_user_name(name)
