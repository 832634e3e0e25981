"""Room sync: where each joined room stands between the relay's history and live traffic.

An explicit state machine in the style of h11's ``_state.py``: a room is in one
``SyncState``; relay frames and connection changes are ``SyncInput``s; ``TRANSITIONS``
is the whole table. An input the table has no entry for in the current state is
ignored (it came from the relay, which must not be able to push a room out of order:
a ``synced`` nobody asked for changes nothing).

::

    OFFLINE --CONNECT--> SYNCING --PAGE_FULL--> SYNCING --CAUGHT_UP--> LIVE
    OFFLINE --CONNECT_PARTIAL--> AWAITING_ROSTER --ROSTER--> SYNCING
    any --DISCONNECT--> OFFLINE

It also owns what the states decide: the window of processed seqs (``SeqWindow``,
whose floor the store persists and ``sync`` resumes after), the counts of the current
sync, the delayed floor move after an empty sync, and the messages held while a sync
runs (so the application sees a room's messages in seq order, backlog before live; at
most ``MAX_HELD``, the rest fetched again with one page more).
"""

from enum import Enum, auto
from typing import Generic, TypeVar

from e2echat.client.seqs import SeqWindow
from e2echat.protocol import MAX_SYNC_LIMIT, MembersRequest, Sync

SYNC_ID = "s"
MEMBERS_ID = "m"
SYNC_SETTLE_MS = 5000
"""An empty sync moves the floor to ``synced.seq`` only after this long (see ``synced``)."""
MAX_HELD = 2 * MAX_SYNC_LIMIT
"""Most messages held during a sync: a full page and as many live ones (see ``message``)."""
T = TypeVar("T")


class SyncState(Enum):
    """Where a room stands."""

    OFFLINE = auto()
    """Not connected: nothing arrives; sends wait in the outbox."""
    AWAITING_ROSTER = auto()
    """``welcome`` listed the room partial: its members were asked for. Live frames of
    the room are dropped (its sync brings them once the roster is in) and sends wait."""
    SYNCING = auto()
    """A ``sync`` is out: its pages (and live messages) are being received, and held
    until the page they may follow in is complete (``synced``)."""
    LIVE = auto()
    """Caught up with the relay's history: what arrives is live traffic."""


class SyncInput(Enum):
    """What moves a room from one state to another."""

    CONNECT = auto()
    CONNECT_PARTIAL = auto()
    JOINED = auto()
    ROSTER = auto()
    ROSTER_REFUSED = auto()
    PAGE_FULL = auto()
    CAUGHT_UP = auto()
    SYNC_REFUSED = auto()
    DISCONNECT = auto()


_S, _I = SyncState, SyncInput
TRANSITIONS: dict[tuple[SyncState, SyncInput], SyncState] = {
    (_S.OFFLINE, _I.CONNECT): _S.SYNCING,
    (_S.OFFLINE, _I.CONNECT_PARTIAL): _S.AWAITING_ROSTER,
    (_S.OFFLINE, _I.JOINED): _S.LIVE,
    (_S.LIVE, _I.JOINED): _S.LIVE,
    (_S.AWAITING_ROSTER, _I.ROSTER): _S.SYNCING,
    (_S.AWAITING_ROSTER, _I.ROSTER_REFUSED): _S.SYNCING,
    (_S.SYNCING, _I.PAGE_FULL): _S.SYNCING,
    (_S.SYNCING, _I.CAUGHT_UP): _S.LIVE,
    (_S.SYNCING, _I.SYNC_REFUSED): _S.LIVE,
    **{(state, _I.DISCONNECT): _S.OFFLINE for state in SyncState},
}
"""Every legal transition; anything else is ignored."""


