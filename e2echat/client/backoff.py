"""Reconnect delays: exponential backoff with "equal jitter", capped.

Half of each delay is the exponential bound and half a uniform draw: the random half
spreads out the reconnects of many clients after a relay restart, the fixed half keeps
a client from hammering a relay that is down.
"""

import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    """The delay before each next attempt; ``reset()`` after a successful connect."""

    initial: float = 0.5
    maximum: float = 30.0
    factor: float = 2.0
    rng: random.Random = field(default_factory=random.Random)
    attempt: int = 0

    def next_delay(self) -> float:
        """The delay in seconds before the next attempt, in ``[initial/2, bound]``."""
        bound = min(self.maximum, self.initial * self.factor**self.attempt)
        self.attempt += 1
        return bound / 2 + self.rng.uniform(0, bound / 2)

    def reset(self) -> None:
        """Start over from the initial delay."""
        self.attempt = 0
