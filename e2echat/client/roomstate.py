"""One joined room as the engine knows it: its record, the relay's roster, its sync.

``member_list`` is an immutable snapshot, replaced on change, so the event loop (a
``Room`` handle) can read it while the worker thread updates the room.
"""

from dataclasses import dataclass, field

from e2echat.client.contention import LogContention
from e2echat.client.models import Member
from e2echat.client.roomsync import RoomSync
from e2echat.crypto.lookalike import Resemblance
from e2echat.crypto.roomlog import LogState
from e2echat.protocol import Message as RelayMessage
from e2echat.protocol import RosterEntry
from e2echat.store import ReadState, RoomRecord


@dataclass
class RoomState:
    """One joined room."""

    record: RoomRecord
    sync: RoomSync[RelayMessage]
    members: dict[bytes, RosterEntry] = field(default_factory=dict)
    """The relay's member list, by key."""
    member_list: tuple[Member, ...] = ()
    listed_order: list[tuple[str, bytes]] = field(default_factory=list)
    """``member_list``'s sort keys (case-folded name, key), in its order."""
    listed_names: dict[bytes, str] = field(default_factory=dict)
    """The name each entry of ``member_list`` is listed under, by key."""
    namesakes: dict[str, set[bytes]] = field(default_factory=dict)
    """The listed keys by each skeleton of their name: only names sharing one resemble."""
    lookalikes: dict[bytes, tuple[Resemblance, ...]] = field(default_factory=dict)
    """Members whose names equal or resemble another key's (refreshed with the list)."""
    joined: bool = True
    awaiting: set[bytes] = field(default_factory=set)
    """Secret room: members (present at our join, or announced since) whose proof we
    still await."""
    hold_until: int = 0
    """Until then (ms), sends wait for ``awaiting`` members to prove themselves."""
    read: ReadState = field(default_factory=ReadState)
    """The read marker and unread counts (the store's, kept in step)."""
    typing_sent: tuple[bool, int] = (False, 0)
    """Whether our last typing signal said "typing", and when (ms)."""
    log: LogState | None = None
    """What the room's validated membership log says (None: it has none, or not yet)."""
    frozen: str | None = None
    """Why nothing may be sent in the room (its log forked, or we were removed)."""
    log_rejoin: bool = False
    """A log fetch after a reconnect is under way: once caught up, sign our ``join`` if
    the log lacks us (a join whose append was lost)."""
    rejoin: LogContention | None = None
    """The tries of the ``join`` the engine signs on its own, this connection."""
    rejoin_at: int | None = None
    """When (ms) to fetch the log and sign that ``join`` again after a ``log_conflict``
    (the tick runs the wait out; None: no try waits)."""
    room_key_asked: tuple[int, int] = (-1, 0)
    """The epoch whose secret we last asked for, and when (ms)."""
    log_behind: int = 0
    """The log length a member's message named beyond ours (0: not behind): sends wait
    until our log reaches it, since a missing entry may have removed someone."""
    log_withheld: int = 0
    """The ``log_behind`` we last told the app the relay did not serve."""
    log_fetch: tuple[bool, int] = (False, 0)
    """Whether our own log fetch is on its way, and when (ms) the last one went out."""
    proofs_held: bool = False
    """Our ``join`` proofs of a first entry wait until the whole log is fetched."""

    @property
    def id(self) -> bytes:
        """The relay-assigned room id."""
        return self.record.id

    def holds(self, now: int) -> bool:
        """Whether sending should wait: a message sent before a member is validated can
        never be read by it (it gets our chain from the index current at validation),
        and members who joined while we were away are unknown until the roster comes;
        nor while our membership log lags behind one a member named."""
        if self.sync.awaiting_roster or self.log_behind:
            return True
        return bool(self.awaiting) and now < self.hold_until
