"""Make untrusted text safe to put on a terminal.

Names and message bodies come from other people. They are never parsed as Rich
markup (the TUI builds ``Text``/``Segment`` objects from plain strings), and the
characters that could move the cursor, recolour the terminal or reorder what a
reader sees (C0/C1 controls such as ESC, bidi overrides, line separators) are shown
as visible escapes like ``\\x1b`` or ``\\u202e`` instead of being interpreted.
"""

import unicodedata

_ESCAPED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
_KEEP = frozenset({"\u200d"})  # ZERO WIDTH JOINER: glues emoji sequences, moves nothing.


def _escape_char(char: str) -> str:
    code = ord(char)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def _needs_escape(char: str) -> bool:
    return char not in _KEEP and unicodedata.category(char) in _ESCAPED_CATEGORIES


def escape_controls(text: str, *, keep_newlines: bool = False) -> str:
    """``text`` with every control/format character replaced by a visible escape.

    With ``keep_newlines`` a line feed stays a line break (message bodies may have
    several lines); everywhere else it is escaped too (a name is one line).
    """
    if text.isprintable() and (keep_newlines or "\n" not in text):
        return text  # fast path: the common case costs one C-level scan
    return "".join(
        _escape_char(char) if _needs_escape(char) and not (keep_newlines and char == "\n") else char
        for char in text
    )
