"""Owners, admins, kick, ban and secret rotation through the library and a real relay."""

import asyncio
import functools
import time
from pathlib import Path

import msgspec
import pytest
from e2echat_server import Relay

import e2echat
from e2echat.client.backoff import Backoff
from e2echat.client.engine import ROOM_KEY_WAIT_MS
from e2echat.protocol import DirectDelivery, RelayFrame
from tests.client.conftest import (
    EVENT_TIMEOUT,
    FAST_POLICY,
    MakeClient,
    collect,
    relay_config,
    validated,
)
from tests.client.proxy import evil_proxy


def changed(event: e2echat.Event, kind: str) -> bool:
    return isinstance(event, e2echat.RoomChanged) and event.kind == kind


async def secret_room(
    make_client: MakeClient, *names: str
) -> tuple[dict[str, e2echat.Client], dict[str, e2echat.Room]]:
    """alice creates an invite room (she is its owner); the others join it in turn."""
    clients = {"alice": await make_client("alice")}
    rooms = {"alice": await clients["alice"].create("ops", secret=True)}
    invite = rooms["alice"].invite()
    for name in names:
        clients[name] = await make_client(name)
        earlier = {n: c.events() for n, c in clients.items() if n != name}
        rooms[name] = await clients[name].join("ops", invite=invite)
        for events in earlier.values():
            await collect(events, 1, functools.partial(validated, name=name))
    return clients, rooms


def member(room: e2echat.Room, name: str) -> e2echat.Member:
    return next(m for m in room.member_list if m.name == name)


async def test_the_creator_owns_the_room_and_joiners_are_members(
    make_client: MakeClient,
) -> None:
    clients, rooms = await secret_room(make_client, "bob")
    bob_room = rooms["bob"]
    assert bob_room.role(member(bob_room, "alice")) == "owner"
    assert bob_room.roles[clients["bob"].key] == "member"
    changes = await bob_room.changes()
    assert [(c.kind, c.author.name) for c in changes] == [("create", "alice"), ("join", "bob")]
    assert changes[0].text == "alice created the room"
    assert changes[0].room is bob_room


async def test_kick_rotates_and_the_kicked_member_reads_nothing_after(
    make_client: MakeClient,
) -> None:
    clients, rooms = await secret_room(make_client, "bob", "carol")
    old_invite = rooms["alice"].invite()
    bob_events, carol_events = clients["bob"].events(), clients["carol"].events()
    await rooms["alice"].kick(member(rooms["alice"], "carol"))
    kick = (await collect(bob_events, 1, lambda e: changed(e, "kick")))[0]
    assert kick.text == "alice kicked carol"
    assert kick.epoch == 1
    await collect(carol_events, 1, lambda e: isinstance(e, e2echat.RoomLeft))
    assert clients["carol"].get_room("ops") is None
    assert rooms["bob"].epoch == rooms["alice"].epoch == 1
    assert rooms["alice"].invite() != old_invite  # the secret rotated
    bob_inbox = clients["bob"].messages()
    await rooms["alice"].send("after the kick")
    assert [m.text for m in await collect(bob_inbox, 1)] == ["after the kick"]
    with pytest.raises(e2echat.WrongPassphrase):  # the old invite opens nothing
        await clients["carol"].join("ops", invite=old_invite)


async def test_a_member_without_the_role_gets_not_allowed_and_nothing_changes(
    make_client: MakeClient,
) -> None:
    _clients, rooms = await secret_room(make_client, "bob", "carol")
    bob_room = rooms["bob"]
    before = len(await bob_room.changes())
    with pytest.raises(e2echat.NotAllowed, match="admin"):
        await bob_room.kick(member(bob_room, "carol"))
    with pytest.raises(e2echat.NotAllowed):
        await bob_room.set_role(member(bob_room, "carol"), "admin")
    with pytest.raises(e2echat.NotAllowed):
        await bob_room.rotate_secret()
    with pytest.raises(e2echat.NotAllowed):
        await bob_room.set_description("mine now")
    with pytest.raises(e2echat.NotAllowed, match="only an admin or owner can change"):
        bob_room.check_secret_change()  # asked before an app asks for a new password
    rooms["alice"].check_secret_change()  # the owner may
    assert len(await bob_room.changes()) == before
    assert bob_room.epoch == 0


