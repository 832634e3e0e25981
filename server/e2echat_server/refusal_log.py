"""Refusals by reason: a counter each, and a WARNING line each, at most one per window.

Every refusal (a connection over its address's budget, a failed hello, a flood, an
unregistered key...) is counted for /metrics and logged, so an operator sees abuse in the
logs as well as in graphs. A flood of one reason must not flood the log: after a line, the
same reason waits ``window_s`` before the next, which says how many it stands for.
Fields are metadata only (an address, a fingerprint), never a frame's content.
"""

import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from e2echat_server.logs import THROTTLE_WINDOW_S, ThrottledEvent


@dataclass(slots=True)
class RefusalLog:
    """Counts refusals by reason and logs them, rate-limited per reason."""

    window_s: float = THROTTLE_WINDOW_S
    clock: Callable[[], float] = time.monotonic
    counts: Counter[str] = field(default_factory=Counter)
    _lines: ThrottledEvent = field(init=False)

    def __post_init__(self) -> None:
        self._lines = ThrottledEvent("refused", logging.WARNING, self.window_s, self.clock)

    def refused(self, reason: str, **fields: Any) -> None:
        """One refusal of ``reason``; ``fields`` say whose (metadata only)."""
        self.counts[reason] += 1
        self._lines.log(reason, reason=reason, **fields)
