"""vi's normal mode over the draft, as a pure function: keys in, an edit out.

The composer hands each key typed in normal mode to ``Normal.feed`` with the draft (its
text and the cursor as an offset) and applies what comes back: a new text and cursor, a
switch to insert mode, an undo or redo, or a step through the input history (``j`` on
the last line, ``k`` on the first). Nothing here touches a widget, so every command is
tested on plain strings.

A command is ``[count] operator [count] motion`` (``d2w``, ``3dd``, ``ct,``), or
``[count] command`` (``3x``, ``p``, ``rX``). The operators are ``d`` (delete), ``c``
(change: delete, then insert) and ``y`` (yank); doubled (``dd``, ``cc``, ``yy``) they
take whole lines. What is deleted or yanked goes to the one register that ``p`` and
``P`` put back, character- or linewise as in vi. The cursor sits on a character, never
past the last one of a line (as in vi, an empty line is the exception).
"""

import re
from dataclasses import dataclass, field
from typing import Final, Literal

_INSERTS: Final = frozenset("iaIAoO")
"""The commands that go (back) to insert mode."""
_MOTIONS: Final = frozenset("hl0^$wWbBeEGjk;, \x7f")
"""One-key motions (space and backspace step right and left, as in vi); also ``gg``."""
_FIND: Final = frozenset("fFtT")
"""Motions to a character, typed next."""
_SIMPLE: Final = frozenset("xXsSDCYpPJ~u") | _INSERTS
"""Commands that take no motion (``r`` takes a character)."""
_INCLUSIVE: Final = frozenset("eE$ft")
"""Motions whose operator takes the character they land on."""
_LINEWISE: Final = frozenset({"j", "k", "G", "gg"})
"""Motions whose operator takes whole lines."""

Mode = Literal["normal", "insert"]


@dataclass(frozen=True)
class Draft:
    """The composer's text and cursor (an offset into ``text``)."""

    text: str
    cursor: int


@dataclass(frozen=True)
class Outcome:
    """What a key asks the composer to do (all fields at their defaults: nothing)."""

    draft: Draft | None = None
    """The new text and cursor, when either changed."""
    mode: Mode = "normal"
    undo: int = 0
    """Undo (positive) or redo (negative) this many changes."""
    history: int = 0
    """Walk the input history this many lines (-1: older), the draft left as it is."""
    pending: bool = False
    """The keys so far begin a command: more are needed."""
    refused: bool = False
    """Not a command (or one that cannot be done here): ring the bell."""


@dataclass(frozen=True)
class _Command:
    operator: str
    name: str
    arg: str
    count: int
    counted: bool


@dataclass
class _Register:
    text: str = ""
    linewise: bool = False


