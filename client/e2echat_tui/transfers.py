"""The running uploads and downloads, each an activity of the status line.

``Transfers`` keeps them in start order (``f4`` cancels the newest) and shows each in
the app's ``ProgressBoard``: ``↑ slides.pdf 25% 5.0 MiB/20 MiB 2.5 MiB/s 6 s left``.
The board turns a step into a string update, redrawn at the next frame, so a fast
transfer (a step every 256 KiB) never waits on the screen and the composer keeps
typing. The app starts and cancels the transfers; this only keeps and shows them.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from e2echat import Transfer, TransferProgress
from e2echat_tui.files import transfer_detail, transfer_label
from e2echat_tui.progress import Activity, ProgressBoard


@dataclass(eq=False)
class Running:
    """One transfer under way: what it moves, its line, and the newest progress."""

    transfer: Transfer[Any]
    direction: str
    activity: Activity = field(repr=False)
    progress: TransferProgress | None = field(default=None)


class Transfers:
    """The running transfers; ``on_change`` hears when one starts or ends."""

    def __init__(self, board: ProgressBoard, on_change: Callable[[], object]) -> None:
        self.board = board
        self.on_change = on_change
        self.running: list[Running] = []

    def start(self, transfer: Transfer[Any], name: str, direction: str) -> Running:
        activity = self.board.start(transfer_label(name, direction))
        activity.describe(transfer_detail(None, direction))
        entry = Running(transfer, direction, activity)
        self.running.append(entry)
        self.on_change()
        return entry

    def advance(self, entry: Running, progress: TransferProgress) -> None:
        entry.progress = progress
        entry.activity.describe(transfer_detail(progress, entry.direction))

    def finish(self, entry: Running) -> None:
        entry.activity.finish()
        if entry in self.running:
            self.running.remove(entry)
            self.on_change()

    def newest(self) -> Running | None:
        return self.running[-1] if self.running else None
