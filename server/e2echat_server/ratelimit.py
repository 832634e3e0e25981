"""Per-connection token buckets: one paces frames, one counts abuse until the relay hangs up.

Pure: the caller passes the time, so the tests need no clock and no sleeps.
"""

from dataclasses import dataclass
from enum import StrEnum


@dataclass(slots=True)
class TokenBucket:
    """``rate`` tokens per second, holding at most ``burst``; it starts full."""

    rate: float
    burst: float
    tokens: float
    stamp: float

    @classmethod
    def full(cls, rate: float, burst: float, now: float) -> "TokenBucket":
        return cls(rate=rate, burst=burst, tokens=burst, stamp=now)

    def take(self, now: float, cost: float = 1.0) -> bool:
        """Spend ``cost`` tokens if there are enough; say whether it was allowed."""
        elapsed = now - self.stamp
        if elapsed > 0:
            self.tokens = min(self.burst, self.tokens + elapsed * self.rate)
            self.stamp = now
        if self.tokens >= cost:
            self.tokens -= cost
            return True
        return False


class Verdict(StrEnum):
    """What to do with one incoming frame."""

    ALLOW = "allow"
    REFUSE = "refuse"  # answer `error rate_limited`, change nothing
    CLOSE = "close"  # persistent abuse: close with 4429


@dataclass(slots=True)
class ConnectionLimiter:
    """Paces a connection's frames and decides when refusals have become abuse.

    Every frame takes a token from ``frames`` (``rate``/s, ``burst``). Every refused or bad
    frame is a strike and takes a token from ``strikes``, which holds ``burst`` strikes and
    forgives one per second: a client that keeps misbehaving for longer than a burst is
    closed, one that slips now and then is not.
    """

    frames: TokenBucket
    strikes: TokenBucket

    @classmethod
    def create(cls, rate: float, burst: int, now: float) -> "ConnectionLimiter":
        return cls(TokenBucket.full(rate, burst, now), TokenBucket.full(1.0, burst, now))

    def admit(self, now: float) -> Verdict:
        """The verdict for a frame arriving at ``now``."""
        if self.frames.take(now):
            return Verdict.ALLOW
        return self.strike(now)

    def strike(self, now: float) -> Verdict:
        """Record one misbehaviour (a refused or bad frame): REFUSE, or CLOSE once exhausted."""
        return Verdict.REFUSE if self.strikes.take(now) else Verdict.CLOSE
