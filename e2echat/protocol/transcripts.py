"""Byte-exact transcripts that identity keys sign.

Every signed transcript starts with a domain label and is a sequence of length-prefixed
parts (u32 big-endian length, then the bytes), so no two different field tuples can ever
serialise to the same bytes and no signature made for one purpose verifies for another.
"""

import struct

HELLO_LABEL = b"e2echat/v1/hello"
PREKEY_LABEL = b"e2echat/v1/prekey"


def length_prefixed(*parts: bytes) -> bytes:
    """Concatenate ``parts``, each preceded by its length as a u32 big-endian integer."""
    return b"".join(struct.pack(">I", len(part)) + part for part in parts)


def prekey_transcript(prekey_id: int, prekey: bytes) -> bytes:
    """The bytes an identity signs to vouch for its X25519 signed prekey."""
    return length_prefixed(PREKEY_LABEL, struct.pack(">I", prekey_id), prekey)


def hello_transcript(
    relay: str,
    nonce: bytes,
    key: bytes,
    name: str,
    prekey_id: int,
    prekey: bytes,
    prekey_sig: bytes,
) -> bytes:
    """The bytes a client signs in ``hello``: binds relay, fresh nonce, name and prekey."""
    return length_prefixed(
        HELLO_LABEL,
        relay.encode(),
        nonce,
        key,
        name.encode(),
        struct.pack(">I", prekey_id),
        prekey,
        prekey_sig,
    )
