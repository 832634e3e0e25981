"""Membership statements that race for one log position: many members joining a secret
room at once all get in, and a relay that only claims a conflict cannot keep a client
signing for ever."""

import asyncio

import pytest
from e2echat_server import Relay

import e2echat
from e2echat.client import client as client_module
from e2echat.client.contention import LOG_ATTEMPTS
from e2echat.client.engine import LOG_JOIN_ID
from e2echat.protocol import Error, ErrorCode, LogAppend, LogEntries, Ok, RelayFrame
from e2echat.protocol.roomlog import parse_entry
from tests.client.conftest import EVENT_TIMEOUT, MakeClient, collect, validated
from tests.client.proxy import EvilProxy, Rewrite, evil_proxy

BURST = 12
"""Joiners at once: with three tries each, most of them used to fail ``log_conflict``."""


async def test_members_joining_at_once_all_get_in(make_client: MakeClient) -> None:
    owner = await make_client("owner")
    room = await owner.create("crowd", secret=True)
    invite = room.invite()
    names = [f"j{i:02d}" for i in range(BURST)]
    joiners = [await make_client(name) for name in names]
    events = owner.events()
    joined = await asyncio.gather(*(joiner.join("crowd", invite=invite) for joiner in joiners))
    await collect(events, BURST, lambda event: any(validated(event, n) for n in names))
    assert {m.name for m in room.member_list} == {"owner", *names}
    assert all(len(joiner_room.member_list) >= 2 for joiner_room in joined)
    assert room.log_head[0] == BURST + 1  # one create, one join each: no position twice


async def test_a_relay_that_claims_conflicts_and_hides_the_winner_ends_the_retries(
    relay: Relay, make_client: MakeClient
) -> None:
    owner = await make_client("owner")
    invite = (await owner.create("hidden", secret=True)).invite()
    async with evil_proxy(relay.url) as proxy:

        def hide(frame: RelayFrame) -> list[RelayFrame]:
            if not any(isinstance(sent, LogAppend) for sent in proxy.sent):
                return [frame]  # the join itself and the log fetched for it pass
            if isinstance(frame, Ok) and frame.id is not None:
                return [Error(code=ErrorCode.LOG_CONFLICT, message="taken", id=frame.id)]
            if isinstance(frame, LogEntries):
                return [LogEntries(room=frame.room, start=frame.start, entries=[], id=frame.id)]
            return [frame]

        proxy.rewrite = hide
        bob = await make_client("bob", proxy.url)
        with pytest.raises(e2echat.RelayError, match="kept changing") as caught:
            await bob.join("hidden", invite=invite)
        assert caught.value.code == ErrorCode.LOG_CONFLICT
        appends = [frame for frame in proxy.sent if isinstance(frame, LogAppend)]
        assert len(appends) == LOG_ATTEMPTS


def conflict_for_our_appends(proxy: EvilProxy) -> Rewrite:
    """A relay that appends every statement of ours, pushes it to us, and then answers
    ``log_conflict`` as if another entry had taken its position (or a reply that says
    ``ok`` lost on the way and its request answered again)."""

    def rewrite(frame: RelayFrame) -> list[RelayFrame]:
        appends = {sent.id for sent in proxy.sent if isinstance(sent, LogAppend)}
        if isinstance(frame, Ok) and frame.id in appends:
            return [Error(code=ErrorCode.LOG_CONFLICT, message="taken", id=frame.id)]
        return [frame]

    return rewrite


async def test_a_join_the_relay_appended_but_called_a_conflict_is_not_signed_again(
    relay: Relay, make_client: MakeClient
) -> None:
    owner = await make_client("owner")
    room = await owner.create("told", secret=True)
    events = owner.events()
    async with evil_proxy(relay.url) as proxy:
        proxy.rewrite = conflict_for_our_appends(proxy)
        bob = await make_client("bob", proxy.url)
        bob_room = await bob.join("told", invite=room.invite())
        await collect(events, 1, lambda event: validated(event, "bob"))
        assert len([frame for frame in proxy.sent if isinstance(frame, LogAppend)]) == 1
        assert [change.kind for change in await bob_room.changes()] == ["create", "join"]
        assert room.log_head[0] == bob_room.log_head[0] == 2


