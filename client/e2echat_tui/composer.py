"""The composer: a multi-line editor with sending, history, pastes and Tab completion.

Enter sends (the send keys are configurable); Shift+Enter, Alt+Enter or Ctrl+J insert
a line break. A paste keeps its line breaks; any other control character in it (ESC,
a bidi override, ...) is put in as a visible escape such as ``\\x1b`` and the app is
told, so nothing pasted can move the cursor or reorder what a reader sees. A paste
that is the path of a file is handed to the app instead, to offer an upload. Up on the
first line and Down on the last walk the room's input history. Tab completes the
word before the cursor and cycles on each press; it never moves focus. End with the
cursor already at the end of the draft asks the app for the newest message. With
``vi``, Escape enters vi's normal mode: its keys go to ``vi.Normal``, a pure model of
the commands, and the edit it returns is applied here (as one undoable change).
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from rich.text import Text
from textual import events
from textual.message import Message
from textual.widgets import OptionList, TextArea

from e2echat_tui.commands import history_text
from e2echat_tui.completion import NOTHING, Completion
from e2echat_tui.files import pasted_file
from e2echat_tui.keys import composer_keys
from e2echat_tui.safe import escape_controls
from e2echat_tui.vi import Draft, Normal, Outcome, normal_cursor


def clean_paste(text: str) -> tuple[str, int]:
    """``text`` as it may enter the composer, and how many characters were escaped.

    Line breaks of any convention become ``\\n``, tabs become spaces; every other
    control or format character becomes a visible escape (``safe.escape_controls``).
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n").expandtabs(4)
    clean = escape_controls(text, keep_newlines=True)
    if clean == text:
        return text, 0
    return clean, sum(1 for a in text if escape_controls(a, keep_newlines=True) != a)


@dataclass
class InputHistory:
    """The lines sent in one room, newest last, and where Up/Down stand in them.

    Secrets are not remembered (``commands.history_text``). ``stash`` keeps the draft
    that was being written when the walk began, so walking back down restores it.
    """

    SIZE = 200

    entries: list[str] = field(default_factory=list)
    position: int = 0
    stash: str = ""

    def remember(self, line: str) -> None:
        entry = history_text(line)
        if not self.entries or self.entries[-1] != entry:
            self.entries.append(entry)
            del self.entries[: -self.SIZE]
        self.position = len(self.entries)
        self.stash = ""

    def walk(self, step: int, current: str) -> str | None:
        """The line ``step`` entries away (-1 older, +1 newer), or None at an end."""
        if not self.entries:
            return None
        if self.position == len(self.entries):
            self.stash = current
        position = min(max(self.position + step, 0), len(self.entries))
        if position == self.position:
            return None
        self.position = position
        return self.stash if position == len(self.entries) else self.entries[position]


Completer = Callable[[str], Completion]


@dataclass
class _Cycle:
    """A Tab completion in progress: the word's span and the candidate shown."""

    completion: Completion
    index: int
    end: int  # where the inserted candidate ends (the cursor)


