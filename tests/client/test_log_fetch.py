"""Fetching a room's membership log from a relay that lies about it: each page is
validated and stored before the next is asked for, so a relay that serves pages for
ever, or entries that never validate, gets ``LogRefused`` at the first page that does
not extend the log, and the join leaves nothing behind."""

import asyncio

import msgspec
import pytest
from e2echat_server import Relay

import e2echat
from e2echat.protocol import Error, ErrorCode, LogAppend, LogEntries, LogRequest, Ok, RelayFrame
from e2echat.protocol.constants import MAX_LOG_PAGE
from tests.client.conftest import EVENT_TIMEOUT, MakeClient, collect, validated
from tests.client.proxy import EvilProxy, evil_proxy

LONG_LOG = MAX_LOG_PAGE + 4
"""Entries of a log that takes two pages: a create and description changes."""


def fetches(proxy: EvilProxy) -> list[LogRequest]:
    """The ``log`` requests the client sent for its own join or change (not the
    engine's, whose ids start with "g")."""
    return [
        f
        for f in proxy.sent
        if isinstance(f, LogRequest) and f.id is not None and not f.id.startswith("g")
    ]


def is_fetch_reply(frame: RelayFrame) -> bool:
    return isinstance(frame, LogEntries) and frame.id is not None and not frame.id.startswith("g")


async def owner_only(owner: e2echat.Client) -> None:
    """The relay lists the owner alone in its room: the joiner left it again."""
    members = await owner.rooms[0].members()
    assert [m.name for m in members] == ["owner"]


async def long_log_room(make_client: MakeClient, name: str) -> tuple[e2echat.Client, str]:
    """An owner's secret room whose log takes two pages; the owner and its invite."""
    owner = await make_client("owner")
    room = await owner.create(name, secret=True)
    for n in range(LONG_LOG - 1):
        await room.set_description(f"take {n}")
    assert room.log_head[0] == LONG_LOG
    return owner, room.invite()


async def test_a_relay_serving_full_pages_for_ever_gets_refused_at_the_first(
    relay: Relay, make_client: MakeClient
) -> None:
    """Every page the relay serves is full, of copies of the create entry: before, the
    client asked for page after page and kept them all in memory, and the join never
    returned."""
    owner = await make_client("owner")
    invite = (await owner.create("endless", secret=True)).invite()
    async with evil_proxy(relay.url) as proxy:
        create: list[bytes] = []

        def endless(frame: RelayFrame) -> list[RelayFrame]:
            if not is_fetch_reply(frame):
                return [frame]
            assert isinstance(frame, LogEntries)
            create[:] = create or frame.entries[:1]
            return [msgspec.structs.replace(frame, entries=create * MAX_LOG_PAGE)]

        proxy.rewrite = endless
        bob = await make_client("bob", proxy.url)
        with pytest.raises(e2echat.LogRefused, match="does not validate"):
            async with asyncio.timeout(EVENT_TIMEOUT):
                await bob.join("endless", invite=invite)
        assert len(fetches(proxy)) == 1
        assert bob.rooms == []
        await owner_only(owner)


async def test_a_second_page_that_does_not_validate_ends_the_fetch_and_the_join(
    relay: Relay, make_client: MakeClient
) -> None:
    """The first page is the true one, the second is the first again: the room entered
    with the first page is left again, and nothing more is asked for."""
    owner, invite = await long_log_room(make_client, "second")
    async with evil_proxy(relay.url) as proxy:
        pages: list[LogEntries] = []

        def first_page_again(frame: RelayFrame) -> list[RelayFrame]:
            if not is_fetch_reply(frame):
                return [frame]
            assert isinstance(frame, LogEntries)
            pages.append(frame)
            return [msgspec.structs.replace(frame, entries=pages[0].entries)]

        proxy.rewrite = first_page_again
        bob = await make_client("bob", proxy.url)
        events = bob.events()
        with pytest.raises(e2echat.LogRefused):
            async with asyncio.timeout(EVENT_TIMEOUT):
                await bob.join("second", invite=invite)
        assert [f.after for f in fetches(proxy)] == [0, MAX_LOG_PAGE]
        assert bob.rooms == []
        await collect(events, 1, lambda e: isinstance(e, e2echat.RoomLeft))
        await owner_only(owner)


async def test_a_page_from_another_position_is_refused(
    relay: Relay, make_client: MakeClient
) -> None:
    owner, invite = await long_log_room(make_client, "shifted")
    async with evil_proxy(relay.url) as proxy:

        def shifted(frame: RelayFrame) -> list[RelayFrame]:
            if is_fetch_reply(frame) and frame.start > 0:  # type: ignore[union-attr]
                return [msgspec.structs.replace(frame, start=0)]
            return [frame]

        proxy.rewrite = shifted
        bob = await make_client("bob", proxy.url)
        with pytest.raises(e2echat.LogRefused, match="from entry 256 with entries from 0"):
            async with asyncio.timeout(EVENT_TIMEOUT):
                await bob.join("shifted", invite=invite)
        assert bob.rooms == []
        await owner_only(owner)