class RoomSync(Generic[T]):
    """The sync state of one room; ``T`` is what is held for a seq (a relay message)."""

    def __init__(self, room_id: bytes, floor: int = 0) -> None:
        self.room_id = room_id
        self.state = SyncState.OFFLINE
        self.seqs = SeqWindow(floor)
        self._received = 0
        """Messages received since the last ``sync`` was sent."""
        self._lowest: int | None = None
        """The lowest seq received since the last ``sync`` was sent."""
        self.floor_due: tuple[int, int] | None = None
        """After an empty sync: move the floor to this seq at this time (ms)."""
        self._held: dict[int, T] = {}
        """Messages received during the current sync, by seq, not processed yet."""
        self._dropped = False
        """A message was let go for ``MAX_HELD`` since the last ``sync``: a page more
        brings it (and whatever else the hold could not keep)."""
        self._catch_up: tuple[int, int] | None = None
        """The floor when the sync began and the room's latest seq then, while there
        is a catch-up to report (``report``)."""

    def __repr__(self) -> str:
        return f"RoomSync({self.room_id.hex()[:8]}, {self.state.name}, floor={self.floor})"

    @property
    def floor(self) -> int:
        """Every seq up to this one has been processed."""
        return self.seqs.floor

    @property
    def awaiting_roster(self) -> bool:
        """Whether the room waits for its member list (frames dropped, sends held)."""
        return self.state is SyncState.AWAITING_ROSTER

    def _move(self, event: SyncInput) -> bool:
        new = TRANSITIONS.get((self.state, event))
        if new is None:
            return False
        self.state = new
        return True

    # Inputs ----------------------------------------------------------------------------

    def connect(self, partial: bool, latest: int = 0) -> Sync | MembersRequest:
        """The room is listed in ``welcome`` (its latest seq ``latest``): ask for what we
        missed, or first for its members if it was listed partial."""
        self._catch_up = (self.floor, latest) if latest > self.floor else None
        if partial:
            self._move(SyncInput.CONNECT_PARTIAL)
            return MembersRequest(room=self.room_id, id=f"{MEMBERS_ID}{self.room_id.hex()}")
        self._move(SyncInput.CONNECT)
        return self._sync()

    def joined(self) -> None:
        """We joined (or re-joined) the room while connected: its reply's seq is our floor,
        so what follows is live."""
        self._move(SyncInput.JOINED)

    def roster_came(self, refused: bool = False) -> Sync | None:
        """The ``members`` reply came (or was refused): a partial room starts its sync."""
        if not self._move(SyncInput.ROSTER_REFUSED if refused else SyncInput.ROSTER):
            return None
        return self._sync()

    def message(self, seq: int, item: T) -> bool:
        """A room message arrived; True if it is new and should be processed now.

        During a sync it is held instead (False), whether it is of the backlog or live:
        live messages interleave with the sync's pages (protocol.md section 6), and
        processed at once they would reach the application before older messages of
        the backlog. ``synced`` releases them in seq order.

        At most ``MAX_HELD`` are held (a relay that keeps pushing while a sync runs
        cannot grow the hold without bound): beyond it the newest is let go, unmarked,
        and the sync asks for one page more, which brings it again from the relay's
        history (it stores a message before broadcasting it)."""
        if self.state is SyncState.AWAITING_ROSTER:
            return False
        if self.state is SyncState.SYNCING:
            self._received += 1
            self._lowest = seq if self._lowest is None else min(self._lowest, seq)
            if not self.seqs.done(seq):
                self._held.setdefault(seq, item)
                if len(self._held) > MAX_HELD:
                    del self._held[max(self._held)]
                    self._dropped = True
            return False
        return self.seqs.add(seq)

    def synced(self, seq: int, now: int) -> tuple[Sync | None, list[T]]:
        """The end of a sync reply: the next page's ``sync`` if this one was full, and the
        held messages now due, in seq order (each marked processed).

        ``seq`` is the room's latest seq "at that moment" (protocol.md §6), which may
        belong to messages not stored or broadcast yet: they come live later, so the
        floor never jumps over them. It jumps only over what retention deleted: the seqs
        below the lowest one the sync returned (the relay stores and broadcasts in seq
        order). A sync that returned nothing cannot tell deleted from on-the-way seqs,
        so the floor moves to ``seq`` only after ``SYNC_SETTLE_MS`` (on a ``tick``), by
        when stragglers have arrived.

        After a full page only the page itself is released: a live message either
        repeats a seq of the page or is newer than all of it (the relay stores and
        broadcasts in seq order), so the page is the ``MAX_SYNC_LIMIT`` lowest seqs held,
        and the rest waits for the pages before it. Once caught up, everything goes.
        """
        if self.state is not SyncState.SYNCING:
            return None, []
        received, lowest = self._received, self._lowest
        if lowest is not None:
            self.seqs.advance_to(lowest - 1)
        elif seq > self.seqs.floor:
            self.floor_due = (seq, now + SYNC_SETTLE_MS)
        if received >= MAX_SYNC_LIMIT or self._dropped:
            self._move(SyncInput.PAGE_FULL)
            held = sorted(self._held)
            released = self._release(held[min(len(held), MAX_SYNC_LIMIT) - 1] if held else 0)
            return self._sync(), released
        self._move(SyncInput.CAUGHT_UP)
        return None, self._release(None)

    def sync_refused(self) -> list[T]:
        """The relay refused our ``sync``: take what comes live; the held messages, in
        seq order, are due now."""
        if not self._move(SyncInput.SYNC_REFUSED):
            return []
        return self._release(None)

    def disconnect(self) -> None:
        """The connection is gone (held messages are dropped: the next sync, from the
        floor they never moved, brings them again)."""
        self._move(SyncInput.DISCONNECT)
        self._received, self._lowest, self.floor_due, self._dropped = 0, None, None, False
        self._catch_up = None
        self._held.clear()

    def report(self) -> tuple[int, int, int] | None:
        """How far the catch-up is: ``(done, total, latest)``, in seqs from the floor at
        ``connect`` to ``latest``, the room's latest seq then; None if there was nothing
        to catch up. Once the room is live ``done`` is ``total``, reported once: then
        None again."""
        if self._catch_up is None:
            return None
        start, latest = self._catch_up
        total = latest - start
        if self.state is SyncState.LIVE:
            self._catch_up = None
            return total, total, latest
        return min(max(self.floor - start, 0), total), total, latest

    def _release(self, upto: int | None) -> list[T]:
        """The held messages up to seq ``upto`` (all if None), in seq order, marked
        processed."""
        due = sorted(s for s in self._held if upto is None or s <= upto)
        items = [(s, self._held.pop(s)) for s in due]
        return [item for s, item in items if self.seqs.add(s)]

    def tick(self, now: int) -> bool:
        """Move a due floor; True if it moved."""
        if self.floor_due is None or now < self.floor_due[1]:
            return False
        self.seqs.advance_to(self.floor_due[0])
        self.floor_due = None
        return True

    def _sync(self) -> Sync:
        self._received, self._lowest, self._dropped = 0, None, False
        return Sync(
            room=self.room_id,
            after=self.seqs.floor,
            limit=MAX_SYNC_LIMIT,
            id=f"{SYNC_ID}{self.room_id.hex()}",
        )