async def test_an_admin_kicks_and_bans_and_the_owner_unbans(make_client: MakeClient) -> None:
    clients, rooms = await secret_room(make_client, "bob", "carol")
    alice_room, bob_room = rooms["alice"], rooms["bob"]
    bob_events = clients["bob"].events()
    await alice_room.set_role(member(alice_room, "bob"), "admin")
    made = (await collect(bob_events, 1, lambda e: changed(e, "role")))[0]
    assert made.text == "alice made bob an admin"
    assert bob_room.role(member(bob_room, "bob")) == "admin"
    with pytest.raises(e2echat.NotAllowed):  # an admin cannot touch the owner
        await bob_room.kick(member(bob_room, "alice"))
    carol_key = clients["carol"].key
    alice_events = clients["alice"].events()
    await bob_room.ban(member(bob_room, "carol"))
    await collect(alice_events, 1, lambda e: changed(e, "ban"))
    assert carol_key not in alice_room.roles
    with pytest.raises(e2echat.Banned, match="banned from room 'ops'"):
        await clients["carol"].join("ops", invite=bob_room.invite())  # the ban's author's
    joins = [c.author for c in await alice_room.changes() if c.kind == "join"]
    carol = next(author for author in joins if author.key == carol_key)
    await alice_room.unban(carol)
    assert alice_room.roles[carol_key] == "member"
    await alice_room.set_description("ops, after the incident")
    await collect(bob_events, 1, lambda e: changed(e, "describe"))
    assert bob_room.description == "ops, after the incident"
    assert [c.kind for c in await bob_room.changes()][-4:] == ["role", "ban", "admit", "describe"]


async def test_a_banned_key_is_told_so_whatever_password_it_brings(
    make_client: MakeClient,
) -> None:
    """A ban is refused as a ban, not as a wrong password: with the room's password, a
    wrong one, or none (an open room, through ``room()``)."""
    alice, bob = await make_client("alice"), await make_client("bob")
    vault = await alice.create("vault", password="hunter2")
    lobby = await alice.create("lobby")
    alice_events = alice.events()
    await bob.join("vault", password="hunter2")
    await bob.join("lobby")
    await collect(alice_events, 2, lambda e: validated(e, "bob"))
    await vault.ban(member(vault, "bob"))
    await lobby.ban(member(lobby, "bob"))
    await vault.change_password("correct horse")  # the ban made the secret random
    for password in ("correct horse", "wrong"):
        with pytest.raises(e2echat.Banned, match="banned from room 'vault'") as refused:
            await bob.join("vault", password=password)
        assert refused.value.code == "forbidden"
    with pytest.raises(e2echat.Banned, match="banned from room 'lobby'"):
        await bob.room("lobby")
    carol = await make_client("carol")
    with pytest.raises(e2echat.WrongPassphrase):  # not banned: the password is wrong
        await carol.join("vault", password="hunter2")


async def test_a_full_secret_room_is_refused_as_full(
    make_client: MakeClient, tmp_path: Path
) -> None:
    config = msgspec.structs.replace(relay_config(tmp_path / "small"), max_members=2)
    async with Relay(config) as relay:
        alice = await make_client("alice", relay.url)
        ops = await alice.create("ops", secret=True)
        await alice.create("vault", password="hunter2")
        bob = await make_client("bob", relay.url)
        await bob.join("ops", invite=ops.invite())
        await bob.join("vault", password="hunter2")
        carol = await make_client("carol", relay.url)
        with pytest.raises(e2echat.RoomFull, match="Room 'ops' is full") as refused:
            await carol.join("ops", invite=ops.invite())
        assert refused.value.code == "room_full"
        with pytest.raises(e2echat.RoomFull, match="Room 'vault' is full"):
            await carol.join("vault", password="hunter2")
        with pytest.raises(e2echat.WrongPassphrase):  # a wrong secret is still that
            await carol.join("vault", password="wrong")