async def test_a_rotation_the_relay_appended_but_called_a_conflict_is_made_once_and_shared(
    relay: Relay, make_client: MakeClient
) -> None:
    """Before, each rotation appended this way counted as another member's entry: the
    owner signed a new one after it, for as long as the relay went on."""
    async with evil_proxy(relay.url) as proxy:
        room, bob, bob_room = await owner_and_bob(make_client, proxy, "spun")
        proxy.rewrite = conflict_for_our_appends(proxy)
        before = len(proxy.sent)
        async with asyncio.timeout(EVENT_TIMEOUT):
            await room.rotate_secret()
        rotations = [f for f in proxy.sent[before:] if isinstance(f, LogAppend)]
        assert len(rotations) == 1
        assert room.epoch == 1
        inbox = bob.messages()  # bob has the new secret: what is sent now, he reads
        await room.send("after the rotation")
        assert [m.text for m in await collect(inbox, 1)] == ["after the rotation"]
        assert bob_room.epoch == 1


async def owner_and_bob(
    make_client: MakeClient, proxy: EvilProxy, name: str
) -> tuple[e2echat.Room, e2echat.Client, e2echat.Room]:
    """An owner behind ``proxy`` creates secret room ``name``; bob joins it and the
    owner has validated him: the owner's room, bob and his room."""
    owner = await make_client("owner", proxy.url)
    room = await owner.create(name, secret=True)
    bob = await make_client("bob")
    events = owner.events()
    bob_room = await bob.join(name, invite=room.invite())
    await collect(events, 1, lambda event: validated(event, "bob"))
    return room, bob, bob_room


def conflict_once_then_reveal(proxy: EvilProxy) -> Rewrite:
    """A relay that appends our first statement, hides it from us (its push, and the log
    we fetch after) and answers ``log_conflict``; from then on it tells the truth: our
    next statement, signed for the same position, loses it to the first."""
    since = len(proxy.sent)
    hiding = True

    def rewrite(frame: RelayFrame) -> list[RelayFrame]:
        nonlocal hiding
        appends = {sent.id for sent in proxy.sent[since:] if isinstance(sent, LogAppend)}
        if not hiding or not appends:
            return [frame]
        if isinstance(frame, Ok) and frame.id in appends:
            return [Error(code=ErrorCode.LOG_CONFLICT, message="taken", id=frame.id)]
        if isinstance(frame, LogEntries):
            hiding = frame.id is None  # our fetch's reply is the last one hidden
            return [LogEntries(room=frame.room, start=frame.start, entries=[], id=frame.id)]
        return [frame]

    return rewrite


async def test_a_rotation_appended_on_an_earlier_try_stands_and_no_other_is_signed(
    relay: Relay, make_client: MakeClient
) -> None:
    """The relay's first ``log_conflict`` was a lie and the second the truth: the
    rotation it appended is ours, and its secret is the one shared."""
    async with evil_proxy(relay.url) as proxy:
        room, bob, bob_room = await owner_and_bob(make_client, proxy, "twice")
        before = len(proxy.sent)
        proxy.rewrite = conflict_once_then_reveal(proxy)
        async with asyncio.timeout(EVENT_TIMEOUT):
            await room.rotate_secret()
        rotations = [f for f in proxy.sent[before:] if isinstance(f, LogAppend)]
        assert len(rotations) == 2  # the first, and the second that lost to it
        assert room.epoch == 1
        assert [c.kind for c in await room.changes()] == ["create", "join", "rotate"]
        inbox = bob.messages()  # bob has the new secret: what is sent now, he reads
        await room.send("one rotation")
        assert [m.text for m in await collect(inbox, 1)] == ["one rotation"]
        assert bob_room.epoch == 1


class HeldWait:
    """``asyncio`` for the client module, but its wait before signing again lasts until
    the test lets it go (what the relay does meanwhile is then up to the test)."""

    def __init__(self) -> None:
        self.waiting = asyncio.Event()
        self.go = asyncio.Event()

    def __getattr__(self, name: str) -> object:
        return getattr(asyncio, name)

    async def sleep(self, _delay: float) -> None:
        self.waiting.set()
        await self.go.wait()


