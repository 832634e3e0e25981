"""Every limit and period of the crypto core in one place, in milliseconds and counts.

The defaults are the normative values of docs/crypto.md; tests shrink them to stay fast.
"""

import dataclasses
from dataclasses import dataclass

from e2echat.protocol.constants import HISTORY_AGE_S, HISTORY_COUNT

SECOND = 1000
MINUTE = 60 * SECOND
HOUR = 3600 * SECOND
DAY = 24 * HOUR
RETENTION = HISTORY_AGE_S * SECOND
"""The relay's default history age (30 days; it also keeps at most 10,000 messages per
room): whatever can still open a message the relay retains is kept at least this long."""
MAX_COVERED_AGE = 365 * DAY
"""The longest relay retention a client follows (``Policy.covering``): a relay cannot
make it keep chain keys, and so weaken forward secrecy, for longer."""
MAX_COVERED_MESSAGES = 100_000
"""The most retained messages per room a client follows (``Policy.covering``): a relay
cannot make it hold unbounded key material per sender."""


@dataclass(frozen=True, slots=True)
class Policy:
    """Limits of the ratchet, rotation periods and retention windows."""

    max_jump: int = 2000
    """Largest forward jump of a message index over the next expected one."""
    max_skipped: int = 1000
    """Most skipped message keys kept per inbound chain (the oldest are dropped)."""
    retention: int = RETENTION
    """How long our own replaced chains are kept to answer ``key_request``."""
    max_retained_chains: int = 128
    """Most of our own replaced chains kept per room to answer ``key_request`` (128
    chains of ``rotate_messages`` cover the relay's 10,000 retained messages)."""
    skipped_ttl: int = RETENTION
    """Age after which a skipped message key is deleted."""
    rotate_messages: int = 100
    """Our chain is replaced after this many messages."""
    rotate_age: int = 7 * DAY
    """... or when it is this old."""
    inbound_grace: int = RETENTION
    """How long a replaced inbound chain still decrypts late messages."""
    prekey_rotation: int = 7 * DAY
    """Age at which our signed prekey is replaced."""
    prekey_grace: int = 14 * DAY
    """How long a replaced private prekey is kept before deletion."""
    pending_timeout: int = 30 * SECOND
    """How long a message waits for its key before it is reported and the key requested."""
    max_request_interval: int = HOUR
    """Key requests for a chain still waiting are repeated, each wait twice the one
    before (from ``pending_timeout``), at most this far apart."""
    pending_expiry: int = RETENTION
    """How long a reported message is still kept in case its key arrives."""
    max_pending: int = HISTORY_COUNT
    """Most messages buffered per room while their keys are missing."""
    max_inbound_chains: int = 128
    """Most chains kept per sender and room (each may hold ``max_skipped`` keys); beyond
    it the oldest retired chains are deleted early, leaving tombstones."""

    def covering(self, messages: int, age_ms: int) -> "Policy":
        """This policy, with every window and cap that decides whether a retained
        message can still be read raised to cover a relay that keeps ``messages`` per
        room for ``age_ms`` (what its ``challenge`` announces): the windows to the age,
        the pending cap to the count, the chain caps to the chains that many messages
        fill. Never lowered (a relay keeping less changes nothing), and followed at most
        up to ``MAX_COVERED_AGE`` and ``MAX_COVERED_MESSAGES``."""
        age = min(age_ms, MAX_COVERED_AGE)
        count = min(messages, MAX_COVERED_MESSAGES)
        chains = -(-count // self.rotate_messages)
        return dataclasses.replace(
            self,
            retention=max(self.retention, age),
            skipped_ttl=max(self.skipped_ttl, age),
            inbound_grace=max(self.inbound_grace, age),
            pending_expiry=max(self.pending_expiry, age),
            max_pending=max(self.max_pending, count),
            max_retained_chains=max(self.max_retained_chains, chains),
            max_inbound_chains=max(self.max_inbound_chains, chains),
        )


DEFAULT_POLICY = Policy()
