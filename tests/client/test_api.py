"""The public API a bot or the TUI uses, end to end against a real relay."""

import asyncio
from pathlib import Path

import pytest

import e2echat
from tests.client.conftest import MakeClient, collect, validated


async def test_invite_room_members_presence_and_leave(make_client: MakeClient) -> None:
    alice = await make_client("alice")
    bob = await make_client("bob")
    room = await alice.create("hideout", secret=True, description="shh", listed=False)
    assert room.secret
    assert room.description == "shh"
    invite = room.invite()
    assert invite.startswith(alice.url.rstrip("/") + "/hideout#")
    with pytest.raises(e2echat.E2EChatError, match="not 'other'"):
        await bob.join("other", invite=invite)
    forged = invite[: invite.index("#") + 1] + "A" * 43
    with pytest.raises(e2echat.WrongPassphrase, match="invite"):
        await bob.join("hideout", invite=forged)
    alice_events = alice.events()
    bob_room = await bob.join("hideout", invite=invite)
    await collect(alice_events, 1, lambda e: validated(e, "bob"))
    assert [r.name for r in bob.rooms] == ["hideout"]
    assert bob.get_room("hideout") is bob_room
    assert "hideout" not in [s.name for s in await alice.list_rooms()]

    members = await room.members()
    assert {(m.name, m.is_me) for m in members} == {("alice", True), ("bob", False)}
    assert all(m.validated for m in members if not m.is_me)

    await bob.set_status("away", "lunch")
    (presence,) = await collect(alice_events, 1, lambda e: isinstance(e, e2echat.PresenceChanged))
    assert isinstance(presence, e2echat.PresenceChanged)
    assert (presence.member.name, presence.member.status) == ("bob", "away")
    assert presence.member.status_text == "lunch"
    with pytest.raises(e2echat.E2EChatError):
        await bob.set_status("sleeping")

    bob_events = bob.events()
    await bob_room.leave()
    (left,) = await collect(alice_events, 1, lambda e: isinstance(e, e2echat.MemberLeft))
    assert isinstance(left, e2echat.MemberLeft)
    assert left.member.name == "bob"
    own_leave, gone = await collect(bob_events, 2)
    assert isinstance(own_leave, e2echat.RoomChanged)
    assert own_leave.kind == "leave"
    assert isinstance(gone, e2echat.RoomLeft)
    assert bob.rooms == []
    assert not bob_room.joined
    with pytest.raises(e2echat.NotAMember):
        await bob_room.send("still here?")


async def test_listing_and_relay_errors(make_client: MakeClient) -> None:
    alice = await make_client("alice")
    await alice.create("public-square", description="all welcome")
    await alice.create("sealed", password="pw")
    summaries = {s.name: s for s in await alice.list_rooms()}
    assert summaries["public-square"] == e2echat.RoomSummary(
        "public-square", False, "all welcome", 1
    )
    assert summaries["sealed"].secret
    with pytest.raises(e2echat.RelayError) as taken:
        await alice.create("sealed")
    assert taken.value.code == "name_taken"
    assert "name_taken" in str(taken.value)
    bob = await make_client("bob")
    with pytest.raises(e2echat.SecretRequired):
        await bob.join("sealed")
    with pytest.raises(e2echat.E2EChatError):
        await bob.join("Not A Room Name")


async def test_handlers_and_own_messages(make_client: MakeClient) -> None:
    alice = await make_client("alice", include_own=True)
    bob = await make_client("bob")
    room = await alice.create("bots")
    await bob.join("bots")
    seen: asyncio.Queue[e2echat.Message] = asyncio.Queue()

    @bob.on_message
    async def echo(msg: e2echat.Message) -> None:
        await msg.room.send(f"echo: {msg.text}")

    @alice.on_message
    async def record(msg: e2echat.Message) -> None:
        await seen.put(msg)

    await room.send("ping")
    got = [await asyncio.wait_for(seen.get(), 10) for _ in range(2)]
    assert [(m.text, m.own) for m in got] == [("ping", True), ("echo: ping", False)]


async def test_safety_numbers_and_verification_by_key(make_client: MakeClient) -> None:
    alice = await make_client("alice")
    bob = await make_client("bob")
    room = await alice.create("trust")
    await bob.join("trust")
    (bob_member,) = [m for m in await room.members() if m.name == "bob"]
    number = alice.safety_number(bob_member)
    (alice_member,) = [m for m in await bob.get_room("trust").members() if m.name == "alice"]  # type: ignore[union-attr]
    assert number == bob.safety_number(alice_member)
    assert len(number.replace(" ", "").replace("\n", "")) == 60
    await alice.mark_verified(bob_member)
    assert [m.verified for m in room.member_list if m.name == "bob"] == [True]  # cached roster
    assert [m.verified for m in await room.members() if m.name == "bob"] == [True]

    # Another key comes as "bob": a new person, never a key change. The real bob stays
    # verified and keeps receiving; the newcomer gets what an open room gives anyone.
    impostor = await make_client("bob", identity=e2echat.Identity.generate())
    events = alice.events()
    await impostor.join("trust")
    await collect(events, 1, lambda e: isinstance(e, e2echat.MemberJoined))
    bobs = {m.key: m for m in await room.members() if m.name == "bob"}
    assert bobs[bob.key].verified
    assert not bobs[impostor.key].verified
    got_bob, got_impostor = bob.messages(), impostor.messages()
    await room.send("hello bobs")
    assert [m.text for m in await collect(got_bob, 1)] == ["hello bobs"]
    assert [m.text for m in await collect(got_impostor, 1)] == ["hello bobs"]
    await alice.unverify(bobs[bob.key])
    assert [m.verified for m in room.member_list if m.key == bob.key] == [False]


