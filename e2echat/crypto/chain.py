"""The sender-chain ratchet, as pure functions over immutable state records.

``mk_i = KDF_mk(ck_i)``, ``ck_{i+1} = KDF_ck(ck_i)``. Every function here returns a NEW
state and never mutates its input, so the caller commits state only after every other
check of a message (signature, AEAD, payload) has passed.
"""

import hmac
from typing import Annotated, Any

import msgspec

from e2echat.crypto.direct import ChainId, RoomId
from e2echat.crypto.errors import ChainError, ReplayError
from e2echat.crypto.kdf import message_key, next_chain_key
from e2echat.crypto.policy import Policy
from e2echat.crypto.prekeys import U32, U32_MAX, Key32
from e2echat.crypto.primitives import random_bytes
from e2echat.crypto.redact import redacted_fields

Index = U32
Millis = Annotated[int, msgspec.Meta(ge=0)]


class SkippedKey(msgspec.Struct, frozen=True, array_like=True):
    """A message key kept for a message that has not arrived yet."""

    index: Index
    key: Key32
    stored: Millis

    def __repr__(self) -> str:
        return f"SkippedKey(index={self.index}, key=<redacted>)"

    def __rich_repr__(self) -> list[tuple[str, Any]]:
        return redacted_fields(self, ("key",))