@dataclass
class Normal:
    """Normal mode's state between keys: the keys of an unfinished command, the
    register, and the last character search (for ``;`` and ``,``)."""

    keys: str = ""
    register: _Register = field(default_factory=_Register)
    last_find: str = ""

    def feed(self, key: str, draft: Draft) -> Outcome:
        """One key (a character, or ``ctrl+r`` / ``escape``) typed in normal mode."""
        if key == "escape":
            self.keys = ""
            return Outcome()
        if key == "ctrl+r":
            self.keys = ""
            return Outcome(undo=-1)
        if len(key) != 1:
            self.keys = ""
            return Outcome(refused=True)
        parsed = _parse(self.keys + key)
        if parsed == "pending":
            self.keys += key
            return Outcome(pending=True)
        self.keys = ""
        if parsed == "invalid":
            return Outcome(refused=True)
        return self._run(parsed, draft)

    # ------------------------------------------------------------ running

    def _run(self, command: _Command, draft: Draft) -> Outcome:
        text, cursor, count = draft.text, normal_cursor(draft.text, draft.cursor), command.count
        if command.operator:
            return self._operate(command, Draft(text, cursor))
        name = command.name
        if name in _MOTIONS or name in _FIND or name == "gg":
            target = self._motion(name, command.arg, count, text, cursor, command.counted)
            if isinstance(target, Outcome):
                return target
            return _moved(text, normal_cursor(text, target))
        if name == "u":
            return Outcome(undo=count)
        if name in _INSERTS:
            return _insert(name, text, cursor)
        if name == "r":
            end = cursor + count
            if end > _line_end(text, cursor):
                return Outcome(refused=True)
            return _moved(text[:cursor] + command.arg * count + text[end:], end - 1)
        if name == "~":
            end = min(cursor + count, _line_end(text, cursor))
            toggled = text[cursor:end].swapcase()
            return _moved(text[:cursor] + toggled + text[end:], normal_cursor(text, end))
        if name == "J":
            return _join(text, cursor, max(count, 2) - 1)
        if name in "pP":
            return self._put(name == "p", count, text, cursor)
        shorthand = {"x": "dl", "X": "dh", "s": "cl", "S": "cc", "D": "d$", "C": "c$", "Y": "yy"}
        spelled = shorthand[name]
        return self._operate(
            _Command(spelled[0], spelled[1], "", count, command.counted), Draft(text, cursor)
        )

    def _motion(
        self, name: str, arg: str, count: int, text: str, cursor: int, counted: bool
    ) -> int | Outcome:
        """Where motion ``name`` goes from ``cursor`` (an offset; ``Outcome`` for ``j``
        and ``k`` past the first or last line: the input history, or a bell)."""
        start, end = _line_start(text, cursor), _line_end(text, cursor)
        if name in ("h", "\x7f"):
            return max(cursor - count, start)
        if name in ("l", " "):
            return min(cursor + count, max(end - 1, start))
        if name == "0":
            return start
        if name == "^":
            return _first_non_blank(text, start)
        if name == "$":
            line = _offset_of_line(text, min(_line_of(text, cursor) + count - 1, text.count("\n")))
            return max(_line_end(text, line) - 1, line)
        if name in "wWbBeE":
            big = name.isupper()
            step = {"w": _word_forward, "b": _word_back, "e": _word_end}[name.lower()]
            for _ in range(count):
                cursor = step(text, cursor, big)
            return cursor
        if name in ("G", "gg"):
            last = text.count("\n")
            line = count - 1 if counted else last if name == "G" else 0
            return _first_non_blank(text, _offset_of_line(text, min(line, last)))
        if name in "jk":
            line, last = _line_of(text, cursor), text.count("\n")
            target = line + count if name == "j" else line - count
            if not 0 <= target <= last:
                at_edge = line == (last if name == "j" else 0)
                return (
                    Outcome(history=1 if name == "j" else -1) if at_edge else Outcome(refused=True)
                )
            column = cursor - start
            target_start = _offset_of_line(text, target)
            return min(target_start + column, max(_line_end(text, target_start) - 1, target_start))
        if name in (";", ","):
            if not self.last_find:
                return Outcome(refused=True)
            kind, char = self.last_find[0], self.last_find[1]
            if name == ",":
                kind = kind.swapcase()
            return self._find(kind, char, count, text, cursor, repeat=True)
        self.last_find = name + arg
        return self._find(name, arg, count, text, cursor)

    @staticmethod
    def _find(
        kind: str, char: str, count: int, text: str, cursor: int, *, repeat: bool = False
    ) -> int | Outcome:
        """``f``/``t`` (forward), ``F``/``T`` (back) to the ``count``th ``char`` of the line."""
        start, end = _line_start(text, cursor), _line_end(text, cursor)
        position = cursor
        forward, till = kind in "ft", kind in "tT"
        if repeat and till:  # ``;`` after ``t`` must not stop at the same place
            position += 1 if forward else -1
        for _ in range(count):
            position = (
                text.find(char, position + 1, end) if forward else text.rfind(char, start, position)
            )
            if position < 0:
                return Outcome(refused=True)
        if till:
            position += -1 if forward else 1
        return position

    def _operate(self, command: _Command, draft: Draft) -> Outcome:
        text, cursor = draft.text, draft.cursor
        operator, motion = command.operator, command.name
        if motion == operator:  # dd, cc, yy: whole lines
            last = _line_of(text, cursor) + command.count - 1
            if last > text.count("\n"):
                return Outcome(refused=True)
            return self._lines(operator, text, cursor, _offset_of_line(text, last))
        if motion in ("l", " ") and _line_end(text, cursor) == _line_start(text, cursor):
            return Outcome(refused=True) if operator != "c" else Outcome(mode="insert")
        if motion in ("l", " "):  # under an operator it may take the line's last character
            target: int | Outcome = min(cursor + command.count, _line_end(text, cursor))
        elif operator == "c" and motion in "wW" and text[cursor : cursor + 1].strip():
            # vi's cw changes to the end of the word (this one counts, even if it is a
            # single character), not up to the next one
            motion = "e" if motion == "w" else "E"
            target = cursor - 1
            for _ in range(command.count):
                target = _word_end(text, target, motion == "E")
        else:
            target = self._motion(motion, command.arg, command.count, text, cursor, command.counted)
        if isinstance(target, Outcome):
            return Outcome(refused=True)
        if motion in _LINEWISE:
            return self._lines(operator, text, cursor, target)
        start, end = sorted((cursor, target))
        if motion in _INCLUSIVE:  # the character under the target, never its newline
            end = min(end + 1, _line_end(text, end))
        if motion in "wW":  # a word motion under an operator stops at the end of the line
            end = min(end, _line_end(text, start))
        end = min(end, len(text))
        self.register = _Register(text[start:end])
        if operator == "y":
            return _moved(text, normal_cursor(text, start))
        changed = text[:start] + text[end:]
        if operator == "c":
            return Outcome(Draft(changed, start), mode="insert")
        return _moved(changed, normal_cursor(changed, start))

    def _lines(self, operator: str, text: str, cursor: int, other: int) -> Outcome:
        """``operator`` over the whole lines from ``cursor``'s to ``other``'s."""
        first, last = sorted((_line_start(text, cursor), _line_start(text, other)))
        end = _line_end(text, last)
        self.register = _Register(text[first:end] + "\n", linewise=True)
        if operator == "y":
            return _moved(text, first)
        if operator == "c":
            indent = first + len(text[first:end]) - len(text[first:end].lstrip(" \t"))
            return Outcome(Draft(text[:indent] + text[end:], indent), mode="insert")
        # The lines and the newline after them; the last lines take the one before.
        changed = text[:first] + text[end + 1 :] if end < len(text) else text[: max(first - 1, 0)]
        at = min(first, len(changed))
        return _moved(changed, _first_non_blank(changed, _line_start(changed, at)))

    def _put(self, after: bool, count: int, text: str, cursor: int) -> Outcome:
        put = self.register.text * count
        if not put:
            return Outcome(refused=True)
        if self.register.linewise:
            if after:
                end = _line_end(text, cursor)
                changed = text[:end] + "\n" + put[:-1] + text[end:]
                at = end + 1
            else:
                at = _line_start(text, cursor)
                changed = text[:at] + put + text[at:]
            return _moved(changed, _first_non_blank(changed, at))
        at = cursor + 1 if after and _line_end(text, cursor) > cursor else cursor
        changed = text[:at] + put + text[at:]
        return _moved(changed, at + len(put) - 1)