async def test_rename_reconnects_under_the_new_name(make_client: MakeClient) -> None:
    alice = await make_client("alice")
    bob = await make_client("bob")
    room = await alice.create("names")
    await bob.join("names")
    await bob.rename("robert")
    assert bob.name == "robert"
    assert bob.state == e2echat.ConnectionState.CONNECTED
    assert {m.name for m in await room.members()} == {"alice", "robert"}
    inbox = alice.messages()
    await bob.get_room("names").send("new name, same key")  # type: ignore[union-attr]
    (msg,) = await collect(inbox, 1)
    assert (msg.sender.name, msg.sender.key) == ("robert", bob.key)
    with pytest.raises(e2echat.E2EChatError):
        await bob.rename(" padded ")


async def test_a_second_client_on_the_same_store_is_refused(
    make_client: MakeClient, tmp_path: Path
) -> None:
    identity = e2echat.Identity.generate()
    first = await make_client("solo", identity=identity)
    second = e2echat.Client(
        first.url,
        identity=identity,
        name="solo",
        store=tmp_path / f"solo-{identity.public_key.hex()[:8]}.sqlite3",
    )
    with pytest.raises(e2echat.E2EChatError, match="in use by another"):
        await second.connect()
    assert first.state == e2echat.ConnectionState.CONNECTED


async def test_a_relay_limiting_new_identities_is_a_connect_error_not_an_auth_error(
    tmp_path: Path,
) -> None:
    """A refusal to take more new keys from this address is temporary: not 'bad identity'."""
    from e2echat_server import Relay
    from msgspec.structs import replace

    from tests.client.conftest import relay_config

    config = replace(relay_config(tmp_path), new_keys_burst=1, new_keys_per_ip=0.001)
    async with Relay(config) as relay:
        first = e2echat.Client(relay.url, identity=e2echat.Identity.generate(), name="one")
        async with first:
            pass
        second = e2echat.Client(relay.url, identity=e2echat.Identity.generate(), name="two")
        try:
            with pytest.raises(e2echat.ConnectError, match="new identities") as info:
                await second.connect()
        finally:
            await second.close()
        assert not isinstance(info.value, e2echat.AuthError)


async def test_a_status_text_set_before_we_came_is_known(
    make_client: MakeClient, tmp_path: Path
) -> None:
    """A roster entry carries no status text: the relay follows each roster with the
    texts of its members, so a member who joins, or connects, after a text was set
    knows it (before, it saw the status without its text until the next change)."""
    alice, bob = await make_client("alice"), await make_client("bob")
    await alice.create("lobby")
    await bob.join("lobby")
    identity, store = e2echat.Identity.generate(), tmp_path / "dave.sqlite3"
    async with e2echat.Client(alice.url, identity=identity, name="dave", store=store) as dave:
        await dave.join("lobby")
    alice_events = alice.events()
    await bob.set_status("away", "lunch")
    await collect(alice_events, 1, lambda e: isinstance(e, e2echat.PresenceChanged))
    carol = await make_client("carol")
    room = await carol.join("lobby")
    await room.members()  # a barrier: what the relay sent after the join is in by now
    assert [(m.status, m.status_text) for m in room.member_list if m.name == "bob"] == [
        ("away", "lunch")
    ]
    async with e2echat.Client(alice.url, identity=identity, name="dave", store=store) as dave:
        await dave.list_rooms()  # a barrier after the welcome and what follows it
        again = dave.get_room("lobby")
        assert again is not None
        assert [(m.status, m.status_text) for m in again.member_list if m.name == "bob"] == [
            ("away", "lunch")
        ]


async def test_presence_changes_come_as_the_guide_says(make_client: MakeClient) -> None:
    """docs/bots.md on PresenceChanged: none for our own set_status, one for a member's,
    and none for the texts the relay sends again after a join's or a members request's
    list when they did not change (it sent two here, ours and bob's, each time)."""
    alice, bob = await make_client("alice"), await make_client("bob")
    lobby = await alice.create("lobby")
    await bob.join("lobby")
    await bob.create("games")
    alice_events = alice.events()

    async def presences(count: int) -> list[tuple[str, bool, str, str | None]]:
        found = await collect(alice_events, count, lambda e: isinstance(e, e2echat.PresenceChanged))
        members = [e.member for e in found if isinstance(e, e2echat.PresenceChanged)]
        return sorted((m.name, m.is_me, m.status, m.status_text) for m in members)

    await alice.set_status("away", "lunch")
    await bob.set_status("busy", "on a call")
    assert await presences(1) == [("bob", False, "busy", "on a call")]  # none of ours first
    await alice.join("games")
    await lobby.members()
    await bob.set_status("online", "back")  # the barrier: the next one must be this
    assert await presences(1) == [("bob", False, "online", "back")]


async def test_a_member_who_joins_with_a_status_text_shows_it(make_client: MakeClient) -> None:
    alice, bob = await make_client("alice"), await make_client("bob")
    await alice.create("lobby")
    await bob.set_status("busy", "on a call")
    room = alice.get_room("lobby")
    assert room is not None
    alice_events = alice.events()
    await bob.join("lobby")
    await collect(alice_events, 1, lambda e: isinstance(e, e2echat.PresenceChanged))
    assert [(m.status, m.status_text) for m in room.member_list if m.name == "bob"] == [
        ("busy", "on a call")
    ]
