"""Direct conversations between library clients through a real relay, and what a
rewriting relay can (not) do to them (crypto.md section 14)."""

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest
from e2echat_server import Relay

import e2echat
from e2echat.client.backoff import Backoff
from e2echat.crypto.prekeys import new_prekey
from e2echat.protocol import (
    DirectDelivery as RelayDirect,
)
from e2echat.protocol import (
    DirectSend,
    LogEntries,
    MemberJoined,
    RelayFrame,
    RoomReply,
    RosterEntry,
    SignedPrekey,
)
from tests.client.conftest import FAST_POLICY, MakeClient, collect, relay_config
from tests.client.proxy import EvilProxy, evil_proxy


@pytest.fixture
async def proxy(relay: Relay) -> AsyncIterator[EvilProxy]:
    async with evil_proxy(relay.url) as running:
        yield running


async def lobby(
    make_client: MakeClient, *names: str, url: str | None = None
) -> list[e2echat.Client]:
    """Clients called ``names`` in one open room "lobby" (the first through ``url``)."""
    clients = [await make_client(n, url if i == 0 else None) for i, n in enumerate(names)]
    await clients[0].create("lobby")
    for client in clients[1:]:
        await client.join("lobby")
    await clients[0].get_room("lobby").members()  # type: ignore[union-attr]
    return clients


def member_of(client: e2echat.Client, name: str) -> e2echat.Member:
    room = client.get_room("lobby")
    assert room is not None
    (member,) = [m for m in room.member_list if m.name == name]
    return member


def started(event: e2echat.Event) -> bool:
    return isinstance(event, e2echat.DirectStarted)


async def test_a_direct_conversation_is_private_to_two_keys_both_ways(
    make_client: MakeClient,
) -> None:
    alice, bob, carol = await lobby(make_client, "alice", "bob", "carol")
    bob_events, bob_inbox, alice_inbox = bob.events(), bob.messages(), alice.messages()
    dm = await alice.direct(member_of(alice, "bob"))
    assert dm.peer == bob.key
    assert alice.directs == [dm]
    assert await alice.direct(bob.key) is dm  # the one we have
    (event,) = await collect(bob_events, 1, started)
    assert isinstance(event, e2echat.DirectStarted)
    assert event.peer.key == alice.key
    assert event.room.peer == alice.key
    assert event.room.id == dm.id
    assert bob.get_direct(alice.key) is event.room
    await dm.send("just us")
    (got,) = await collect(bob_inbox, 1)
    assert (got.text, got.sender.key, got.room.id) == ("just us", alice.key, dm.id)
    await (await bob.direct(alice.key)).send("indeed")
    (answer,) = await collect(alice_inbox, 1)
    assert (answer.text, answer.room.id) == ("indeed", dm.id)
    assert [m.text for m in await dm.history()] == ["just us", "indeed"]
    assert {m.key for m in await dm.members()} == {alice.key, bob.key}
    assert carol.directs == []


async def test_an_invitation_past_the_rooms_per_user_limit_waits_for_a_leave(
    make_client: MakeClient, tmp_path: Path
) -> None:
    """An invitee in as many rooms as the relay allows was refused the join and dropped
    the invitation for good; it now waits, says why, and is entered after a leave."""
    config = msgspec.structs.replace(relay_config(tmp_path / "few"), max_rooms_per_user=2)
    async with Relay(config) as relay:
        alice, bob = await make_client("alice", relay.url), await make_client("bob", relay.url)
        await alice.create("lobby")
        await bob.join("lobby")
        await alice.get_room("lobby").members()  # type: ignore[union-attr]
        await bob.create("mine")
        bob_events = bob.events()
        dm = await alice.direct(member_of(alice, "bob"))
        (notice,) = await collect(bob_events, 1, lambda e: isinstance(e, e2echat.Notice))
        assert isinstance(notice, e2echat.Notice)
        assert "waits" in notice.text
        assert "leave one" in notice.text
        assert bob.directs == []
        await bob.get_room("mine").leave()  # type: ignore[union-attr]
        (event,) = await collect(bob_events, 1, started)
        assert isinstance(event, e2echat.DirectStarted)
        assert event.room.id == dm.id
        await dm.send("made it")
        (got,) = await collect(bob.messages(), 1)
        assert got.text == "made it"


