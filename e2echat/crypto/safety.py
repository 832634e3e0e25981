"""Fingerprints and Signal-style safety numbers, for people to compare out of band.

The safety number follows Signal's ``NumericFingerprintGenerator`` (version 0,
5,200 SHA-512 iterations); our user id is the public key itself, so it is both the
key and the stable identifier. Both sides compute the same 60 digits.
"""

import struct

from e2echat.crypto.errors import MalformedError
from e2echat.crypto.primitives import KEY_SIZE, sha512

SAFETY_VERSION = 0
SAFETY_ITERATIONS = 5200


def fingerprint(public_key: bytes) -> str:
    """The whole key as 16 groups of 4 hex digits: nothing truncated, nothing to collide."""
    _check_key(public_key)
    text = public_key.hex()
    return " ".join(text[i : i + 4] for i in range(0, len(text), 4))


def safety_half(public_key: bytes) -> str:
    """The 30 digits of one user: 6 groups of 5 digits of the iterated SHA-512."""
    _check_key(public_key)
    digest = struct.pack(">H", SAFETY_VERSION) + public_key + public_key
    for _ in range(SAFETY_ITERATIONS):
        digest = sha512(digest + public_key)
    return "".join(
        f"{int.from_bytes(digest[i : i + 5], 'big') % 100000:05d}" for i in range(0, 30, 5)
    )


def safety_number(key_a: bytes, key_b: bytes) -> str:
    """The pair's 60 digits: the two halves in ascending order, so both sides agree."""
    first, second = sorted((safety_half(key_a), safety_half(key_b)))
    return first + second


def format_safety_number(number: str) -> str:
    """The 60 digits as 12 groups of 5, in three lines of four, as people read them."""
    groups = [number[i : i + 5] for i in range(0, len(number), 5)]
    return "\n".join(" ".join(groups[i : i + 4]) for i in range(0, len(groups), 4))


def _check_key(public_key: bytes) -> None:
    if len(public_key) != KEY_SIZE:
        raise MalformedError("a public key is 32 bytes")