# ---------------------------------------------------------------- parsing


_COUNT = "[1-9][0-9]*"  # a 0 that starts a count is the motion
_COMMAND: Final = re.compile(
    rf"(?P<count>{_COUNT})?(?:(?P<operator>[dcy])(?P<motion_count>{_COUNT})?)?"
    r"(?P<name>[fFtTr].|gg|[^0-9fFtTrg]|0)",
    re.DOTALL,
)
_BEGINNING: Final = re.compile(rf"(?:{_COUNT})?(?:[dcy](?:{_COUNT})?)?[fFtTrg]?")
"""What the keys of a command are before its last one."""


def _parse(keys: str) -> "_Command | Literal['pending', 'invalid']":
    """The command ``keys`` spell, or whether they begin one (``pending``) or none."""
    if _BEGINNING.fullmatch(keys):
        return "pending"
    match = _COMMAND.fullmatch(keys)
    if match is None:
        return "invalid"
    operator, name = match["operator"] or "", match["name"]
    name, arg = (name[0], name[1]) if len(name) == 2 and name != "gg" else (name, "")
    motion = name in _MOTIONS or name in _FIND or name == "gg"
    if not (motion or name == operator if operator else motion or name in _SIMPLE or name == "r"):
        return "invalid"
    counts = [int(match[group] or 1) for group in ("count", "motion_count")]
    counted = match["count"] is not None or match["motion_count"] is not None
    return _Command(operator, name, arg, min(counts[0] * counts[1], 10_000), counted)