@pytest.mark.parametrize("hidden", ["first fetch", "until pushed late"])
async def test_an_invitee_that_enters_before_the_log_exists_joins_it_when_it_comes(
    make_client: MakeClient, proxy: EvilProxy, hidden: str
) -> None:
    # The invitation goes out before its room's create entry is appended (so a crash
    # cannot lose it), so bob can enter a room whose log is still empty. bob is behind
    # a relay that shows him an empty log, then (second case) delivers the create
    # entry only as a late push: either way bob must sign his join, or alice (whose
    # log lacks him) never shares with him and her message stays unreadable.
    bob, alice = await lobby(make_client, "bob", "alice", url=proxy.url)
    lobby_id = bob.get_room("lobby").id  # type: ignore[union-attr]
    bob_events, bob_inbox = bob.events(), bob.messages()
    kept: list[bytes] = []
    replies = 0
    hidden_both = asyncio.Event()  # both of bob's fetches answered, the entry kept

    def empty_log(frame: RelayFrame) -> list[RelayFrame]:
        nonlocal replies
        if not isinstance(frame, LogEntries) or frame.room == lobby_id:
            return [frame]
        if frame.id is not None:
            replies += 1
            if hidden == "first fetch" and replies > 1:
                return [frame]
        kept.extend(frame.entries)
        if replies >= 2 and kept:
            hidden_both.set()
        return [msgspec.structs.replace(frame, entries=[])] if frame.id is not None else []

    proxy.rewrite = empty_log
    dm = await alice.direct(bob.key)
    await collect(bob_events, 1, started)
    await dm.send("before bob's join")
    if hidden == "until pushed late":
        await asyncio.wait_for(hidden_both.wait(), 10)
        proxy.rewrite = lambda frame: [frame]
        await proxy.inject(LogEntries(room=dm.id, start=0, entries=kept[:1]))
    (got,) = await collect(bob_inbox, 1)
    assert (got.text, got.room.id) == ("before bob's join", dm.id)
    joins = [c for c in await dm.changes() if c.kind == "join"]
    assert [c.author.key for c in joins] == [bob.key]


async def test_a_peer_offline_finds_the_conversation_and_its_messages_later(
    make_client: MakeClient,
) -> None:
    alice, bob = await lobby(make_client, "alice", "bob")
    bob_identity_key = bob.key
    await bob.close()
    dm = await alice.direct(bob_identity_key)
    await dm.send("while you were out")
    await dm.send("and again")
    # the same identity and store come back, listening from before it connects
    back = e2echat.Client(
        bob.urls,
        identity=bob._identity,
        store=bob._store_path,
        policy=FAST_POLICY,
        backoff=Backoff(initial=0.05, maximum=0.5),
    )
    events, inbox = back.events(), back.messages()
    async with back:
        (event,) = await collect(events, 1, started)
        assert isinstance(event, e2echat.DirectStarted)
        assert event.room.id == dm.id
        assert event.peer.key == alice.key
        texts = [m.text for m in await collect(inbox, 2)]
        assert texts == ["while you were out", "and again"]


async def test_a_file_goes_to_a_person(make_client: MakeClient, tmp_path: Path) -> None:
    alice, bob = await lobby(make_client, "alice", "bob")
    bob_events, bob_inbox = bob.events(), bob.messages()
    dm = await alice.direct(bob.key)
    await collect(bob_events, 1, started)
    source = tmp_path / "notes.txt"
    source.write_bytes(b"for bob only\n" * 1000)
    await dm.send_file(source, caption="the notes")
    (got,) = await collect(bob_inbox, 1)
    assert got.file is not None
    assert got.file.name == "notes.txt"
    saved = await got.download(tmp_path / "bob-downloads")
    assert saved.read_bytes() == source.read_bytes()


async def test_bad_targets_are_refused_and_change_nothing(make_client: MakeClient) -> None:
    (alice,) = await lobby(make_client, "alice")
    with pytest.raises(e2echat.InvalidInput):
        await alice.direct(alice.key)
    with pytest.raises(e2echat.InvalidInput):
        await alice.direct(b"short")
    with pytest.raises(e2echat.NotAMember):
        await alice.direct(e2echat.Identity.generate().public_key)
    assert alice.directs == []
    assert [room.name for room in alice.rooms] == ["lobby"]


