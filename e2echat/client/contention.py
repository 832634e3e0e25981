"""Signing for a membership-log position that another entry may take first.

Members joining (or changing the log) at once all sign for the same position and all
but one lose it (``log_conflict``). Each loser waits a full-jitter moment, fetches what
took the position and signs again, for as long as the log keeps growing; a relay that
answers ``log_conflict`` with no new valid entry behind it is followed only
``LOG_ATTEMPTS`` times. The client's changes (``Client._change``, which sleeps) and the
engine's own rejoin after a reconnect (``Engine``, whose tick runs out the wait) share
this. Pure: no clock and no I/O, the caller waits ``next_delay()`` its own way.
"""

from dataclasses import dataclass, field

from e2echat.client.backoff import Backoff
from e2echat.crypto.events import LogStatement
from e2echat.protocol.roomlog import parse_entry

LOG_ATTEMPTS = 3
"""How many ``log_conflict`` answers that brought no new valid entry (a relay refusing
for nothing) a statement takes before it gives up; a conflict lost to a real entry is
contention, and is tried again for as long as the log keeps growing."""
LOG_RETRY_S = 0.01
LOG_RETRY_MAX_S = 1.0
"""The bounds (seconds) of the first and the longest wait, a uniform draw below the
bound, before signing again after a lost position: members joining at once spread out
instead of colliding again."""


def _full_jitter() -> Backoff:
    return Backoff(initial=LOG_RETRY_S, maximum=LOG_RETRY_MAX_S, fixed=0.0)


@dataclass
class LogContention:
    """One statement's tries for a log position: ``signed`` each, ``next_delay`` after
    each ``log_conflict``, then ``took_position`` once the log is fetched again."""

    backoff: Backoff = field(default_factory=_full_jitter)
    position: int = 0
    """The position the last statement was signed for."""
    stalled: int = 0
    """``log_conflict`` answers with no valid entry at our position behind them."""

    def signed(self, statement: LogStatement) -> None:
        """``statement`` goes to the relay: the position it was signed for is ours."""
        self.position = parse_entry(statement.entry).seq

    def next_delay(self) -> float:
        """Seconds to wait after a ``log_conflict`` before fetching and signing again."""
        return self.backoff.next_delay()

    def took_position(self, length: int) -> bool:
        """Whether the log, ``length`` entries long once fetched after the conflict, has
        an entry at the position we signed for (contention: sign again); if not, the
        conflict was the relay's word only, and counts towards ``exhausted``."""
        if length > self.position:
            return True
        self.stalled += 1
        return False

    @property
    def exhausted(self) -> bool:
        """Whether the relay claimed ``LOG_ATTEMPTS`` conflicts for nothing: give up."""
        return self.stalled >= LOG_ATTEMPTS
