"""Typed records over a ``CryptoStore``, with a write-through cache and transactions.

An operation reads through a ``Txn`` (which sees its own writes), and ``commit`` hands
all of its writes to the store in one atomic ``apply``. An operation that raises half
way simply never commits: this is how "state changes only when every step succeeds"
holds everywhere, structurally. The cache holds decoded immutable records so the hot
path (one message) decodes nothing.
"""

import contextlib
import struct
from collections.abc import Callable, Iterator
from typing import Annotated, Any, NamedTuple, TypeVar, cast

import msgspec

from e2echat.crypto.chain import ChainTombstone, InboundChain, Index, OutboundChain
from e2echat.crypto.direct import ChainId, RoomId
from e2echat.crypto.message import CHAIN_ID_SIZE, ROOM_ID_SIZE
from e2echat.crypto.prekeys import U32, Key32, PrekeyRecord, SignedPrekey
from e2echat.crypto.primitives import KEY_SIZE
from e2echat.crypto.redact import redacted_fields
from e2echat.crypto.revised import changed_since, settle
from e2echat.crypto.roomlog import LogState
from e2echat.crypto.store import CryptoStore, Write

PREKEYS = "prekey"
ROOMS = "room"
OUTBOUND = "out"
RETAINED = "kept"
INBOUND = "in"
GONE = "gone"
PENDING = "pending"
WAITING = "waiting"
CONTACTS = "contact"
LOG = "log"
LOG_ENTRIES = "logentry"
SEEN = "seen"
ROOM_KEYS = "roomkey"
REFUSED = "refused"
ASKED = "asked"
INVITES = "invited"
ROOM_MEMBERS = "member"
LOG_ROLES = "role"
OUTBOUND_SHARED = "shared"
RETAINED_SHARED = "keptshared"

R = TypeVar("R", bound=msgspec.Struct)