def namesake(name: str) -> tuple[e2echat.Identity, RosterEntry]:
    """A stranger's key under ``name``, as a relay would announce it."""
    stranger = e2echat.Identity.generate()
    prekey = new_prekey(stranger, int(time.time() * 1000), set()).signed
    member = RosterEntry(
        key=stranger.public_key,
        name=name,
        status="online",
        prekey=SignedPrekey(id=prekey.id, key=prekey.key, sig=prekey.sig),
        joined=int(time.time() * 1000),
    )
    return stranger, member


async def test_a_relay_cannot_add_a_third_member_to_a_direct_conversation(
    make_client: MakeClient, proxy: EvilProxy
) -> None:
    # alice is behind the evil relay: it announces a namesake of bob in their DM.
    alice, bob = await lobby(make_client, "alice", "bob", url=proxy.url)
    bob_events, bob_inbox, alice_events = bob.events(), bob.messages(), alice.events()
    dm = await alice.direct(bob.key)
    await collect(bob_events, 1, started)
    stranger, fake = namesake("bob")
    await proxy.inject(MemberJoined(room=dm.id, member=fake))
    (notice,) = await collect(
        alice_events, 1, lambda e: isinstance(e, e2echat.Notice) and "of two" in e.text
    )
    assert isinstance(notice, e2echat.Notice)
    assert "direct conversation of two" in notice.text
    await dm.send("for bob only")
    await collect(bob_inbox, 1)
    to_stranger = [
        f for f in proxy.sent if isinstance(f, DirectSend) and f.to == stranger.public_key
    ]
    assert to_stranger == []
    assert {m.key for m in dm.member_list} == {alice.key, bob.key}
    assert {m.key for m in await dm.members()} == {alice.key, bob.key}


async def test_a_relay_cannot_hand_an_invitation_to_a_namesake(
    make_client: MakeClient, proxy: EvilProxy, relay: Relay
) -> None:
    # alice is behind one evil relay connection, carol (who calls herself bob) behind
    # another: the relay gives carol a copy of alice's invitation to bob.
    alice, bob = await lobby(make_client, "alice", "bob", url=proxy.url)
    async with evil_proxy(relay.url) as carol_proxy:
        carol = await make_client("bob", carol_proxy.url, identity=e2echat.Identity.generate())
        await carol.join("lobby")
        carol_events, bob_events = carol.events(), bob.events()
        before = len(proxy.sent)
        dm = await alice.direct(bob.key)
        await collect(bob_events, 1, started)
        # the invitation is alice's first direct to bob; her key share follows his join
        invite = next(
            f for f in proxy.sent[before:] if isinstance(f, DirectSend) and f.to == bob.key
        )
        for sender in (alice.key, carol.key):
            await carol_proxy.inject(
                RelayDirect(sender=sender, seq=1, ts=int(time.time() * 1000), body=invite.body)
            )
        rejected = await collect(carol_events, 2, lambda e: isinstance(e, e2echat.Notice))
        assert all("rejected" in e.text for e in rejected if isinstance(e, e2echat.Notice))
        await carol.get_room("lobby").members()  # type: ignore[union-attr]  # barrier
        assert carol.directs == []
        assert dm.id not in {room.id for room in carol.rooms}


async def test_a_relay_cannot_redirect_an_invitee_to_another_room(
    make_client: MakeClient, proxy: EvilProxy
) -> None:
    # bob is behind the evil relay: it answers his join of the DM with another room.
    bob, alice = await lobby(make_client, "bob", "alice", url=proxy.url)
    bob_events = bob.events()

    def elsewhere(frame: RelayFrame) -> list[RelayFrame]:
        if isinstance(frame, RoomReply) and frame.room.name.startswith("dm-"):
            other = msgspec.structs.replace(frame.room, id=bytes(16))
            return [msgspec.structs.replace(frame, room=other)]
        return [frame]

    proxy.rewrite = elsewhere
    dm = await alice.direct(bob.key)
    (notice,) = await collect(bob_events, 1, lambda e: isinstance(e, e2echat.Notice))
    assert isinstance(notice, e2echat.Notice)
    assert "another room than the one invited to" in notice.text
    assert bob.directs == []
    assert dm.id not in {room.id for room in bob.rooms}
