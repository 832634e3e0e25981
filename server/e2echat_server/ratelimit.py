"""Token buckets: per connection (frames, abuse), per address (new identities), per user.

Pure: the caller passes the time, so the tests need no clock and no sleeps.
"""

import ipaddress
from dataclasses import dataclass, field
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

    def _refill(self, now: float) -> None:
        elapsed = now - self.stamp
        if elapsed > 0:
            self.tokens = min(self.burst, self.tokens + elapsed * self.rate)
            self.stamp = now

    def take(self, now: float, cost: float = 1.0) -> bool:
        """Spend ``cost`` tokens if there are enough; say whether it was allowed."""
        self._refill(now)
        if self.tokens >= cost:
            self.tokens -= cost
            return True
        return False

    def wait(self, now: float, cost: float = 1.0) -> float:
        """Seconds from ``now`` until ``cost`` tokens are there (0 if they are already)."""
        self._refill(now)
        return max(0.0, (cost - self.tokens) / self.rate)

    def full_at(self, now: float) -> bool:
        """Whether the bucket has refilled completely: it then holds no information."""
        self._refill(now)
        return self.tokens >= self.burst


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


def address_group(address: str) -> str:
    """The unit one client controls: an IPv4 address, or the /64 of an IPv6 one.

    A single IPv6 host is usually handed a whole /64, so budgeting per address would let
    it pick a fresh address per attempt; an IPv4-mapped address counts as its IPv4 one.
    Anything that is not an IP address (a Unix socket peer, "-") is its own group.
    """
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


@dataclass(slots=True)
class AddressBudgets:
    """One token bucket per address group (see `address_group`), made on first use.

    Used for what each client address may do only now and then (register a new identity).
    A bucket that has refilled completely says nothing a fresh one would not, so `prune`
    drops it: the table holds only addresses active within the last ``burst / rate``
    seconds, however many addresses come and go.
    """

    rate: float
    burst: float
    buckets: dict[str, TokenBucket] = field(default_factory=dict)

    def take(self, address: str, now: float) -> bool:
        """Spend one token of ``address``'s group; False (and nothing spent) if it has none."""
        group = address_group(address)
        bucket = self.buckets.get(group)
        if bucket is None:
            bucket = self.buckets[group] = TokenBucket.full(self.rate, self.burst, now)
        return bucket.take(now)

    def retune(self, rate: float, burst: float) -> None:
        """New limits for every group (a reload): buckets keep their tokens, up to ``burst``."""
        self.rate, self.burst = rate, burst
        for bucket in self.buckets.values():
            bucket.rate, bucket.burst = rate, burst
            bucket.tokens = min(bucket.tokens, burst)

    def prune(self, now: float) -> int:
        """Forget the buckets that have refilled; return how many."""
        full = [group for group, bucket in self.buckets.items() if bucket.full_at(now)]
        for group in full:
            del self.buckets[group]
        return len(full)
