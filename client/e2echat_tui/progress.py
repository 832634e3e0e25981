"""Long work in the status line: ``syncing #lobby: 3,000 of 10,000 · reconnecting…``.

``ProgressBoard`` holds what runs, in start order; each ``start`` returns an
``Activity`` the worker advances and finishes. The board only keeps state and says
when its text changed (``on_change``): the app binds that text to the header, so a
thousand steps cost a thousand string updates and one redraw per frame, never a wait
in the worker. Any part of the app may use it (connecting, catching up, loading
history, uploads and downloads).
"""

from collections.abc import Callable
from dataclasses import dataclass, field

from e2echat_tui.safe import escape_controls


@dataclass(eq=False)
class Activity:
    """One piece of long work: ``label`` and, once known, ``done`` of ``total``."""

    board: "ProgressBoard" = field(repr=False)
    label: str
    done: int = 0
    total: int | None = None
    detail: str | None = None
    """Said after the label instead of the count (a transfer's rate and time left)."""

    def advance(self, done: int, total: int | None = None) -> None:
        """``done`` units so far (of ``total``, if given now or before)."""
        self.done = done
        if total is not None:
            self.total = total
        self.board.changed()

    def describe(self, detail: str) -> None:
        self.detail = detail
        self.board.changed()

    def relabel(self, label: str) -> None:
        self.label = label
        self.board.changed()

    def finish(self) -> None:
        """The work ended (idempotent)."""
        self.board.end(self)

    @property
    def text(self) -> str:
        label = escape_controls(self.label)
        if self.detail is not None:
            return f"{label} {escape_controls(self.detail)}"
        if self.total is None:
            return f"{label}: {self.done:,}" if self.done else f"{label}…"
        return f"{label}: {self.done:,} of {self.total:,}"


class ProgressBoard:
    """The activities under way; ``text`` is the status line's part for them."""

    def __init__(self, on_change: Callable[[str], None] = lambda text: None) -> None:
        self.activities: list[Activity] = []
        self.on_change = on_change
        self._shown = ""

    def start(self, label: str, total: int | None = None) -> Activity:
        activity = Activity(self, label, 0, total)
        self.activities.append(activity)
        self.changed()
        return activity

    def end(self, activity: Activity) -> None:
        if activity in self.activities:
            self.activities.remove(activity)
            self.changed()

    def changed(self) -> None:
        text = self.text
        if text != self._shown:
            self._shown = text
            self.on_change(text)

    @property
    def text(self) -> str:
        return " · ".join(activity.text for activity in self.activities)


@dataclass(eq=False)
class CatchUp:
    """A room's catch-up as the app shows it: counted by what reached the screen, not
    by how far the library is (at start it may be thousands of messages ahead)."""

    activity: Activity
    start: int
    """The seq before the catch-up's first message."""
    end: int
    """Its last seq."""

    def shown(self, seq: int) -> bool:
        """The room's message ``seq`` is on screen; True once the whole catch-up is."""
        total = self.end - self.start
        done = min(max(seq - self.start, 0), total)
        if done > self.activity.done:
            self.activity.advance(done, total)
        return seq >= self.end