class Composer(TextArea):
    """Where messages and commands are written."""

    DEFAULT_CSS = """
    Composer { height: auto; min-height: 3; max-height: 10; }
    """

    class Submitted(Message):
        """The user pressed a send key; ``text`` is the whole draft, which the composer
        no longer holds."""

        def __init__(self, composer: "Composer", text: str) -> None:
            super().__init__()
            self.composer = composer
            self.text = text

    class Escaped(Message):
        """A paste held ``count`` control characters: they were put in escaped."""

        def __init__(self, count: int) -> None:
            super().__init__()
            self.count = count

    class FilePasted(Message):
        """The paste ``text`` names the regular file ``path``."""

        def __init__(self, path: Path, text: str) -> None:
            super().__init__()
            self.path = path
            self.text = text

    class Cancelled(Message):
        """Escape with nothing else to do (no completion shown; in vi mode, in normal
        mode already): drop the reply or edit the draft is for, if any."""

    class PastEnd(Message):
        """End with the cursor already at the end of the draft: show the newest message."""

    class Completing(Message):
        """Tab found several candidates (``index`` is shown), or none are left (empty)."""

        def __init__(self, completion: Completion, index: int) -> None:
            super().__init__()
            self.completion = completion
            self.index = index

    def __init__(
        self,
        *,
        completer: Completer = lambda before: NOTHING,
        keymap: Mapping[str, str] | None = None,
        vi: bool = False,
        id: str | None = None,
    ) -> None:
        super().__init__(
            id=id,
            soft_wrap=True,
            tab_behavior="focus",
            show_line_numbers=False,
            highlight_cursor_line=False,
            placeholder="Message, or /help  (Enter sends, Alt+Enter: new line)",
        )
        self.completer = completer
        keys = composer_keys(keymap or {})  # the config's [keymap] over the defaults
        self.send_keys, self.newline_keys = keys["send"], keys["newline"]
        self.complete_keys, self.complete_previous_keys = (
            keys["complete"],
            keys["complete_previous"],
        )
        self.older_keys, self.newer_keys = keys["history_previous"], keys["history_next"]
        self.input_history = InputHistory()
        self._cycle: _Cycle | None = None
        self.vi = vi
        self.normal_mode = False
        """vi's normal mode (``vi`` only): keys move and edit, letters are not typed."""
        self._normal = Normal()

    # ------------------------------------------------------------ drafts

    def set_draft(self, text: str) -> None:
        """Replace the whole text, with the cursor at its end."""
        self._end_cycle()
        self.load_text(text)
        self.move_cursor(self.document.end)

    # ------------------------------------------------------------ keys

    def set_normal_mode(self, normal: bool) -> None:
        """Enter vi's normal mode (the cursor steps back onto a character, as in vi)
        or go back to typing."""
        if normal and not self.normal_mode:
            offset = self._offset()
            if offset > 0 and self.text[offset - 1] != "\n":
                offset -= 1
            self.move_cursor(self._location(normal_cursor(self.text, offset)))
        self.normal_mode = normal
        self._normal.keys = ""
        self._show_mode()

    def _show_mode(self) -> None:
        keys = self._normal.keys
        self.border_subtitle = (
            (f"NORMAL {keys}" if keys else "NORMAL  i: insert") if (self.normal_mode) else ""
        )

    async def _on_key(self, event: events.Key) -> None:
        key = event.key
        handled = True
        if self.normal_mode and key not in self.send_keys and self._vi_normal(event):
            pass
        elif self.vi and key == "escape" and self._cycle is None and not self.normal_mode:
            self.set_normal_mode(True)
        elif key == "end" and self.cursor_location == self.document.end:
            self.post_message(self.PastEnd())
        elif key in self.complete_keys:
            self.complete(1)
        elif key in self.complete_previous_keys:
            self.complete(-1)
        elif (
            self._cycle is not None
            and len(self._cycle.completion.candidates) > 1
            and key in self.older_keys | self.newer_keys
        ):
            self.complete(-1 if key in self.older_keys else 1)
        elif self._cycle is not None and key in ("escape", *self.send_keys):
            self._end_cycle()  # accept the shown candidate; the next Enter sends
        elif key == "escape":
            self.post_message(self.Cancelled())
        elif key in self.send_keys:
            # emptied now, in key order: what is typed next, before the app has taken
            # this draft, belongs to the next one (the app puts back a draft it keeps)
            text = self.text
            self.set_draft("")
            self.post_message(self.Submitted(self, text))
        elif key in self.newline_keys:
            self._end_cycle()
            self.insert("\n")
        elif key in self.older_keys | self.newer_keys and self._walk_history(
            -1 if key in self.older_keys else 1
        ):
            pass
        else:
            handled = False
        if handled:
            event.stop()
            event.prevent_default()
            return
        self._end_cycle()
        await super()._on_key(event)

    def _vi_normal(self, event: events.Key) -> bool:
        """A key of vi's normal mode; True if it was one (letters never get typed):
        arrows, Home, End, Tab and the app's keys work as in insert mode."""
        if event.key in ("escape", "ctrl+r"):
            key = event.key
        elif event.key == "backspace":
            key = "\x7f"  # a step left, as in vi
        elif event.is_printable and event.character:
            key = event.character
        else:
            return False
        self._apply(self._normal.feed(key, Draft(self.text, self._offset())))
        return True

    def _apply(self, outcome: Outcome) -> None:
        """Carry out what a normal-mode key asked for."""
        if outcome.refused:
            self.app.bell()
        for _ in range(outcome.undo):
            self.action_undo()
        for _ in range(-outcome.undo):
            self.action_redo()
        if outcome.history and not self._walk_history(outcome.history):
            self.app.bell()
        if outcome.draft is not None:
            self._edit(outcome.draft)
        if outcome.mode == "insert":
            self.set_normal_mode(False)
        else:
            self._show_mode()

    def _edit(self, draft: Draft) -> None:
        """Make the text ``draft.text`` by replacing only the part that differs (one
        change for undo, as in vi), and put the cursor at ``draft.cursor``."""
        old, new = self.text, draft.text
        if new != old:
            same = min(len(old), len(new))
            head = next((i for i in range(same) if old[i] != new[i]), same)
            tail = 0
            while tail < same - head and old[-1 - tail] == new[-1 - tail]:
                tail += 1
            self.history.checkpoint()
            self.replace(
                new[head : len(new) - tail], self._location(head), self._location(len(old) - tail)
            )
            self.history.checkpoint()
        self.move_cursor(self._location(draft.cursor))

    def _walk_history(self, step: int) -> bool:
        """Up on the first line / Down on the last walk the history; True if it did."""
        at_edge = self.cursor_at_first_line if step < 0 else self.cursor_at_last_line
        if not at_edge:
            return False
        line = self.input_history.walk(step, self.text)
        if line is None:
            return False
        self.set_draft(line)
        return True

    # ------------------------------------------------------------ pastes

    async def _on_paste(self, event: events.Paste) -> None:
        event.stop()
        event.prevent_default()
        self._paste(event.text)

    def action_paste(self) -> None:
        self._paste(self.app.clipboard)

    def _paste(self, text: str) -> None:
        """A paste that names a file goes to the app (which offers to upload it and
        hands it back with ``insert_paste`` if declined); any other is put in."""
        path = pasted_file(text) if not self.read_only else None
        if path is not None:
            self.post_message(self.FilePasted(path, text))
        else:
            self._insert_clean(text)

    def insert_paste(self, text: str) -> None:
        """Put ``text`` in as a paste (cleaned like one)."""
        self._insert_clean(text)

    def _insert_clean(self, text: str) -> None:
        if self.read_only or not text:
            return
        clean, escaped = clean_paste(text)
        self._end_cycle()
        result = self.replace(clean, *self.selection)
        self.move_cursor(result.end_location)
        if escaped:
            self.post_message(self.Escaped(escaped))

    # ------------------------------------------------------------ completion

    def _offset(self) -> int:
        """The cursor as an index into ``text``."""
        row, column = self.cursor_location
        lines = self.text.split("\n")
        return sum(len(line) + 1 for line in lines[:row]) + column

    def _location(self, offset: int) -> tuple[int, int]:
        before = self.text[:offset]
        return before.count("\n"), offset - (before.rfind("\n") + 1)

    def complete(self, step: int) -> None:
        """Tab: put in the first candidate, or cycle to the next one (``step``)."""
        cycle = self._cycle
        if cycle is None:
            offset = self._offset()
            completion = self.completer(self.text[:offset])
            if not completion.candidates:
                self.app.bell()
                return
            index = 0 if step > 0 else len(completion.candidates) - 1
            start, end = completion.start, offset
        else:
            completion = cycle.completion
            index = (cycle.index + step) % len(completion.candidates)
            start = completion.start
            end = cycle.end
        text = completion.candidates[index].text
        self.replace(text, self._location(start), self._location(end))
        self.move_cursor(self._location(start + len(text)))
        if len(completion.candidates) == 1:
            self._end_cycle()
            return
        self._cycle = _Cycle(completion, index, start + len(text))
        self.post_message(self.Completing(completion, index))

    def _end_cycle(self) -> None:
        if self._cycle is not None:
            self._cycle = None
            self.post_message(self.Completing(NOTHING, 0))

    @property
    def completing(self) -> bool:
        return self._cycle is not None


class CompletionMenu(OptionList, can_focus=False):
    """The candidates of a Tab completion, just above the composer.

    It sits in the layout (not floating) between the timeline and the composer, so it
    takes its rows from the timeline and is always entirely on screen; at most
    ``max-height`` rows show, the highlighted one kept in view.
    """

    DEFAULT_CSS = """
    CompletionMenu {
        display: none;
        height: auto;
        max-height: 15;
        border: none;
        border-left: wide $accent;
        padding: 0 1;
    }
    CompletionMenu.-open { display: block; }
    """

    _shown: tuple[str, ...] = ()

    def show(self, completion: Completion, index: int) -> None:
        labels = tuple(candidate.label for candidate in completion.candidates)
        if labels != self._shown:
            self._shown = labels
            self.set_options(Text(label) for label in labels)
        self.set_class(bool(labels), "-open")
        if labels:
            self.highlighted = index
