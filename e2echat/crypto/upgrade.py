"""Upgrades of the crypto core's stored records from earlier layouts.

The client's store runs each upgrade once, inside the transaction of its schema
migration (e2echat.store.schema), so a crash leaves the old layout whole.
"""

import msgspec

from e2echat.crypto.chain import OutboundChain
from e2echat.crypto.prekeys import Key32, SignedPrekey
from e2echat.crypto.records import (
    CONTACTS,
    LOG,
    OUTBOUND,
    PARTS,
    PENDING,
    RETAINED,
    ROOMS,
    WAITING,
    ContactRecord,
    MemberRecord,
    PendingMessage,
    Records,
    RoomRecord,
    WaitingChain,
)
from e2echat.crypto.roomlog import LogState
from e2echat.crypto.store import CryptoStore

LEGACY_TRUST = "trust"
"""Version 1 kept TOFU per name: ``utf8(relay) || 0x00 || utf8(name) -> key``."""


class _TrustV1(msgspec.Struct, frozen=True):
    key: Key32
    verified: bool = False
    pending: Key32 | None = None


class _MemberV1(msgspec.Struct, frozen=True):
    name: str
    prekey: SignedPrekey | None
    announced: bool
    validated: bool
    blocked: bool = False


class _RoomV1(msgspec.Struct, frozen=True):
    room_id: bytes
    join_key: bytes | None
    members: dict[bytes, _MemberV1] = msgspec.field(default_factory=dict)


def trust_by_key(store: CryptoStore) -> None:
    """Version 1 to 2: per-name TOFU records become per-key contacts.

    A key verified under any name stays verified (by key now); the name it was known by
    labels it. A "pending" key (a changed key of a verified name, blocked until
    accepted) is not carried: it is another person, and is remembered unverified when
    it is next seen. Rosters lose their ``blocked`` flag, which only that check set.
    Every key in a roster is remembered, as if first seen now.
    """
    txn = Records(store).begin()
    contacts: dict[bytes, ContactRecord] = {}
    for row_key, raw in store.scan(LEGACY_TRUST):
        old = msgspec.msgpack.decode(raw, type=_TrustV1)
        name = row_key.split(b"\x00", 1)[1].decode()
        known = contacts.get(old.key)
        if known is None or (old.verified and not known.verified):
            contacts[old.key] = ContactRecord(name, verified=old.verified)
        txn.delete(LEGACY_TRUST, row_key)
    for row_key, raw in store.scan(ROOMS):
        room = msgspec.msgpack.decode(raw, type=_RoomV1)
        members = {
            key: MemberRecord(m.name, m.prekey, m.announced, m.validated)
            for key, m in room.members.items()
        }
        for key, member in room.members.items():
            contacts.setdefault(key, ContactRecord(member.name))
        txn.put(ROOMS, row_key, RoomRecord(room.room_id, room.join_key, members))
    for key, contact in contacts.items():
        txn.put(CONTACTS, key, contact)
    txn.commit()


class _PendingV6(msgspec.Struct, frozen=True):
    room_id: bytes
    sender: bytes
    chain_id: bytes
    index: int
    seq: int
    body: bytes
    received: int
    reported: bool = False


def index_waiting(store: CryptoStore) -> None:
    """Version 6 to 7: the messages waiting for their chain are summed up per chain
    (space ``waiting``), which the periodic tick reads instead of every message; each
    message loses its own ``reported`` flag: its chain's record holds one, set if every
    message of the chain was reported (otherwise the tick reports them all, some again).
    """
    txn = Records(store).begin()
    chains: dict[bytes, WaitingChain] = {}
    for row_key, raw in store.scan(PENDING):
        old = msgspec.msgpack.decode(raw, type=_PendingV6)
        message = PendingMessage(
            old.room_id, old.sender, old.chain_id, old.index, old.seq, old.body, old.received
        )
        txn.put(PENDING, row_key, message)
        chain_key = row_key[:-4]  # the key ends with the u32 index
        known = chains.get(chain_key)
        chains[chain_key] = (
            WaitingChain(old.received, 1, old.reported)
            if known is None
            else WaitingChain(
                min(known.since, old.received), known.count + 1, known.reported and old.reported
            )
        )
    for chain_key, chain in chains.items():
        txn.put(WAITING, chain_key, chain)
    txn.commit()


_WITH_PARTS: dict[str, type[msgspec.Struct]] = {
    ROOMS: RoomRecord,
    LOG: LogState,
    OUTBOUND: OutboundChain,
    RETAINED: OutboundChain,
}


def parts_as_rows(store: CryptoStore) -> None:
    """Version 7 to 8: the dicts a join or a share changes by one key (a room's roster,
    its log's roles, who holds each of our chains) move out of their records into rows
    of their own, one per key (``records.PARTS``), so that change writes one row."""
    txn = Records(store).begin()
    for space, kind in _WITH_PARTS.items():
        for row_key, raw in store.scan(space):
            record = msgspec.msgpack.decode(raw, type=kind)
            if getattr(record, PARTS[space].field):  # empty: in rows already (version 2)
                txn.put(space, row_key, record)
    txn.commit()
