"""Names with control, format or bidi characters never pass."""

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from e2echat.protocol import ProtocolError, validate_room_name, validate_user_name
from e2echat.protocol.constants import MAX_NAME_CHARS
from e2echat.protocol.names import printable_problem

TRICKY = st.one_of(
    st.characters(exclude_categories=()),  # surrogates and unassigned code points too
    st.characters(categories=["Mn", "Mc", "Me"]),  # combining marks
    # letters and marks that compose, reorder (U+0323 before U+0301), decompose
    # (U+212B, U+0344, U+0F73, U+1D15E) or build Hangul syllables, and a lone surrogate
    st.sampled_from(
        "eAo\u0301\u0308\u0323\u0327\u212b\u0344\u0f73\U0001d15e\u1100\u1161\u11a8\uac00\ud800"
    ),
)
"""Code points where a whole-string check could part from a per-character one."""

BAD_CHARACTERS = [
    "\x00", "\x07", "\x1b", "\n", "\t", "\x7f", "\x9b",  # C0/C1 controls, ESC, CSI
    "\u200b", "\u200d", "\u2060", "\ufeff",  # zero-width and format characters
    "\u202a", "\u202b", "\u202d", "\u202e", "\u2066", "\u2067", "\u2068", "\u2069",  # bidi
    "\u2028", "\u2029", "\u00a0",  # line and paragraph separators, odd spaces
]  # fmt: skip


@pytest.mark.parametrize("char", BAD_CHARACTERS, ids=[f"U+{ord(c):04X}" for c in BAD_CHARACTERS])
def test_user_name_with_unsafe_character_is_rejected(char: str) -> None:
    with pytest.raises(ProtocolError, match=f"U\\+{ord(char):04X}"):
        validate_user_name(f"ali{char}ce")


@pytest.mark.parametrize("name", ["alice", "Zoë", "李小龙", "bot 7", "a", "x" * 32, "émile"])
def test_good_user_names(name: str) -> None:
    assert validate_user_name(name) == name


@pytest.mark.parametrize("name", ["", "x" * 33, " alice", "alice ", "e\u0301mile"])
def test_bad_user_names(name: str) -> None:
    with pytest.raises(ProtocolError):
        validate_user_name(name)


@given(st.text(alphabet=st.characters(categories=["Cc", "Cf"]), min_size=1, max_size=3))
def test_any_control_or_format_character_is_rejected(bad: str) -> None:
    with pytest.raises(ProtocolError):
        validate_user_name("a" + bad + "b")


@pytest.mark.parametrize("name", ["lobby", "a", "0day", "dev-ops_2", "x" * 32])
def test_good_room_names(name: str) -> None:
    assert validate_room_name(name) == name


@pytest.mark.parametrize("name", ["", "Lobby", "-x", "_x", "x" * 33, "a b", "caf\u00e9", "a\n"])
def test_bad_room_names(name: str) -> None:
    with pytest.raises(ProtocolError):
        validate_room_name(name)


def checked_per_character(name: str) -> bool:
    """The user-name rules as first written: each character, and the NFC form compared."""
    return (
        1 <= len(name) <= MAX_NAME_CHARS
        and all(char.isprintable() for char in name)
        and name == name.strip()
        and unicodedata.normalize("NFC", name) == name
    )


@given(st.lists(TRICKY, max_size=8).map("".join))
def test_the_whole_string_checks_agree_with_the_character_by_character_ones(name: str) -> None:
    """``isprintable`` and ``is_normalized`` of the whole name decide as checking each
    character and comparing with the normalized form did, and name the same character."""
    first_bad = next((char for char in name if not char.isprintable()), None)
    problem = printable_problem(name)
    if first_bad is None:
        assert problem is None
    else:
        assert problem is not None
        assert problem.endswith(f"U+{ord(first_bad):04X}")
    try:
        validate_user_name(name)
    except ProtocolError:
        assert not checked_per_character(name)
    else:
        assert checked_per_character(name)
