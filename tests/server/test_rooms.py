"""Rooms over real sockets: create, join, leave, members, list, lookup, prekeys, presence."""

from collections.abc import Awaitable, Callable

import msgspec
from e2echat_server import Relay, RelayConfig

from e2echat.protocol import (
    ClientFrame,
    CreateRoom,
    ErrorCode,
    JoinRoom,
    LeaveRoom,
    ListRooms,
    Lookup,
    MemberJoined,
    MemberLeft,
    MembersList,
    MembersRequest,
    Ok,
    OpenAccess,
    PrekeyUpdate,
    Presence,
    RoomList,
    RoomReply,
    SecretAccess,
    SetStatus,
    SignedPrekey,
    SummaryReply,
)
from tests.server.wire import Identity, WireClient, login, verifier_for

Connect = Callable[[str], Awaitable[WireClient]]
TOKEN = b"k" * 32


def key_of(client: WireClient) -> bytes:
    assert client.identity is not None
    return client.identity.key


async def make_room(client: WireClient, name: str = "lobby", **kwargs: object) -> bytes:
    access = kwargs.pop("access", OpenAccess())
    reply = await client.request(CreateRoom(name=name, access=access, **kwargs), RoomReply)  # type: ignore[arg-type]
    return reply.room.id


async def test_create_join_members_and_leave(relay: Relay, connect: Connect) -> None:
    alice, bob = await connect("alice"), await connect("bob")
    room = await make_room(alice, description="general chat")
    joined = await bob.request(JoinRoom(name="lobby", id="j"), RoomReply)
    assert (joined.id, joined.room.description, joined.room.seq) == ("j", "general chat", 0)
    assert [m.name for m in joined.room.members] == ["alice", "bob"]
    event = await alice.next_of(MemberJoined)
    assert (event.room, event.member.name, event.member.status) == (room, "bob", "online")
    assert event.member.prekey == bob.identity.prekey()  # type: ignore[union-attr]
    members = await bob.request(MembersRequest(room=room, id="m"), MembersList)
    assert (members.id, {m.key for m in members.members}) == ("m", {key_of(alice), key_of(bob)})
    again = await bob.request(JoinRoom(name="lobby"), RoomReply)  # joining twice is harmless
    assert len(again.room.members) == 2
    assert (await bob.request(LeaveRoom(room=room, id="l"), Ok)).id == "l"
    left = await alice.next_of(MemberLeft)
    assert (left.room, left.key) == (room, key_of(bob))
    assert (await bob.error(MembersRequest(room=room))).code is ErrorCode.NOT_MEMBER


async def test_last_member_leaving_removes_the_room(relay: Relay, connect: Connect) -> None:
    alice = await connect("alice")
    room = await make_room(alice)
    await alice.request(LeaveRoom(room=room), Ok)
    assert (await alice.error(Lookup(name="lobby"))).code is ErrorCode.NO_SUCH_ROOM
    assert relay.metrics.count_rooms() == 0
    await make_room(alice)  # the name is free again


async def test_room_errors(relay: Relay, connect: Connect) -> None:
    alice, bob = await connect("alice"), await connect("bob")
    room = await make_room(alice, max_members=2)
    await make_room(alice, "den", access=SecretAccess(verifier=verifier_for(TOKEN)))
    cases: list[tuple[ClientFrame, ErrorCode]] = [
        (CreateRoom(name="lobby", access=OpenAccess()), ErrorCode.NAME_TAKEN),
        (JoinRoom(name="nowhere"), ErrorCode.NO_SUCH_ROOM),
        (JoinRoom(name="den"), ErrorCode.FORBIDDEN),
        (JoinRoom(name="den", token=b"x" * 32), ErrorCode.FORBIDDEN),
        (LeaveRoom(room=room), ErrorCode.NOT_MEMBER),
        (LeaveRoom(room=b"n" * 16), ErrorCode.NO_SUCH_ROOM),
        (MembersRequest(room=b"n" * 16), ErrorCode.NO_SUCH_ROOM),
        (Lookup(name="nowhere"), ErrorCode.NO_SUCH_ROOM),
    ]
    for frame, code in cases:
        refusal = await bob.error(frame)
        assert refusal.code is code, frame
        assert refusal.message
    await bob.request(JoinRoom(name="den", token=TOKEN), RoomReply)
    await bob.request(JoinRoom(name="lobby"), RoomReply)
    carol = await connect("carol")
    assert (await carol.error(JoinRoom(name="lobby"))).code is ErrorCode.ROOM_FULL


async def test_rooms_per_user_is_limited() -> None:
    async with Relay(RelayConfig(port=0, memory=True, max_rooms_per_user=1)) as relay:
        alice = await login(relay.url, Identity("alice"))
        await make_room(alice)
        refusal = await alice.error(CreateRoom(name="second", access=OpenAccess()))
        assert refusal.code is ErrorCode.QUOTA_EXCEEDED
        assert "leave one" in refusal.message
        bob = await login(relay.url, Identity("bob"))
        await make_room(bob, "second")
        assert (await alice.error(JoinRoom(name="second"))).code is ErrorCode.QUOTA_EXCEEDED


