"""Every limit and period of the crypto core in one place, in milliseconds and counts.

The defaults are the normative values of docs/crypto.md; tests shrink them to stay fast.
"""

from dataclasses import dataclass

from e2echat.protocol.constants import HISTORY_AGE_S, HISTORY_COUNT

SECOND = 1000
MINUTE = 60 * SECOND
HOUR = 3600 * SECOND
DAY = 24 * HOUR
RETENTION = HISTORY_AGE_S * SECOND
"""The relay's default history age (30 days; it also keeps at most 10,000 messages per
room): whatever can still open a message the relay retains is kept at least this long."""


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


DEFAULT_POLICY = Policy()
