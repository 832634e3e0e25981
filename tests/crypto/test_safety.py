"""Fingerprints and safety numbers."""

import pytest

from e2echat.crypto import MalformedError, fingerprint, format_safety_number, safety_number
from e2echat.crypto.safety import safety_half

A = bytes(range(32))
B = bytes(range(32, 64))


def test_fingerprint_is_the_whole_key_grouped() -> None:
    text = fingerprint(A)
    assert text.replace(" ", "") == A.hex()
    assert len(text.split()) == 16


def test_safety_number_is_symmetric_and_sixty_digits() -> None:
    number = safety_number(A, B)
    assert number == safety_number(B, A)
    assert len(number) == 60
    assert number.isdigit()
    assert sorted([number[:30], number[30:]]) == sorted([safety_half(A), safety_half(B)])


def test_safety_number_changes_with_either_key() -> None:
    other = bytes(32)
    assert safety_number(A, B) != safety_number(A, other)
    assert safety_number(A, B) != safety_number(other, B)


def test_format_groups_for_people() -> None:
    lines = format_safety_number("0123456789" * 6).splitlines()
    assert lines == ["01234 56789 01234 56789"] * 3


def test_wrong_key_length_is_an_error() -> None:
    with pytest.raises(MalformedError):
        safety_number(A, b"short")
    with pytest.raises(MalformedError):
        fingerprint(b"")