async def test_a_join_without_the_secret_says_which_secret_the_room_needs(
    make_client: MakeClient,
) -> None:
    """Not the relay's bare ``forbidden``: a password room asks for its password (a client
    can prompt and try again), an invite room for an invite; nothing is joined. (A
    password room after a kick: tests/client/test_after_a_kick.py.)"""
    alice, bob = await make_client("alice"), await make_client("bob")
    await alice.create("vault", password="hunter2")
    await alice.create("hideout", secret=True)
    with pytest.raises(e2echat.SecretRequired, match="needs its password") as refused:
        await bob.join("vault")
    assert refused.value.needs == "password"
    assert isinstance(refused.value, e2echat.WrongAccess)
    with pytest.raises(e2echat.SecretRequired, match="invite only") as refused:
        await bob.join("hideout")
    assert refused.value.needs == "invite"
    assert bob.rooms == []


async def test_a_join_past_the_relays_rooms_per_user_says_so_not_wrong_password(
    make_client: MakeClient, tmp_path: Path
) -> None:
    """The relay's limit of rooms per user answered ``forbidden``, which a password or
    invite join read as a wrong secret: now it is ``TooManyRooms``, and nothing joined."""
    config = msgspec.structs.replace(relay_config(tmp_path / "few"), max_rooms_per_user=1)
    async with Relay(config) as relay:
        alice = await make_client("alice", relay.url)
        ops = await alice.create("ops", secret=True)
        bob = await make_client("bob", relay.url)
        await bob.create("mine")
        alice_second = await make_client("alice2", relay.url)
        await alice_second.create("vault", password="hunter2")
        with pytest.raises(e2echat.TooManyRooms, match="leave one") as refused:
            await bob.join("vault", password="hunter2")
        assert refused.value.code == "quota_exceeded"
        with pytest.raises(e2echat.TooManyRooms):
            await bob.join("ops", invite=ops.invite())
        with pytest.raises(e2echat.TooManyRooms):
            await bob.create("another")
        carol = await make_client("carol", relay.url)
        await carol.create("hall")  # an open room: this read as "needs a password"
        with pytest.raises(e2echat.TooManyRooms):
            await bob.room("hall")
        assert [room.name for room in bob.rooms] == ["mine"]
        await bob.get_room("mine").leave()  # type: ignore[union-attr]
        assert (await bob.join("vault", password="hunter2")).name == "vault"


async def test_a_description_is_held_to_the_frame_and_the_log_limits_alike(
    make_client: MakeClient,
) -> None:
    """At creation and later, a description has at most 200 characters (create_room)
    and 512 bytes of UTF-8 (the log's entry): 200 characters of 3 bytes each passed
    the first and broke the second after the relay had made the room; 300 ASCII
    characters passed set_description, which no creation would take."""
    alice, bob = await make_client("alice"), await make_client("bob")
    wide = "中" * 200  # 200 characters, 600 bytes
    with pytest.raises(e2echat.InvalidRoomOption, match=r"at most 512 bytes of UTF-8.*has 600"):
        await alice.create("wide", description=wide)
    with pytest.raises(e2echat.NoSuchRoom):  # nothing reached the relay
        await bob.join("wide")
    room = await alice.create("wide", description="中" * 170)  # 510 bytes: both take it
    assert room.description == "中" * 170
    for refused, limit in (
        ("x" * 201, "200 characters"),
        (wide, "512 bytes"),
        ("a\nb", "non-printable"),
    ):
        with pytest.raises(e2echat.InvalidRoomOption, match=limit):
            await room.set_description(refused)
    assert [c.kind for c in await room.changes()] == ["create"]  # nothing was signed
    alice_events = alice.events()
    await room.set_description("x" * 200)
    bob_room = await bob.join("wide")
    await collect(alice_events, 1, lambda e: validated(e, "bob"))
    assert bob_room.description == "x" * 200
    again = await bob.create("again", description=bob_room.description)
    assert again.description == "x" * 200