class MemberRecord(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A room member as we know it: ``validated`` members are the only ones we share with."""

    name: str
    prekey: SignedPrekey | None
    announced: bool
    validated: bool


class LogClaim(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A log position a member signed (in a room message's header) beyond our log."""

    sender: Key32
    length: U32
    head: Key32


class RoomRecord(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A room's access mode (``join_key`` is None for open rooms) and validated roster."""

    room_id: RoomId
    join_key: Key32 | None
    members: dict[Key32, MemberRecord] = msgspec.field(default_factory=dict)
    epoch: U32 = 0
    """The epoch of ``join_key`` (the membership log's epoch once its secret arrived)."""
    room_secret: Key32 | None = None
    """The room secret of ``epoch`` (for the relay token, invites and the log's tags)."""
    forked: str | None = None
    """Why the room is frozen for good: its log forked from another member's."""
    removed: str | None = None
    """Why we may not send here: we left or were removed (until we join again)."""
    peer: Key32 | None = None
    """A direct conversation's other key: entitled to every message from the first."""
    ahead: LogClaim | None = None
    """The longest log a member's message named beyond ours: we are behind until our
    log reaches it (and then its head must match ours there, or the log forked)."""

    @property
    def frozen(self) -> str | None:
        """Why nothing may be sent or shared in the room now (None: we may)."""
        return self.forked or self.removed

    @property
    def secret(self) -> bool:
        """Whether membership needs a proof (a secret room)."""
        return self.join_key is not None

    def __repr__(self) -> str:
        kind = "secret" if self.secret else "open"
        return f"RoomRecord(room_id={self.room_id.hex()}, {kind}, members={len(self.members)})"

    def __rich_repr__(self) -> list[tuple[str, Any]]:
        return redacted_fields(self, ("join_key", "room_secret"))


class ContactRecord(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What we know of one key (an identity), whatever name it goes by.

    ``name`` is the label the key was last seen under; ``name_issued`` is set when it
    came from a name statement the key signed (section 9.6), and then only a newer
    statement replaces it. ``petname`` is the user's own name for the key.
    ``successor``/``predecessor`` link keys joined by a checked successor statement.
    """

    name: str
    name_issued: int | None = None
    verified: bool = False
    petname: str | None = None
    successor: Key32 | None = None
    predecessor: Key32 | None = None


class PendingMessage(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A signed room message whose chain has not been shared with us yet."""

    room_id: RoomId
    sender: Key32
    chain_id: ChainId
    index: U32
    seq: Annotated[int, msgspec.Meta(ge=0)]
    body: bytes
    received: int

    def __repr__(self) -> str:
        return f"PendingMessage(seq={self.seq}, index={self.index}, body=<{len(self.body)} bytes>)"


class WaitingChain(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The messages of one chain that wait for it (space ``pending``), summed up so the
    periodic ``tick`` reads this small record per chain, never the messages: they are
    read again only when something is due for them (reported, expired, decrypted)."""

    since: int
    """When the oldest of them arrived: the chain is overdue ``pending_timeout`` later,
    and that message expires ``pending_expiry`` later."""
    count: Annotated[int, msgspec.Meta(ge=1)]
    reported: bool = False
    """They were reported ``Undecryptable``; one arriving now is reported at once."""


class RefusedShare(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Why a share of one chain was refused (its date: a clock is off), kept so the
    messages of that chain are reported with the reason, not as "not arrived"."""

    reason: str
    received: int


class KeyAsked(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """When we last asked the owner of a chain for it, and how many times so far."""

    at: int
    times: int


class LogEntryRecord(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One validated membership-log entry, as signed (public bytes)."""

    wire: bytes


class SeenNonce(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A proof nonce already accepted from a prover (kept while its envelope is fresh)."""

    received: int


class RoomKeyRecord(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A room secret received for a rotation, installed once the log commits to it."""

    secret: Key32
    received: int

    def __repr__(self) -> str:
        return "RoomKeyRecord(<redacted>)"

    def __rich_repr__(self) -> list[tuple[str, Any]]:
        return redacted_fields(self, ("secret",))


class InviteRecord(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A checked invitation to a direct conversation, kept until we entered its room
    (or it was refused), so a crash between its mailbox ack and our join loses nothing;
    then, ``followed``, kept while a copy of it could still be fresh, so a relay that
    delivers it again cannot bring us back into a conversation we left."""

    sender: Key32
    name: str
    secret: Key32
    received: int
    followed: bool = False

    def __repr__(self) -> str:
        return f"InviteRecord(name={self.name!r}, secret=<redacted>)"

    def __rich_repr__(self) -> list[tuple[str, Any]]:
        return redacted_fields(self, ("secret",))


def log_entry_key(room_id: bytes, position: int) -> bytes:
    """Store key of the log entry at ``position``: room || u32."""
    return room_id + struct.pack(">I", position)


def prekey_key(prekey_id: int) -> bytes:
    """Store key of a prekey record."""
    return struct.pack(">I", prekey_id)


def inbound_key(room_id: bytes, sender: bytes, chain_id: bytes = b"") -> bytes:
    """Store key (or prefix) of inbound chains: room || sender || chain id."""
    return room_id + sender + chain_id


def split_chain_key(chain_key: bytes) -> tuple[bytes, bytes, bytes]:
    """The room id, sender and chain id of an ``inbound_key``."""
    return (
        chain_key[:ROOM_ID_SIZE],
        chain_key[ROOM_ID_SIZE:-CHAIN_ID_SIZE],
        chain_key[-CHAIN_ID_SIZE:],
    )


def pending_key(message: PendingMessage) -> bytes:
    """Store key of a pending message; duplicates of one message share it."""
    return inbound_key(message.room_id, message.sender, message.chain_id) + struct.pack(
        ">I", message.index
    )


_encoder = msgspec.msgpack.Encoder()
_TYPES: dict[str, type[msgspec.Struct]] = {
    PREKEYS: PrekeyRecord,
    ROOMS: RoomRecord,
    OUTBOUND: OutboundChain,
    RETAINED: OutboundChain,
    INBOUND: InboundChain,
    GONE: ChainTombstone,
    PENDING: PendingMessage,
    WAITING: WaitingChain,
    CONTACTS: ContactRecord,
    LOG: LogState,
    LOG_ENTRIES: LogEntryRecord,
    SEEN: SeenNonce,
    ROOM_KEYS: RoomKeyRecord,
    REFUSED: RefusedShare,
    ASKED: KeyAsked,
    INVITES: InviteRecord,
}
_decoders = {space: msgspec.msgpack.Decoder(kind) for space, kind in _TYPES.items()}


class Part(NamedTuple):
    """A dict field of a record that the store keeps as rows of their own, one per key
    of the dict, at ``space``/record key || dict key (every dict key is 32 bytes): a
    change of one member of a room's roster or log, or of who holds our chain, writes
    that member's row, not the whole dict (a join into a room of n wrote n entries)."""

    field: str
    space: str
    decoder: msgspec.msgpack.Decoder[Any]


PARTS: dict[str, Part] = {
    ROOMS: Part("members", ROOM_MEMBERS, msgspec.msgpack.Decoder(MemberRecord)),
    LOG: Part("members", LOG_ROLES, msgspec.msgpack.Decoder(int)),
    OUTBOUND: Part("shared", OUTBOUND_SHARED, msgspec.msgpack.Decoder(Index)),
    RETAINED: Part("shared", RETAINED_SHARED, msgspec.msgpack.Decoder(Index)),
}
"""The spaces whose records keep a dict field as rows (``Part``), by space."""
_DELETED: Any = object()
ABSENT_CACHED = 4096
"""Keys ``Records`` remembers as missing, at most (then it forgets them all)."""


class Records:
    """Decoded, cached access to the records of one ``CryptoStore``.

    Records read by ``get`` are cached, and so is their absence (an open room has no
    log, which every message asks for), for at most ``ABSENT_CACHED`` keys: the keys
    asked for come from the relay. Pending messages (read by ``scan`` only) never are.
    Subsets asked for by ``matching`` are held once scanned. Every write goes through
    ``_commit``, which updates all of them, so the cache holds what the store holds and
    no more.
    """

    def __init__(self, store: CryptoStore) -> None:
        self._store = store
        self._cache: dict[tuple[str, bytes], Any] = {}
        self._absent: set[tuple[str, bytes]] = set()
        self._unwritten: dict[tuple[str, bytes], Any] | None = None
        """Inside ``deferred``: committed writes not yet handed to the store."""
        self._matching: dict[tuple[str, Callable[[Any], bool]], dict[bytes, Any]] = {}
        """Subsets of spaces: the records a predicate keeps (``matching``)."""
        self._stored_parts: dict[tuple[str, bytes], dict[bytes, Any]] = {}
        """The ``Part`` dicts as the store holds them, of the records read or written
        here: a write of such a record writes the rows of the keys that changed."""

    def get(self, space: str, key: bytes, kind: type[R]) -> R | None:
        """The record at ``space``/``key`` (cached after the first read, found or not)."""
        cache_key = (space, key)
        found = self._cache.get(cache_key)
        if found is None:
            if cache_key in self._absent:
                return None
            if self._unwritten is not None and cache_key in self._unwritten:
                found = self._unwritten[cache_key]
                return None if found is _DELETED else cast(R, found)
            raw = self._store.get(space, key)
            if raw is None:
                if len(self._absent) >= ABSENT_CACHED:
                    self._absent.clear()
                self._absent.add(cache_key)
                return None
            found = _decoders[space].decode(raw)
            part = PARTS.get(space)
            if part is not None:
                found = self._with_part(space, key, found, part, self._store.scan(part.space, key))
            self._cache[cache_key] = found
        assert isinstance(found, kind)
        return found

    def matching(self, space: str, kind: type[R], predicate: Callable[[R], bool]) -> dict[bytes, R]:
        """The records of ``space`` that ``predicate`` keeps, by key: scanned once, then
        kept up to date by every commit, so a caller that needs a few of many records (the
        verified contacts among every key seen, on every roster change) reads no others.
        The dict is the cache's own: read it, never change it."""
        found = self._matching.get((space, predicate))
        if found is None:
            scanned = self.scan(space, b"", kind)
            found = {key: record for key, record in scanned if predicate(record)}
            self._matching[(space, predicate)] = found
        return cast("dict[bytes, R]", found)

    def scan(self, space: str, prefix: bytes, kind: type[R]) -> list[tuple[bytes, R]]:
        """Every record of ``space`` under ``prefix``, in key order, from the store, with
        the writes of ``deferred`` not handed to it yet."""
        decoder = _decoders[space]
        found = [(key, decoder.decode(raw)) for key, raw in self._store.scan(space, prefix)]
        part = PARTS.get(space)
        if part is not None:
            rows: dict[bytes, list[tuple[bytes, bytes]]] = {key: [] for key, _ in found}
            for row_key, raw in self._store.scan(part.space, prefix):
                rows.get(row_key[:-KEY_SIZE], []).append((row_key, raw))
            found = [
                (key, self._with_part(space, key, record, part, rows[key])) for key, record in found
            ]
        if self._unwritten:
            found = _merged(found, self._unwritten, space, prefix)
        return cast("list[tuple[bytes, R]]", found)

    def keys(self, space: str, prefix: bytes) -> set[bytes]:
        """The keys of ``space`` under ``prefix`` (no record read), with the writes of
        ``deferred`` not handed to the store yet."""
        found = set(self._store.keys(space, prefix))
        for (written_space, key), value in (self._unwritten or {}).items():
            if written_space == space and key.startswith(prefix):
                if value is _DELETED:
                    found.discard(key)
                else:
                    found.add(key)
        return found

    def begin(self) -> "Txn":
        """A new transaction over these records."""
        return Txn(self)

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        """Operations committed inside reach the store together when it ends, each
        record once, with its last value: a batch of messages advances a chain once in
        the store, not once per message. Reads inside see every commit. The caller holds
        one store transaction around it, so it is as atomic as the operations it groups.
        """
        if self._unwritten is not None:
            yield
            return
        self._unwritten = {}
        try:
            yield
        finally:
            writes, self._unwritten = self._unwritten, None
            if writes:
                self._write(writes)

    def _commit(self, writes: dict[tuple[str, bytes], Any]) -> None:
        if self._unwritten is None:
            self._write(writes)
        else:
            self._unwritten.update(writes)
        for cache_key, value in writes.items():
            self._absent.discard(cache_key)
            for (space, predicate), subset in self._matching.items():
                if space == cache_key[0]:
                    if value is not _DELETED and predicate(value):
                        subset[cache_key[1]] = value
                    else:
                        subset.pop(cache_key[1], None)
            if value is _DELETED or cache_key[0] == PENDING:
                self._cache.pop(cache_key, None)
            else:
                self._cache[cache_key] = value

    def _with_part(
        self, space: str, key: bytes, record: Any, part: Part, rows: list[tuple[bytes, bytes]]
    ) -> Any:
        """``record`` as read from the store, its ``part`` dict made of its ``rows`` (the
        dict known to be stored, if any: the same object, so a write of a record made
        from it compares the keys it changed only)."""
        values = self._stored_parts.get((space, key))
        if values is None:
            values = {row_key[len(key) :]: part.decoder.decode(raw) for row_key, raw in rows}
            self._stored_parts[(space, key)] = values
        return msgspec.structs.replace(record, **{part.field: values})

    def _write(self, writes: dict[tuple[str, bytes], Any]) -> None:
        batch: list[Write] = []
        for (space, key), value in writes.items():
            part = PARTS.get(space)
            if part is None:
                encoded = None if value is _DELETED else _encoder.encode(value)
                batch.append(Write(space, key, encoded))
            else:
                batch += self._part_writes(space, key, value, part)
        self._store.apply(batch)

    def _part_writes(self, space: str, key: bytes, value: Any, part: Part) -> list[Write]:
        """The writes of a record with a ``Part``: its other fields, and the rows of the
        dict's keys that were added, changed or removed since the store last had it (a
        record not read here since it was opened has each row written anew)."""
        stored = self._stored_parts.pop((space, key), None)
        if stored is None:
            stored = dict.fromkeys(
                (row_key[len(key) :] for row_key in self._store.keys(part.space, key)), _DELETED
            )
        if value is _DELETED:
            return [Write(space, key, None)] + [Write(part.space, key + k, None) for k in stored]
        values: dict[bytes, Any] = getattr(value, part.field)
        rest = msgspec.structs.replace(value, **{part.field: {}})
        batch = [Write(space, key, _encoder.encode(rest))]
        changed = changed_since(values, stored)
        if changed is None:
            batch += [
                Write(part.space, key + k, _encoder.encode(v))
                for k, v in values.items()
                if stored.get(k, _DELETED) is not v
            ]
            batch += [Write(part.space, key + k, None) for k in stored.keys() - values.keys()]
        else:
            for k in changed:
                v = values.get(k, _DELETED)
                if v is not stored.get(k, _DELETED):
                    encoded = None if v is _DELETED else _encoder.encode(v)
                    batch.append(Write(part.space, key + k, encoded))
        settle(values)
        self._stored_parts[(space, key)] = values
        return batch


def _merged(
    found: list[tuple[bytes, Any]], writes: dict[tuple[str, bytes], Any], space: str, prefix: bytes
) -> list[tuple[bytes, Any]]:
    """``found`` (records under ``prefix``, in key order) as ``writes`` change it."""
    merged = dict(found)
    for (written_space, key), value in writes.items():
        if written_space == space and key.startswith(prefix):
            if value is _DELETED:
                merged.pop(key, None)
            else:
                merged[key] = value
    return sorted(merged.items(), key=lambda item: item[0])


class Txn:
    """Buffered writes of one operation; nothing reaches the store before ``commit``."""

    def __init__(self, records: Records) -> None:
        self._records = records
        self._writes: dict[tuple[str, bytes], Any] = {}

    def get(self, space: str, key: bytes, kind: type[R]) -> R | None:
        """The record as this transaction sees it."""
        written = self._writes.get((space, key))
        if written is None:
            return self._records.get(space, key, kind)
        return None if written is _DELETED else written

    def scan(self, space: str, prefix: bytes, kind: type[R]) -> list[tuple[bytes, R]]:
        """Every record under ``prefix`` as this transaction sees it, in key order."""
        return _merged(self._records.scan(space, prefix, kind), self._writes, space, prefix)

    def count(self, space: str, prefix: bytes) -> int:
        """How many records are under ``prefix`` as this transaction sees it, without
        reading one (a cap check on a space of large records)."""
        keys = self._records.keys(space, prefix)
        for (written_space, key), value in self._writes.items():
            if written_space == space and key.startswith(prefix):
                if value is _DELETED:
                    keys.discard(key)
                else:
                    keys.add(key)
        return len(keys)

    def put(self, space: str, key: bytes, record: msgspec.Struct) -> None:
        """Set a record at commit."""
        self._writes[(space, key)] = record

    def delete(self, space: str, key: bytes) -> None:
        """Delete a record at commit."""
        self._writes[(space, key)] = _DELETED

    def commit(self) -> None:
        """Write everything to the store in one atomic batch."""
        if self._writes:
            self._records._commit(self._writes)
            self._writes = {}