class InboundChain(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Another member's chain as we hold it: ``ck`` is the chain key AT ``next``.

    Indices below ``start`` were never ours to read; indices in ``[start, next)`` are
    consumed unless their key is in ``skipped``. ``floor`` is non-zero for a chain
    revived from a tombstone: indices below it were consumed before the chain was
    deleted, so no share, however low, ever makes them readable again.
    """

    room_id: RoomId
    sender: Key32
    chain_id: ChainId
    ck: Key32
    next: Index
    start: Index
    installed: Millis
    skipped: tuple[SkippedKey, ...] = ()
    retired: Millis | None = None
    floor: Index = 0

    def __repr__(self) -> str:
        return (
            f"InboundChain(sender={self.sender.hex()[:16]}, chain_id={self.chain_id.hex()}, "
            f"start={self.start}, next={self.next}, skipped={len(self.skipped)}, ck=<redacted>)"
        )

    def __rich_repr__(self) -> list[tuple[str, Any]]:
        return redacted_fields(self, ("ck",))


class OutboundChain(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Our own chain in a room: ``ck`` is the chain key at ``index`` (the next to send).

    ``initial`` (``ck_0``) is kept for the chain's short life (rotation after 100
    messages or 7 days) so a member asking again gets the chain from the index it was
    first given, never lower.
    """

    chain_id: ChainId
    ck: Key32
    index: Index
    initial: Key32
    created: Millis
    shared: dict[Key32, Index] = msgspec.field(default_factory=dict)
    """Members holding this chain, with the index they were first given."""

    def __repr__(self) -> str:
        return (
            f"OutboundChain(chain_id={self.chain_id.hex()}, index={self.index}, "
            f"shared={len(self.shared)}, ck=<redacted>)"
        )

    def __rich_repr__(self) -> list[tuple[str, Any]]:
        return redacted_fields(self, ("ck", "initial"))


class ChainTombstone(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What stays of a deleted inbound chain: every index below ``floor`` was consumed.

    Without it, a relay could replay the chain's old (still fresh, still signed) share
    after we deleted the chain, and then replay its messages. ``deleted`` is when the
    chain was deleted (None until the next ``tick`` stamps it); the tombstone outlives
    every share of that chain that could still be accepted.
    """

    floor: Index
    deleted: Millis | None = None


def new_outbound(now: int) -> OutboundChain:
    """A fresh chain: random 16-byte id and random ``ck_0``."""
    ck = random_bytes(32)
    return OutboundChain(random_bytes(16), ck, 0, ck, now)


def advance(ck: bytes, steps: int) -> bytes:
    """The chain key ``steps`` positions after ``ck``."""
    for _ in range(steps):
        ck = next_chain_key(ck)
    return ck


def outbound_step(chain: OutboundChain) -> tuple[int, bytes, OutboundChain]:
    """``(index, mk_index, state after sending)`` for the next message."""
    return (
        chain.index,
        message_key(chain.ck),
        msgspec.structs.replace(chain, ck=next_chain_key(chain.ck), index=chain.index + 1),
    )


def chain_key_at(chain: OutboundChain, index: int) -> bytes:
    """Our chain key at ``index`` (``index <= chain.index``), derived from ``ck_0``."""
    if index == chain.index:
        return chain.ck
    if not 0 <= index < chain.index:
        raise ChainError("index is outside our chain")
    return advance(chain.initial, index)


def inbound_key(
    chain: InboundChain, index: int, now: int, policy: Policy
) -> tuple[bytes, InboundChain]:
    """The message key of ``index`` and the chain state once it is consumed.

    Raises ``ChainError`` below the start or too far ahead, ``ReplayError`` for an index
    already consumed.
    """
    if index < chain.floor:
        raise ReplayError("message index was consumed before the chain was deleted")
    if index < chain.start:
        raise ChainError("message precedes the index we were given (sent before we joined)")
    if index >= U32_MAX:
        raise ChainError("message index is at the end of the index space")
    if index < chain.next:
        for position, kept in enumerate(chain.skipped):
            if kept.index == index:
                remaining = chain.skipped[:position] + chain.skipped[position + 1 :]
                return kept.key, msgspec.structs.replace(chain, skipped=remaining)
        raise ReplayError("message index was already received")
    if index - chain.next > policy.max_jump:
        raise ChainError(f"message index jumps more than {policy.max_jump} ahead")
    ck = chain.ck
    fresh = []
    for skipped_index in range(chain.next, index):
        fresh.append(SkippedKey(skipped_index, message_key(ck), now))
        ck = next_chain_key(ck)
    skipped = _cap(chain.skipped + tuple(fresh), policy) if fresh else chain.skipped
    new_state = msgspec.structs.replace(
        chain, ck=next_chain_key(ck), next=index + 1, skipped=skipped
    )
    return message_key(ck), new_state


def install_share(
    existing: InboundChain | None,
    *,
    room_id: bytes,
    sender: bytes,
    chain_id: bytes,
    index: int,
    ck: bytes,
    now: int,
    policy: Policy,
    floor: int = 0,
) -> InboundChain:
    """The chain state after a share from its owner.

    A new chain starts at ``index``, or at ``floor`` if it is a chain we deleted that
    had consumed every index below ``floor``. A known chain is only ever extended
    DOWNWARDS (a share at a lower index, checked to lead to the chain key we hold); the
    indices we already consumed stay consumed, so a re-share can never enable a replay.
    """
    if existing is None:
        if floor - index > policy.max_jump:
            raise ChainError("share is too far below a chain we already consumed")
        start = max(index, floor)
        ck = advance(ck, start - index)
        return InboundChain(room_id, sender, chain_id, ck, start, start, now, floor=floor)
    low = max(index, existing.floor)
    if low >= existing.start:
        return existing
    steps = existing.next - index
    if steps > policy.max_jump:
        raise ChainError("share is too far below the chain we hold")
    keys = []
    walk = ck
    for position in range(index, existing.next):
        if low <= position < existing.start:
            keys.append(SkippedKey(position, message_key(walk), now))
        walk = next_chain_key(walk)
    if not hmac.compare_digest(walk, existing.ck):
        raise ChainError("share is inconsistent with the chain we hold")
    skipped = _cap(tuple(sorted(keys + list(existing.skipped), key=lambda k: k.index)), policy)
    return msgspec.structs.replace(existing, start=low, skipped=skipped)


def expire_skipped(chain: InboundChain, now: int, policy: Policy) -> InboundChain:
    """``chain`` without skipped keys older than the policy's time to live."""
    kept = tuple(k for k in chain.skipped if now - k.stored < policy.skipped_ttl)
    return (
        chain if len(kept) == len(chain.skipped) else msgspec.structs.replace(chain, skipped=kept)
    )


def _cap(skipped: tuple[SkippedKey, ...], policy: Policy) -> tuple[SkippedKey, ...]:
    """Keep the newest ``max_skipped`` keys: the oldest gaps are the least likely to fill."""
    excess = len(skipped) - policy.max_skipped
    return skipped[excess:] if excess > 0 else skipped