async def test_a_log_of_two_pages_is_joined(make_client: MakeClient) -> None:
    owner, invite = await long_log_room(make_client, "long")
    events = owner.events()
    bob = await make_client("bob")
    bob_room = await bob.join("long", invite=invite)
    await collect(events, 1, lambda event: validated(event, "bob"))
    assert bob_room.log_head == owner.rooms[0].log_head
    assert bob_room.log_head[0] == LONG_LOG + 1
    assert bob_room.description == f"take {LONG_LOG - 2}"


async def test_a_leave_whose_refetch_does_not_validate_still_leaves(
    relay: Relay, make_client: MakeClient
) -> None:
    """The relay appends bob's ``leave`` entry, hides it from him, answers
    ``log_conflict``, and serves the log he fetches then as a forgery (the create entry
    again): the leave goes on as for any refused entry, and bob is out of the room."""
    owner = await make_client("owner")
    room = await owner.create("exit", secret=True)
    events = owner.events()
    async with evil_proxy(relay.url) as proxy:
        seen: list[bytes] = []

        def record(frame: RelayFrame) -> list[RelayFrame]:
            if isinstance(frame, LogEntries):
                seen.extend(frame.entries)
            return [frame]

        proxy.rewrite = record
        bob = await make_client("bob", proxy.url)
        bob_room = await bob.join("exit", invite=room.invite())
        await collect(events, 1, lambda event: validated(event, "bob"))
        since = len(proxy.sent)

        def conflict_then_forge(frame: RelayFrame) -> list[RelayFrame]:
            appends = {f.id for f in proxy.sent[since:] if isinstance(f, LogAppend)}
            if isinstance(frame, Ok) and frame.id in appends:
                return [Error(code=ErrorCode.LOG_CONFLICT, message="taken", id=frame.id)]
            if isinstance(frame, LogEntries) and frame.id is None:
                return []  # the push of the leave, hidden
            asked = {f.id: f for f in fetches(proxy)[-1:] if proxy.sent.index(f) >= since}
            # a push (member_left, presence, a direct) has no id: it passes as it is
            if getattr(frame, "id", None) in asked and not isinstance(frame, Ok):  # not_member
                after = asked[frame.id].after  # type: ignore[index]
                return [LogEntries(room=bob_room.id, start=after, entries=seen[:1], id=frame.id)]
            return [frame]

        proxy.rewrite = conflict_then_forge
        await owner.set_status("away")  # a push with no id, in the rewrite's window always
        async with asyncio.timeout(EVENT_TIMEOUT):
            await bob_room.leave()
        assert len(fetches(proxy)) == 2  # the join's, and the forged one after the leave
        assert bob.rooms == []
        await owner_only(owner)


async def test_a_refused_log_fetch_is_no_longer_on_its_way(
    relay: Relay, make_client: MakeClient
) -> None:
    """The relay refuses the log fetch of bob's connect and hides the entry carol's join
    adds: alice's next message, which names the longer log, must raise LogBehind (a
    refused fetch brings nothing), not be taken for news that fetch will bring."""
    alice = await make_client("alice")
    room = await alice.create("ops")
    alice_events = alice.events()
    async with evil_proxy(relay.url) as proxy:
        bob = await make_client("bob", proxy.url)
        await bob.join("ops")
        await collect(alice_events, 1, lambda e: validated(e, "bob"))
        await bob.close()

        def refuse_and_hide(frame: RelayFrame) -> list[RelayFrame]:
            if isinstance(frame, LogEntries) and frame.id is None:
                return []  # the push of carol's join
            if isinstance(frame, LogEntries) and (frame.id or "").startswith("g"):
                return [Error(code=ErrorCode.UNAVAILABLE, message="try later", id=frame.id)]
            return [frame]

        proxy.rewrite = refuse_and_hide
        events: list[e2echat.client.pubsub.Subscription[e2echat.Event]] = []
        bob = await make_client(
            "bob", proxy.url, before_connect=lambda c: events.append(c.events())
        )
        await collect(
            events[0], 1, lambda e: isinstance(e, e2echat.Notice) and "try later" in e.text
        )
        await (await make_client("carol")).join("ops")
        await collect(alice_events, 1, lambda e: validated(e, "carol"))
        await room.send("hello")
        (behind,) = await collect(events[0], 1, lambda e: isinstance(e, e2echat.LogBehind))
        assert isinstance(behind, e2echat.LogBehind)
        assert (behind.withheld, behind.member.name) == (False, "alice")
