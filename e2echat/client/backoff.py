"""Retry delays: exponential backoff with jitter, capped.

Reconnects use "equal jitter": half of each delay is the exponential bound and half a
uniform draw; the random half spreads out the reconnects of many clients after a relay
restart, the fixed half keeps a client from hammering a relay that is down. Contention
(members signing for the same log position) uses "full jitter", ``fixed=0``: the relay
is up and answering, and a wholly random delay spreads the contenders furthest.
"""

import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    """The delay before each next attempt; ``connection_ended`` after each connection."""

    initial: float = 0.5
    maximum: float = 30.0
    factor: float = 2.0
    stable: float = 10.0
    """A connection that stayed up this long (seconds) starts the delays over."""
    fixed: float = 0.5
    """The share of each delay that is not random (0.5: equal jitter, 0: full jitter)."""
    rng: random.Random = field(default_factory=random.Random)
    attempt: int = 0

    def next_delay(self) -> float:
        """The delay in seconds before the next attempt, in ``[bound * fixed, bound]``."""
        bound = min(self.maximum, self.initial * self.factor**self.attempt)
        if bound < self.maximum:
            # stop counting at the cap: factor**attempt would overflow a float after
            # about a thousand failures (hours of a relay being down), and end the loop
            self.attempt += 1
        return bound * self.fixed + self.rng.uniform(0, bound * (1 - self.fixed))

    def reset(self) -> None:
        """Start over from the initial delay."""
        self.attempt = 0

    def connection_ended(self, lasted: float) -> None:
        """A connection ended after ``lasted`` seconds: if it was stable, start over.

        A relay that accepts and at once drops us (overloaded, misconfigured) must not
        be redialled twice a second forever: short-lived connections keep backing off.
        """
        if lasted >= self.stable:
            self.reset()