async def test_list_shows_listed_rooms_and_lookup_finds_any(relay: Relay, connect: Connect) -> None:
    alice, bob = await connect("alice"), await connect("bob")
    await make_room(alice, "public")
    salt = b"s" * 16
    await make_room(
        alice, "hidden", listed=False, access=SecretAccess(verifier=verifier_for(TOKEN), salt=salt)
    )
    listing = await bob.request(ListRooms(id="l"), RoomList)
    assert (listing.id, [r.name for r in listing.rooms]) == ("l", ["public"])
    assert listing.rooms[0].member_count == 1
    summary = (await bob.request(Lookup(name="hidden"), SummaryReply)).room
    assert (summary.access_kind, summary.salt, summary.listed) == ("secret", salt, False)


async def test_membership_survives_reconnect_and_presence_follows(relay: Relay) -> None:
    alice_id, bob_id = Identity("alice"), Identity("bob")
    alice, bob = await login(relay.url, alice_id), await login(relay.url, bob_id)
    room = await make_room(alice)
    await bob.request(JoinRoom(name="lobby"), RoomReply)
    await bob.close()
    offline = await alice.next_of(Presence)
    assert (offline.key, offline.status) == (bob_id.key, "offline")
    assert offline.last_seen is not None
    bob = await login(relay.url, bob_id)
    assert bob.welcome is not None
    assert [r.id for r in bob.welcome.rooms] == [room]
    online = await alice.next_of(Presence)
    assert (online.key, online.status, online.last_seen) == (bob_id.key, "online", None)
    await bob.request(SetStatus(status="away", text="lunch", id="s"), Ok)
    away = await alice.next_of(Presence)
    assert (away.status, away.text) == ("away", "lunch")
    members = await alice.request(MembersRequest(room=room), MembersList)
    assert {m.name: m.status for m in members.members} == {"alice": "online", "bob": "away"}


async def test_presence_reaches_only_those_sharing_a_room(relay: Relay, connect: Connect) -> None:
    alice, stranger = await connect("alice"), await connect("stranger")
    await alice.request(SetStatus(status="busy"), Ok)
    await stranger.quiet()


async def test_prekey_rotation(relay: Relay) -> None:
    identity = Identity("alice")
    alice, bob = await login(relay.url, identity), await login(relay.url, Identity("bob"))
    room = await make_room(alice)
    await bob.request(JoinRoom(name="lobby"), RoomReply)
    rotated = identity.prekey(prekey_id=2)
    assert (await alice.request(PrekeyUpdate(prekey=rotated, id="p"), Ok)).id == "p"
    members = await bob.request(MembersRequest(room=room), MembersList)
    assert {m.name: m.prekey.id for m in members.members}["alice"] == 2
    forged = SignedPrekey(id=3, key=rotated.key, sig=bytes(64))
    assert (await alice.error(PrekeyUpdate(prekey=forged))).code is ErrorCode.BAD_FRAME
    assert relay.directory.users[identity.key].prekey.id == 2


async def test_welcome_over_its_member_budget_sends_rooms_partial() -> None:
    """protocol.md section 4: members only while they fit the budget, then partial rooms
    with no members, whose `members` reply is complete."""
    budget = 700  # one room's two members (~250 bytes each) fit, two rooms' do not
    async with Relay(RelayConfig(port=0, memory=True, welcome_members=budget)) as relay:
        alice = await login(relay.url, Identity("alice"))
        bob = await login(relay.url, Identity("bob"))
        rooms = {await make_room(alice, name) for name in ("one", "two", "three")}
        for name in ("one", "two", "three"):
            await bob.request(JoinRoom(name=name), RoomReply)
        await bob.close()
        again = await login(relay.url, alice.identity)  # type: ignore[arg-type]
        assert again.welcome is not None
        listed = again.welcome.rooms
        assert {info.id for info in listed} == rooms
        full = [info for info in listed if not info.partial]
        partial = [info for info in listed if info.partial]
        assert (len(full), len(partial)) == (1, 2)
        assert {m.name for m in full[0].members} == {"alice", "bob"}
        assert sum(len(msgspec.json.encode(m)) + 1 for m in full[0].members) <= budget
        assert all(info.members == [] for info in partial)
        for info in partial:
            reply = await again.request(MembersRequest(room=info.id), MembersList)
            assert {m.name for m in reply.members} == {"alice", "bob"}


async def test_welcome_budget_zero_sends_every_room_partial() -> None:
    async with Relay(RelayConfig(port=0, memory=True, welcome_members=0)) as relay:
        alice = await login(relay.url, Identity("alice"))
        room = await make_room(alice)
        again = await login(relay.url, alice.identity)  # type: ignore[arg-type]
        assert again.welcome is not None
        [info] = again.welcome.rooms
        assert (info.id, info.partial, info.members, info.name) == (room, True, [], "lobby")