async def test_a_password_change_keeps_members_reading(make_client: MakeClient) -> None:
    alice = await make_client("alice")
    bob = await make_client("bob")
    room = await alice.create("vault", password="hunter2")
    alice_events = alice.events()
    bob_room = await bob.join("vault", password="hunter2")
    await collect(alice_events, 1, lambda e: validated(e, "bob"))
    bob_events = bob.events()
    await room.change_password("correct horse")
    await collect(bob_events, 1, lambda e: isinstance(e, e2echat.RoomChanged))
    assert bob_room.epoch == 1
    carol = await make_client("carol")
    with pytest.raises(e2echat.WrongPassphrase):
        await carol.join("vault", password="hunter2")
    carol_room = await carol.join("vault", password="correct horse")
    await collect(alice_events, 1, lambda e: validated(e, "carol"))
    inboxes = [bob.messages(), carol.messages()]
    await room.send("new password, same room")
    for inbox in inboxes:
        assert [m.text for m in await collect(inbox, 1)] == ["new password, same room"]
    assert carol_room.epoch == 1
    with pytest.raises(e2echat.WrongAccess):
        await room.rotate_secret()


async def test_a_member_offline_during_a_rotation_gets_the_new_secret_back(
    make_client: MakeClient,
) -> None:
    clients, rooms = await secret_room(make_client, "bob", "carol")
    bob = clients["bob"]
    await bob.close()
    await rooms["alice"].kick(member(rooms["alice"], "carol"))
    bob = await make_client("bob")  # same key and store: back after the kick
    bob_room = bob.get_room("ops")
    assert bob_room is not None
    inbox = bob.messages()
    events = bob.events()
    await collect(events, 1, lambda e: changed(e, "kick"))
    await rooms["alice"].send("welcome back")
    assert [m.text for m in await collect(inbox, 1)] == ["welcome back"]
    assert bob_room.epoch == 1


async def test_a_lost_room_key_is_asked_for_and_answered(
    make_client: MakeClient, relay: Relay, tmp_path: Path
) -> None:
    """bob's copy of the new secret is lost on the way (a relay dropping it): he asks
    the author of the rotation for it and reads on. Until it comes his ``invite()``
    refuses (it would be the old, dead invite); ``SecretArrived`` says it has."""
    clients, rooms = await secret_room(make_client, "carol")
    later = [0]
    async with evil_proxy(relay.url) as proxy:
        bob = e2echat.Client(
            proxy.url,
            identity=e2echat.Identity.generate(),
            name="bob",
            store=tmp_path / "bob.sqlite3",
            policy=FAST_POLICY,
            backoff=Backoff(initial=0.05, maximum=0.5),
            clock=lambda: time.time_ns() // 1_000_000 + later[0],
        )
        async with bob:
            alice_events = clients["alice"].events()
            bob_room = await bob.join("ops", invite=rooms["alice"].invite())
            await collect(alice_events, 1, lambda e: validated(e, "bob"))
            dropped = asyncio.Event()

            def drop_the_room_key(frame: RelayFrame) -> list[RelayFrame]:
                from_alice = isinstance(frame, DirectDelivery) and frame.sender == alice_key
                if from_alice and not dropped.is_set():
                    dropped.set()  # the first direct after the kick: the new secret
                    return []
                return [frame]

            alice_key = clients["alice"].key
            old_invite = bob_room.invite()
            inbox, bob_events = bob.messages(), bob.events()
            proxy.rewrite = drop_the_room_key
            await rooms["alice"].kick(member(rooms["alice"], "carol"))
            async with asyncio.timeout(EVENT_TIMEOUT):
                await dropped.wait()
            await collect(bob_events, 1, lambda e: isinstance(e, e2echat.RoomChanged))
            assert bob_room.epoch == 1
            with pytest.raises(e2echat.SecretPending, match="epoch 1"):
                bob_room.invite()
            later[0] = ROOM_KEY_WAIT_MS  # time passes: bob asks alice for the secret
            await rooms["alice"].send("after the kick")
            assert [m.text for m in await collect(inbox, 1)] == ["after the kick"]
            arrived = await collect(bob_events, 1, lambda e: isinstance(e, e2echat.SecretArrived))
            assert arrived[0].room is bob_room
            assert arrived[0].epoch == 1
            new_secret = bob_room.invite().partition("#")[2]  # bob's URL is the proxy's
            assert new_secret == rooms["alice"].invite().partition("#")[2]
            assert new_secret != old_invite.partition("#")[2]


