"""Names with control, format or bidi characters never pass."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from e2echat.protocol import ProtocolError, validate_room_name, validate_user_name

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
