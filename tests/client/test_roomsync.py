"""The room-sync state machine: every path through its table, and inputs it ignores."""

from e2echat.client.roomsync import SYNC_SETTLE_MS, TRANSITIONS, RoomSync, SyncInput, SyncState
from e2echat.protocol import MAX_SYNC_LIMIT, MembersRequest, Sync

ROOM = b"R" * 16


def test_a_full_room_syncs_pages_then_goes_live() -> None:
    sync = RoomSync(ROOM, floor=5)
    first = sync.connect(partial=False)
    assert isinstance(first, Sync)
    assert (first.after, sync.state) == (5, SyncState.SYNCING)
    for seq in range(6, 6 + MAX_SYNC_LIMIT):
        assert sync.message(seq)
    more = sync.synced(10_000, now=0)
    assert more is not None
    assert more.after == 5 + MAX_SYNC_LIMIT
    assert sync.synced(10_000, now=0) is None  # an empty page: caught up
    assert sync.state is SyncState.LIVE
    assert sync.floor == 5 + MAX_SYNC_LIMIT  # the rest may still be on its way
    assert not sync.tick(SYNC_SETTLE_MS - 1)
    assert sync.tick(SYNC_SETTLE_MS)
    assert sync.floor == 10_000


def test_a_partial_room_waits_for_its_roster_and_drops_live_frames() -> None:
    sync = RoomSync(ROOM)
    assert isinstance(sync.connect(partial=True), MembersRequest)
    assert sync.awaiting_roster
    assert not sync.message(1)  # its sync brings it once the roster is in
    assert sync.floor == 0
    resumed = sync.roster_came()
    assert isinstance(resumed, Sync)
    assert sync.state is SyncState.SYNCING
    assert sync.roster_came() is None  # a second roster starts nothing


def test_a_refused_roster_still_resumes_the_room() -> None:
    sync = RoomSync(ROOM)
    sync.connect(partial=True)
    assert isinstance(sync.roster_came(refused=True), Sync)


def test_what_the_relay_sends_unasked_changes_nothing() -> None:
    sync = RoomSync(ROOM, floor=3)
    assert sync.roster_came() is None  # no roster was asked for
    sync.connect(partial=False)
    sync.synced(3, now=0)
    assert sync.state is SyncState.LIVE
    assert sync.synced(50, now=0) is None  # a synced nobody asked for
    assert (sync.state, sync.floor, sync.floor_due) == (SyncState.LIVE, 3, None)
    sync.sync_refused()
    assert sync.state is SyncState.LIVE


def test_a_disconnect_from_any_state_goes_offline_and_forgets_the_sync() -> None:
    for state in SyncState:
        assert TRANSITIONS[(state, SyncInput.DISCONNECT)] is SyncState.OFFLINE
    sync = RoomSync(ROOM)
    sync.connect(partial=False)
    sync.synced(9, now=0)
    sync.disconnect()
    assert (sync.state, sync.floor_due) == (SyncState.OFFLINE, None)
