"""Which relay to dial next, when a client is given several URLs of one chat.

Nodes of one relay cluster (``e2echat-server --redis``) serve every room, so a client
whose node died may resume on any other from its sequence numbers. The list is tried in
turn: after a lost connection or a failed attempt the next URL is dialled after a short
random pause (spreading the reconnects of every client of a dead node over the
others), and only once every URL has failed in a row does the client back off.
"""

import random
from collections.abc import Sequence
from dataclasses import dataclass, field


def relay_urls(url: str | Sequence[str]) -> tuple[str, ...]:
    """The URLs of ``Client(url)``: one string, or a non-empty sequence of them."""
    urls = (url,) if isinstance(url, str) else tuple(url)
    if not urls or not all(isinstance(u, str) and u for u in urls):
        raise ValueError("url must be a relay URL or a non-empty list of relay URLs")
    return urls


@dataclass
class RelayRotation:
    """The URL to dial now, and how many attempts in a row have failed."""

    urls: tuple[str, ...]
    spread: float = 0.5
    """The pause before trying the next URL is drawn from ``[0, spread]`` seconds."""
    rng: random.Random = field(default_factory=random.Random)
    current: int = 0
    failures: int = 0
    """Attempts since the last stable connection (the first attempt counts as none)."""

    @property
    def url(self) -> str:
        return self.urls[self.current]

    def advance(self) -> bool:
        """The current URL failed or its connection ended: move on to the next.

        True when every URL has now failed in a row (the caller backs off before the
        next round); False when another URL is still untried (a short pause is enough).
        """
        self.current = (self.current + 1) % len(self.urls)
        self.failures += 1
        return self.failures % len(self.urls) == 0

    def round_tried(self) -> bool:
        """Whether every URL has failed at least once since the last stable connection."""
        return self.failures >= len(self.urls)

    def pause(self) -> float:
        """A pause before the next URL of the same round."""
        return self.rng.uniform(0, self.spread)

    def stable(self) -> None:
        """A connection lasted: the next failure starts a new round."""
        self.failures = 0
