"""The running uploads and downloads: one progress line each, above the composer.

``Transfers`` keeps them in start order and redraws at most every ``REDRAW_S`` (a
fast transfer reports every 256 KiB), the newest step always shown within that time;
it hides itself when nothing runs. The app
starts and cancels the transfers, this widget only shows them.
"""

import time
from dataclasses import dataclass, field
from typing import Any

from rich.text import Text
from textual.timer import Timer
from textual.widgets import Static

from e2echat import Transfer, TransferProgress
from e2echat_tui.files import progress_line

REDRAW_S = 0.1
CANCEL_HINT = "f4 cancels the newest · /cancel cancels all"


@dataclass(eq=False)
class Running:
    """One transfer on screen: what it moves, and the newest progress."""

    transfer: Transfer[Any]
    name: str
    direction: str
    progress: TransferProgress | None = field(default=None)


class Transfers(Static):
    """A line per running transfer with its bar, bytes, rate and time left."""

    DEFAULT_CSS = """
    Transfers { height: auto; max-height: 6; padding: 0 1; color: $text-muted; display: none; }
    Transfers.-active { display: block; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.running: list[Running] = []
        self._drawn_at = 0.0
        self._later: Timer | None = None

    def start(self, transfer: Transfer[Any], name: str, direction: str) -> Running:
        entry = Running(transfer, name, direction)
        self.running.append(entry)
        self._redraw()
        return entry

    def advance(self, entry: Running, progress: TransferProgress) -> None:
        """Show ``progress`` now, or at the next redraw (never later than ``REDRAW_S``:
        the step a stalled transfer stops at is shown too)."""
        entry.progress = progress
        if self._later is not None:
            return
        wait = REDRAW_S - (time.monotonic() - self._drawn_at)
        if wait <= 0 or progress.done >= progress.total:
            self._redraw()
        else:
            self._later = self.set_timer(wait, self._redraw)

    def finish(self, entry: Running) -> None:
        if entry in self.running:
            self.running.remove(entry)
        self._redraw()

    def newest(self) -> Running | None:
        return self.running[-1] if self.running else None

    def _redraw(self) -> None:
        if self._later is not None:
            self._later.stop()
            self._later = None
        self._drawn_at = time.monotonic()
        if not self.is_attached:
            return  # the app is closing
        self.set_class(bool(self.running), "-active")
        lines = [progress_line(e.name, e.progress, e.direction) for e in self.running]
        if lines:
            lines.append(CANCEL_HINT)
        self.update(Text("\n".join(lines)))
