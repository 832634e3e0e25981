"""Signed statements about identities: a display name, and a successor key.

The relay carries both but cannot make either. A **name statement** is a display name
signed by the key it labels, so a relay can neither invent a rename nor put one user's
name on another; newer statements (by ``issued``) replace older ones, so replaying an
old one changes nothing. A **successor statement** says "key ``old`` is replaced by key
``new``", signed by both keys: the old key vouches for the new one, and the new key
consents, so nobody can claim an unwilling key as theirs or someone else's as their
successor. Byte layouts and vectors: docs/crypto.md section 9.6.
"""

import struct
from typing import NamedTuple

from e2echat.crypto.errors import MalformedError, SignatureError
from e2echat.crypto.identity import Identity
from e2echat.crypto.primitives import KEY_SIZE, verify
from e2echat.protocol.errors import ProtocolError
from e2echat.protocol.names import validate_user_name
from e2echat.protocol.statements import (
    STATEMENT_VERSION,
    name_transcript,
    pack_name_statement,
    split_name_statement,
)
from e2echat.protocol.transcripts import length_prefixed

SUCCESSOR_LABEL = b"e2echat/v1/successor"
_U64 = struct.Struct(">Q")
_SUCCESSOR = struct.Struct(">B32s32sQ64s64s")  # version, old, new, issued, sig_old, sig_new
SUCCESSOR_SIZE = _SUCCESSOR.size


class SignedName(NamedTuple):
    """A display name its key signed at ``issued`` (Unix milliseconds)."""

    key: bytes
    name: str
    issued: int


class Successor(NamedTuple):
    """``old`` named ``new`` as its successor at ``issued``; both keys signed it."""

    old: bytes
    new: bytes
    issued: int


def successor_transcript(old: bytes, new: bytes, issued: int) -> bytes:
    """The bytes both keys sign to make ``new`` the successor of ``old``."""
    return length_prefixed(SUCCESSOR_LABEL, old, new, _U64.pack(issued))


def sign_name(identity: Identity, name: str, issued: int) -> bytes:
    """A name statement: ``identity`` calls itself ``name`` from ``issued`` on."""
    _check_name(name)
    _check_time(issued)
    sig = identity.sign(name_transcript(identity.public_key, name, issued))
    return pack_name_statement(issued, sig, name)


def open_name(key: bytes, statement: bytes) -> SignedName:
    """Check a name statement of ``key``; raise ``MalformedError`` or ``SignatureError``."""
    if len(key) != KEY_SIZE:
        raise MalformedError("a public key is 32 bytes")
    try:
        issued, sig, name = split_name_statement(statement)
    except ProtocolError as exc:
        raise MalformedError(exc.message) from None
    try:
        verify(key, name_transcript(key, name, issued), sig)
    except SignatureError:
        raise SignatureError("the name statement is not signed by that key") from None
    return SignedName(key, name, issued)


def sign_successor(old: Identity, new: Identity, issued: int) -> bytes:
    """A successor statement: ``new`` replaces ``old``, signed by both."""
    if old.public_key == new.public_key:
        raise MalformedError("a key cannot be its own successor")
    _check_time(issued)
    transcript = successor_transcript(old.public_key, new.public_key, issued)
    return _SUCCESSOR.pack(
        STATEMENT_VERSION,
        old.public_key,
        new.public_key,
        issued,
        old.sign(transcript),
        new.sign(transcript),
    )


def open_successor(statement: bytes) -> Successor:
    """Check a successor statement; raise ``MalformedError`` or ``SignatureError``."""
    if len(statement) != SUCCESSOR_SIZE:
        raise MalformedError("a successor statement has the wrong size")
    version, old, new, issued, sig_old, sig_new = _SUCCESSOR.unpack(statement)
    if version != STATEMENT_VERSION:
        raise MalformedError("unknown successor statement version")
    if old == new:
        raise MalformedError("a key cannot be its own successor")
    transcript = successor_transcript(old, new, issued)
    try:
        verify(old, transcript, sig_old)
    except SignatureError:
        raise SignatureError("the successor statement is not signed by the old key") from None
    try:
        verify(new, transcript, sig_new)
    except SignatureError:
        raise SignatureError("the successor statement is not signed by the new key") from None
    return Successor(old, new, issued)


def _check_name(name: str) -> None:
    try:
        validate_user_name(name)
    except ProtocolError as exc:
        raise MalformedError(f"not a valid display name: {exc.message}") from None


def _check_time(issued: int) -> None:
    if not 0 <= issued < 2**64:
        raise MalformedError("a statement time is an unsigned 64-bit number of milliseconds")