async def test_leaving_signs_a_leave_entry_every_member_applies(
    make_client: MakeClient,
) -> None:
    clients, rooms = await secret_room(make_client, "bob", "carol")
    carol_key = clients["carol"].key
    alice_events, bob_events = clients["alice"].events(), clients["bob"].events()
    await rooms["carol"].leave()
    left = (await collect(alice_events, 1, lambda e: changed(e, "leave")))[0]
    assert left.text == "carol left"
    assert left.author.key == carol_key
    await collect(bob_events, 1, lambda e: changed(e, "leave"))
    assert carol_key not in rooms["alice"].roles
    assert carol_key not in rooms["bob"].roles
    assert clients["carol"].get_room("ops") is None
    kinds = [c.kind for c in await rooms["bob"].changes()]
    assert kinds == ["create", "join", "join", "leave"]
    inbox = clients["bob"].messages()
    await rooms["alice"].send("after carol left")
    assert [m.text for m in await collect(inbox, 1)] == ["after carol left"]


async def test_a_member_back_after_others_joined_is_not_told_the_log_is_behind(
    make_client: MakeClient,
) -> None:
    """Members joined while bob was away, and alice's message names the longer log. The
    log fetch of bob's connect brings the entries: nothing may say the relay dropped or
    withholds changes (LogBehind), which it did not."""
    alice, bob = await make_client("alice"), await make_client("bob")
    room = await alice.create("ops")
    alice_events = alice.events()
    await bob.join("ops")
    await collect(alice_events, 1, lambda e: validated(e, "bob"))
    await bob.close()
    for name in ("carol", "dave"):
        await (await make_client(name)).join("ops")
        await collect(alice_events, 1, lambda e, name=name: validated(e, name))
    await room.send("while you were away")
    subscribed: list[e2echat.client.pubsub.Subscription[e2echat.Event]] = []
    bob = await make_client("bob", before_connect=lambda c: subscribed.append(c.events()))
    await (await make_client("erin")).join("ops")  # bob's barrier: erin's join comes last
    seen = await collect(
        subscribed[0], 1, lambda e: isinstance(e, e2echat.LogBehind) or validated(e, "erin")
    )
    assert validated(seen[0], "erin"), seen


async def test_roles_are_known_from_the_stored_log_before_the_relay_answers(
    make_client: MakeClient,
) -> None:
    """A bot that checks roles as soon as it starts must not see an empty list (and take
    the owner for nobody) while its first log fetch is on its way."""
    alice, bob = await make_client("alice"), await make_client("bob")
    await alice.create("ops")
    alice_events = alice.events()
    await bob.join("ops")
    await collect(alice_events, 1, lambda e: validated(e, "bob"))
    await bob.close()
    bob = await make_client("bob")  # connected: its log fetch is still on its way
    room = bob.get_room("ops")
    assert room is not None
    assert room.roles == {alice.key: "owner", bob.key: "member"}