async def test_a_rotation_pushed_while_the_client_waits_to_sign_again_stands(
    relay: Relay, make_client: MakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The relay appends the rotation, hides it and answers ``log_conflict``, then
    pushes it while the owner waits: before, the owner signed a second one after it."""
    async with evil_proxy(relay.url) as proxy:
        owner = await make_client("owner", proxy.url)
        room = await owner.create("late", secret=True)
        bob = await make_client("bob")
        events = owner.events()
        await bob.join("late", invite=room.invite())
        await collect(events, 1, lambda event: validated(event, "bob"))
        since = len(proxy.sent)
        held: list[LogEntries] = []

        def hide(frame: RelayFrame) -> list[RelayFrame]:
            appends = {sent.id for sent in proxy.sent[since:] if isinstance(sent, LogAppend)}
            if isinstance(frame, Ok) and frame.id in appends:
                return [Error(code=ErrorCode.LOG_CONFLICT, message="taken", id=frame.id)]
            if isinstance(frame, LogEntries) and frame.entries and appends:
                held.append(frame)
                return [LogEntries(room=frame.room, start=frame.start, entries=[], id=frame.id)]
            return [frame]

        proxy.rewrite = hide
        wait = HeldWait()
        monkeypatch.setattr(client_module, "asyncio", wait)
        rotating = asyncio.ensure_future(room.rotate_secret())
        async with asyncio.timeout(EVENT_TIMEOUT):
            await wait.waiting.wait()
        await proxy.inject(held[0])  # the push of the rotation, late
        await collect(events, 1, lambda event: isinstance(event, e2echat.RoomChanged))
        wait.go.set()
        async with asyncio.timeout(EVENT_TIMEOUT):
            await rotating
        assert len([f for f in proxy.sent[since:] if isinstance(f, LogAppend)]) == 1
        assert room.epoch == 1


async def test_a_join_made_by_the_reconnect_while_the_client_waits_is_the_join(
    relay: Relay, make_client: MakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """bob's join loses its position (the relay hid an entry from him), and while he
    waits to sign again the connection drops: the client's own rejoin after the
    reconnect gets him in. The join call then returns; before, it raised
    ``NotAllowed`` ("already a member") for a join that had been made."""
    owner = await make_client("owner")
    room = await owner.create("blip", secret=True)
    await room.set_description("taken before bob comes")
    async with evil_proxy(relay.url) as proxy:
        revealed = False

        def hide_the_description(frame: RelayFrame) -> list[RelayFrame]:
            if revealed or not isinstance(frame, LogEntries) or frame.start > 0:
                return [frame]
            return [LogEntries(room=frame.room, start=0, entries=frame.entries[:1], id=frame.id)]

        proxy.rewrite = hide_the_description
        bob = await make_client("bob", proxy.url)
        events = bob.events()
        wait = HeldWait()
        monkeypatch.setattr(client_module, "asyncio", wait)
        joining = asyncio.ensure_future(bob.join("blip", invite=room.invite()))
        async with asyncio.timeout(EVENT_TIMEOUT):
            await wait.waiting.wait()
        revealed = True
        await proxy.close_all()
        await collect(
            events,
            1,
            lambda e: isinstance(e, e2echat.RoomChanged) and e.kind == "join" and e.author.is_me,
        )
        wait.go.set()
        async with asyncio.timeout(EVENT_TIMEOUT):
            bob_room = await joining
        assert [c.kind for c in await bob_room.changes()] == ["create", "describe", "join"]


async def test_a_join_that_loses_to_a_rotation_leaves_nothing_behind(
    relay: Relay, make_client: MakeClient
) -> None:
    """bob joins with the invite of epoch 0, and the owner rotates the secret between
    bob's log fetch and his ``join`` entry: his entry loses the position, and with the
    old secret he cannot sign for the new epoch. The join raises ``NotAllowed`` and
    nothing of the room remains: before, it stayed entered on bob's side (listed in
    ``bob.rooms``, kept in his store) though the log never listed him."""
    owner = await make_client("owner")
    room = await owner.create("turned", secret=True)
    invite = room.invite()
    async with evil_proxy(relay.url) as proxy:
        held: list[LogEntries] = []
        fetched = asyncio.Event()

        def hold_the_first_fetch(frame: RelayFrame) -> list[RelayFrame]:
            if isinstance(frame, LogEntries) and frame.id is not None and not held:
                held.append(frame)
                fetched.set()
                return []
            return [frame]

        proxy.rewrite = hold_the_first_fetch
        bob = await make_client("bob", proxy.url)
        events = bob.events()
        joining = asyncio.ensure_future(bob.join("turned", invite=invite))
        async with asyncio.timeout(EVENT_TIMEOUT):
            await fetched.wait()
        await room.rotate_secret()
        await proxy.inject(held[0])  # the log as it was before the rotation
        with pytest.raises(e2echat.NotAllowed):
            async with asyncio.timeout(EVENT_TIMEOUT):
                await joining
        assert bob.rooms == []
        assert bob.get_room("turned") is None
        left = await collect(events, 1, lambda e: isinstance(e, e2echat.RoomLeft))
        assert left[0].room.name == "turned"
        members = await owner.rooms[0].members()  # the relay no longer lists bob either
        assert [m.name for m in members] == ["owner"]


async def test_the_rejoin_after_a_reconnect_gives_up_on_conflicts_the_relay_only_claims(
    relay: Relay, make_client: MakeClient
) -> None:
    """The relay appends bob's join, drops the connection instead of its ``ok`` and from
    then on hides the entry from him: after the reconnect bob's engine signs the join
    again and the relay answers ``log_conflict`` each time, with nothing new in the log
    it serves. Before, the engine fetched and signed again on each answer, for as long
    as the relay went on; now it waits and gives up after ``LOG_ATTEMPTS``, saying so."""
    owner = await make_client("owner")
    invite = (await owner.create("claimed", secret=True)).invite()
    bob_identity = e2echat.Identity.generate()
    async with evil_proxy(relay.url) as proxy:

        def hide_bobs_join(frame: RelayFrame) -> list[RelayFrame]:
            if isinstance(frame, LogEntries):
                kept = [
                    w for w in frame.entries if parse_entry(w).author != bob_identity.public_key
                ]
                return [LogEntries(room=frame.room, start=frame.start, entries=kept, id=frame.id)]
            first_append = next(f for f in proxy.sent if isinstance(f, LogAppend))
            if isinstance(frame, Ok) and frame.id == first_append.id and proxy.accepted == 1:
                asyncio.get_running_loop().create_task(proxy.close_all())
                return []
            return [frame]

        def rewrite(frame: RelayFrame) -> list[RelayFrame]:
            if not any(isinstance(f, LogAppend) for f in proxy.sent):
                return [frame]  # the join itself and the log fetched for it pass
            return hide_bobs_join(frame)

        proxy.rewrite = rewrite
        bob = await make_client("bob", proxy.url, identity=bob_identity)
        events = bob.events()
        with pytest.raises(e2echat.ConnectError):
            await bob.join("claimed", invite=invite)
        notices = await collect(
            events, 1, lambda e: isinstance(e, e2echat.Notice) and "kept answering" in e.text
        )
        assert "claimed" in notices[0].text
        await bob.list_rooms()  # a barrier: whatever the engine sent before has come
        rejoins = [
            f
            for f in proxy.sent
            if isinstance(f, LogAppend) and (f.id or "").startswith(LOG_JOIN_ID)
        ]
        assert len(rejoins) == LOG_ATTEMPTS


async def test_a_leave_the_relay_appended_but_called_a_conflict_leaves(
    relay: Relay, make_client: MakeClient
) -> None:
    """The relay appends bob's ``leave`` and pushes it (bob's log then removes him),
    then answers ``log_conflict``: before, ``leave()`` raised ``NotAMember`` for the
    leave it had made."""
    owner = await make_client("owner")
    room = await owner.create("gone", secret=True)
    events = owner.events()
    async with evil_proxy(relay.url) as proxy:
        bob = await make_client("bob", proxy.url)
        bob_room = await bob.join("gone", invite=room.invite())
        await collect(events, 1, lambda event: validated(event, "bob"))
        proxy.rewrite = conflict_for_our_appends(proxy)
        async with asyncio.timeout(EVENT_TIMEOUT):
            await bob_room.leave()
        assert bob.rooms == []
        left = await collect(events, 1, lambda e: isinstance(e, e2echat.RoomChanged))
        assert left[0].kind == "leave"
