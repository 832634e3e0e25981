"""The room-sync state machine: every path through its table, and inputs it ignores."""

from e2echat.client.roomsync import (
    MAX_HELD,
    SYNC_SETTLE_MS,
    TRANSITIONS,
    RoomSync,
    SyncInput,
    SyncState,
)
from e2echat.protocol import MAX_SYNC_LIMIT, MembersRequest, Sync

ROOM = b"R" * 16


def test_a_full_room_syncs_pages_then_goes_live() -> None:
    sync: RoomSync[int] = RoomSync(ROOM, floor=5)
    first = sync.connect(partial=False)
    assert isinstance(first, Sync)
    assert (first.after, sync.state) == (5, SyncState.SYNCING)
    for seq in range(6, 6 + MAX_SYNC_LIMIT):
        assert not sync.message(seq, seq)  # held until the page is complete
    more, released = sync.synced(10_000, now=0)
    assert released == list(range(6, 6 + MAX_SYNC_LIMIT))
    assert more is not None
    assert more.after == 5 + MAX_SYNC_LIMIT
    assert sync.synced(10_000, now=0) == (None, [])  # an empty page: caught up
    assert sync.state is SyncState.LIVE
    assert sync.floor == 5 + MAX_SYNC_LIMIT  # the rest may still be on its way
    assert not sync.tick(SYNC_SETTLE_MS - 1)
    assert sync.tick(SYNC_SETTLE_MS)
    assert sync.floor == 10_000


def test_a_partial_room_waits_for_its_roster_and_drops_live_frames() -> None:
    sync: RoomSync[int] = RoomSync(ROOM)
    assert isinstance(sync.connect(partial=True), MembersRequest)
    assert sync.awaiting_roster
    assert not sync.message(1, 1)  # its sync brings it once the roster is in
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
    assert sync.synced(50, now=0) == (None, [])  # a synced nobody asked for
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


def test_live_messages_wait_for_the_backlog_pages_before_them() -> None:
    """A live message newer than the page being received comes after every page."""
    sync: RoomSync[str] = RoomSync(ROOM)
    sync.connect(partial=False)
    newest = MAX_SYNC_LIMIT + 10
    assert not sync.message(newest, "live")  # overtook the whole backlog
    for seq in range(1, MAX_SYNC_LIMIT + 1):
        sync.message(seq, f"page 1: {seq}")
    sync.message(3, "a copy")  # a live copy of a page seq: the first one is kept
    more, released = sync.synced(newest, now=0)
    assert more is not None
    assert more.after == MAX_SYNC_LIMIT
    assert released == [f"page 1: {seq}" for seq in range(1, MAX_SYNC_LIMIT + 1)]
    for seq in range(MAX_SYNC_LIMIT + 1, newest):
        sync.message(seq, f"page 2: {seq}")
    more, released = sync.synced(newest, now=0)
    assert more is None
    assert sync.state is SyncState.LIVE
    assert released == [f"page 2: {seq}" for seq in range(MAX_SYNC_LIMIT + 1, newest)] + ["live"]
    assert sync.floor == newest
    assert sync.message(newest + 1, "now live")  # processed at once


def test_a_refused_sync_releases_what_it_held_and_a_disconnect_drops_it() -> None:
    sync: RoomSync[int] = RoomSync(ROOM)
    sync.connect(partial=False)
    sync.message(2, 2)
    sync.message(1, 1)
    assert sync.sync_refused() == [1, 2]
    assert sync.sync_refused() == []
    sync.disconnect()
    sync.connect(partial=False)
    sync.message(3, 3)
    sync.disconnect()
    assert (sync.floor, sync.synced(9, now=0)) == (2, (None, []))


def test_a_flood_during_a_sync_is_held_up_to_its_bound_and_nothing_is_lost() -> None:
    """Live messages three times as fast as the pages: the hold never exceeds
    ``MAX_HELD`` (the newest are let go and asked for again with one page more), and
    every seq reaches the application once, in order."""
    sync: RoomSync[int] = RoomSync(ROOM)
    request: Sync | MembersRequest | None = sync.connect(partial=False)
    stored, last = 1500, 6000
    live = iter(range(stored + 1, last + 1))
    released: list[int] = []
    pages = 0
    while request is not None:
        assert isinstance(request, Sync)
        pages += 1
        upto = min(request.after + MAX_SYNC_LIMIT, stored)  # the relay's page, as it stands
        for seq in range(request.after + 1, upto + 1):
            sync.message(seq, seq)
            for pushed in [next(live, None) for _ in range(3)]:
                if pushed is not None:  # stored, then broadcast
                    stored = pushed
                    sync.message(pushed, pushed)
            assert len(sync._held) <= MAX_HELD
        request, due = sync.synced(stored, now=0)
        released += due
    assert sync.state is SyncState.LIVE
    assert released == list(range(1, last + 1))
    assert pages > last // MAX_SYNC_LIMIT  # more pages than the backlog alone needed
    assert sync.message(last + 1, last + 1)  # live now: processed at once


def test_a_catch_up_reports_how_far_it_is_then_that_it_ended_once() -> None:
    sync: RoomSync[int] = RoomSync(ROOM, floor=100)
    sync.connect(partial=False, latest=100 + MAX_SYNC_LIMIT + 500)
    total = MAX_SYNC_LIMIT + 500
    assert sync.report() == (0, total, 100 + total)
    for seq in range(101, 101 + MAX_SYNC_LIMIT):
        sync.message(seq, seq)
    sync.synced(100 + total, now=0)
    assert sync.report() == (MAX_SYNC_LIMIT, total, 100 + total)
    sync.message(100 + total + 1, 0)  # a live message overtaking the rest: held
    for seq in range(101 + MAX_SYNC_LIMIT, 101 + total):
        sync.message(seq, seq)
    sync.synced(100 + total, now=0)
    assert sync.state is SyncState.LIVE
    assert sync.report() == (total, total, 100 + total)  # never past the total
    assert sync.report() is None  # reported once


def test_nothing_to_catch_up_reports_nothing_and_a_disconnect_forgets_it() -> None:
    sync: RoomSync[int] = RoomSync(ROOM, floor=7)
    sync.connect(partial=False, latest=7)
    assert sync.report() is None
    sync.disconnect()
    sync.connect(partial=True, latest=50)
    assert sync.report() == (0, 43, 50)  # waiting for its roster counts as under way
    sync.disconnect()
    assert sync.report() is None