# ---------------------------------------------------------------- text helpers


def _line_start(text: str, offset: int) -> int:
    return text.rfind("\n", 0, offset) + 1


def _line_end(text: str, offset: int) -> int:
    """The offset of the line's newline (or the text's end)."""
    end = text.find("\n", offset)
    return len(text) if end < 0 else end


def _line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset)


def _offset_of_line(text: str, line: int) -> int:
    offset = 0
    for _ in range(line):
        offset = text.index("\n", offset) + 1
    return offset


def _first_non_blank(text: str, start: int) -> int:
    end = _line_end(text, start)
    offset = start
    while offset < end and text[offset] in " \t":
        offset += 1
    return normal_cursor(text, offset)


def normal_cursor(text: str, offset: int) -> int:
    """``offset`` moved onto a character of its line (vi's normal-mode cursor)."""
    offset = max(0, min(offset, len(text)))
    start, end = _line_start(text, offset), _line_end(text, offset)
    return start if end == start else min(offset, end - 1)


def _kind(char: str, big: bool) -> int:
    """0 for a blank, 1 for a word character (any non-blank with ``big``), 2 else."""
    if char.isspace():
        return 0
    return 1 if big or char.isalnum() or char == "_" else 2


def _word_forward(text: str, offset: int, big: bool) -> int:
    """``w``: the start of the next word (an empty line counts as one)."""
    length = len(text)
    if offset >= length:
        return length
    kind = _kind(text[offset], big)
    if kind:
        while offset < length and _kind(text[offset], big) == kind:
            offset += 1
    while offset < length and text[offset].isspace():
        if text[offset] == "\n" and offset + 1 < length and text[offset + 1] == "\n":
            return offset + 1
        offset += 1
    return offset


def _word_end(text: str, offset: int, big: bool) -> int:
    """``e``: the end of this word if not on it already, else of the next one."""
    length, origin = len(text), offset
    offset += 1
    while offset < length and text[offset].isspace():
        offset += 1
    if offset >= length:
        return origin  # no word after: stay
    kind = _kind(text[offset], big)
    while offset + 1 < length and _kind(text[offset + 1], big) == kind:
        offset += 1
    return offset


def _word_back(text: str, offset: int, big: bool) -> int:
    """``b``: the start of this word if not on it already, else of the one before."""
    offset -= 1
    while offset > 0 and text[offset].isspace():
        offset -= 1
    if offset <= 0:
        return 0
    kind = _kind(text[offset], big)
    while offset > 0 and _kind(text[offset - 1], big) == kind:
        offset -= 1
    return offset


def _moved(text: str, cursor: int) -> Outcome:
    """Staying in normal mode: the cursor on a character of its line."""
    return Outcome(Draft(text, normal_cursor(text, cursor)))


def _insert(name: str, text: str, cursor: int) -> Outcome:
    """``i a I A o O``: where typing resumes (and the line ``o``/``O`` open)."""
    start, end = _line_start(text, cursor), _line_end(text, cursor)
    if name == "i":
        return Outcome(Draft(text, cursor), mode="insert")
    if name == "a":
        return Outcome(Draft(text, min(cursor + 1, end)), mode="insert")
    if name == "I":
        return Outcome(Draft(text, _first_non_blank(text, start)), mode="insert")
    if name == "A":
        return Outcome(Draft(text, end), mode="insert")
    if name == "o":
        return Outcome(Draft(text[:end] + "\n" + text[end:], end + 1), mode="insert")
    return Outcome(Draft(text[:start] + "\n" + text[start:], start), mode="insert")


def _join(text: str, cursor: int, joins: int) -> Outcome:
    """``J``: the next ``joins`` lines joined to this one, one space between."""
    for _ in range(joins):
        end = _line_end(text, cursor)
        if end >= len(text):
            return Outcome(refused=True) if _ == 0 else _moved(text, normal_cursor(text, cursor))
        following = text[end + 1 :]
        stripped = following.lstrip(" \t")
        line = text[_line_start(text, cursor) : end]
        gap = "" if not line or not stripped or stripped[0] in ")\n" else " "
        text = text[:end] + gap + stripped
        cursor = end
    return _moved(text, normal_cursor(text, cursor))
