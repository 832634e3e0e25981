"""Three library clients chatting through a real relay on loopback."""

import functools
from pathlib import Path

import pytest
from e2echat_server import Relay

import e2echat
from tests.client.conftest import MakeClient, collect, validated


async def test_three_clients_chat_in_an_open_room(make_client: MakeClient) -> None:
    alice = await make_client("alice")
    bob = await make_client("bob")
    carol = await make_client("carol")
    room = await alice.create("lobby")
    assert not room.secret
    alice_events, bob_events = alice.events(), bob.events()
    await bob.join("lobby")
    await carol.join("lobby")
    # A message encrypted before its sender learned of a member is not readable by it.
    await collect(alice_events, 2, lambda e: validated(e, "bob") or validated(e, "carol"))
    await collect(bob_events, 1, lambda e: validated(e, "carol"))
    bob_inbox, carol_inbox, alice_inbox = bob.messages(), carol.messages(), alice.messages()
    sent = await room.send("hello @bob and @carol")
    assert sent.seq > 0
    assert sent.own
    got_bob = (await collect(bob_inbox, 1))[0]
    got_carol = (await collect(carol_inbox, 1))[0]
    for got in (got_bob, got_carol):
        assert got.text == "hello @bob and @carol"
        assert got.sender.name == "alice"
        assert got.sender.key == alice.key
        assert got.seq == sent.seq
        assert got.mentions_me
        assert {m.name for m in got.mentions} == {"bob", "carol"}
    await bob.get_room("lobby").send("hi alice")  # type: ignore[union-attr]
    replies = await collect(alice_inbox, 1)
    assert replies[0].text == "hi alice"
    assert not replies[0].mentions_me
    assert replies[0].room.name == "lobby"
    await collect(carol_inbox, 1)


async def test_three_clients_chat_in_a_password_room(make_client: MakeClient) -> None:
    alice = await make_client("alice")
    bob = await make_client("bob")
    carol = await make_client("carol")
    room = await alice.create("vault", password="hunter2")
    assert room.secret
    events = {"alice": alice.events(), "bob": bob.events()}
    with pytest.raises(e2echat.WrongPassphrase):
        await bob.join("vault", password="wrong")
    rooms = {"alice": room}
    for name, client in (("bob", bob), ("carol", carol)):
        rooms[name] = await client.join("vault", password="hunter2")
        joiner = functools.partial(validated, name=name)
        for earlier in [n for n in rooms if n != name]:
            await collect(events[earlier], 1, joiner)
    inboxes = {"alice": alice.messages(), "bob": bob.messages(), "carol": carol.messages()}
    for name in ("alice", "bob", "carol"):
        await rooms[name].send(f"{name} here, @alice")
    for name, inbox in inboxes.items():
        got = await collect(inbox, 2)
        expected = {f"{other} here, @alice" for other in rooms if other != name}
        assert {m.text for m in got} == expected
        assert all(m.mentions_me == (name == "alice") for m in got)


async def test_password_room_with_the_real_argon2id_cost(tmp_path: Path, relay: Relay) -> None:
    clients = [
        e2echat.Client(
            relay.url, identity=e2echat.Identity.generate(), name=name, store=tmp_path / name
        )
        for name in ("alice", "bob")
    ]
    async with clients[0] as alice, clients[1] as bob:
        events = alice.events()
        room = await alice.create("argon", password="correct horse battery staple")
        await bob.join("argon", password="correct horse battery staple")
        await collect(events, 1, lambda e: validated(e, "bob"))
        inbox = bob.messages()
        await room.send("slow to guess")
        assert [m.text for m in await collect(inbox, 1)] == ["slow to guess"]
