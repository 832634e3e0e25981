"""Client-side pacing of outgoing frames: a token bucket matching the relay's limit.

The relay refuses frames over its per-connection rate (default 30/s, burst 60); pacing
here means a burst of sends (an outbox flush after a long disconnection, a bot replying
to many messages) is spread out instead of bouncing off the relay as errors.
"""

from dataclasses import dataclass


@dataclass
class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved up. Times are in seconds."""

    rate: float
    burst: float
    tokens: float = -1.0
    updated: float = 0.0

    def __post_init__(self) -> None:
        if self.tokens < 0:
            self.tokens = self.burst

    def delay(self, now: float, cost: float = 1.0) -> float:
        """Take ``cost`` tokens; how long to wait before using them (0 if they were there)."""
        self._refill(now)
        self.tokens -= cost
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate

    def wait(self, now: float, cost: float = 1.0) -> float:
        """How long until ``cost`` tokens are there (0: now); takes none."""
        self._refill(now)
        return 0.0 if self.tokens >= cost else (cost - self.tokens) / self.rate

    def _refill(self, now: float) -> None:
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
