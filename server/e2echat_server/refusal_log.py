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

from e2echat_server.logs import LOGGER, event

WINDOW_S = 10.0


@dataclass(slots=True)
class RefusalLog:
    """Counts refusals by reason and logs them, rate-limited per reason."""

    window_s: float = WINDOW_S
    clock: Callable[[], float] = time.monotonic
    counts: Counter[str] = field(default_factory=Counter)
    _last: dict[str, float] = field(default_factory=dict)
    _unlogged: Counter[str] = field(default_factory=Counter)

    def refused(self, reason: str, **fields: Any) -> None:
        """One refusal of ``reason``; ``fields`` say whose (metadata only)."""
        self.counts[reason] += 1
        now = self.clock()
        last = self._last.get(reason)
        if last is not None and now - last < self.window_s:
            self._unlogged[reason] += 1
            return
        self._last[reason] = now
        also = self._unlogged.pop(reason, 0)
        extra = {"also": also} if also else {}
        event(LOGGER, "refused", logging.WARNING, reason=reason, **fields, **extra)
