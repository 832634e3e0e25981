"""Membership over time: late joiners, leavers, and clients that were offline."""

import time
from pathlib import Path

from e2echat_server import Relay

import e2echat
from e2echat.client.output import Output
from e2echat.client.roomsync import RoomSync
from e2echat.crypto import events as cev
from e2echat.protocol import LeaveRoom, Ok
from tests.client.conftest import MakeClient, collect, validated


async def test_late_joiner_reads_every_later_message_but_no_earlier_one(
    make_client: MakeClient,
) -> None:
    alice = await make_client("alice")
    bob = await make_client("bob")
    room = await alice.create("club", password="pw")
    alice_events = alice.events()
    await bob.join("club", password="pw")
    await collect(alice_events, 1, lambda e: validated(e, "bob"))
    bob_inbox = bob.messages()
    before = [await room.send(f"before {i}") for i in range(3)]
    await collect(bob_inbox, 3)

    carol = await make_client("carol")
    carol_inbox, carol_events = carol.messages(), carol.events()
    carol_room = await carol.join("club", password="pw")
    await collect(alice_events, 1, lambda e: validated(e, "carol"))
    # The relay would hand carol the old ciphertext: make her ask for all of it.
    driver = carol._driver
    state = driver.engine.rooms[carol_room.id]
    state.sync = RoomSync(carol_room.id, 0)
    driver.dispatch(Output(frames=[state.sync.connect(partial=False)]))
    after = [await room.send(f"after {i}") for i in range(3)]
    got = await collect(carol_inbox, 3)
    assert [m.text for m in got] == [m.text for m in after]
    refused = await collect(carol_events, 3, lambda e: isinstance(e, e2echat.Undecryptable))
    assert sorted(e.seq for e in refused) == [m.seq for m in before]  # type: ignore[attr-defined]
    assert [m.text for m in await carol_room.history()] == [m.text for m in after]


async def test_member_who_left_cannot_read_after_rotation(
    make_client: MakeClient, relay: Relay
) -> None:
    alice = await make_client("alice")
    bob = await make_client("bob")
    mallory = await make_client("mallory")
    room = await alice.create("team")
    alice_events = alice.events()
    for client in (bob, mallory):
        await client.join("team")
    await collect(alice_events, 2, lambda e: isinstance(e, e2echat.MemberJoined))
    mallory_inbox, bob_inbox = mallory.messages(), bob.messages()
    await room.send("everyone")
    assert [m.text for m in await collect(mallory_inbox, 1)] == ["everyone"]
    await collect(bob_inbox, 1)

    # mallory leaves at the relay but keeps every key she had (a hostile client).
    mallory_room = mallory.get_room("team")
    assert mallory_room is not None
    session = mallory._driver.engine.session
    await mallory._request(LeaveRoom(room=room.id), Ok)
    await collect(alice_events, 1, lambda e: isinstance(e, e2echat.MemberLeft))
    secret = await room.send("after mallory left")
    assert [m.text for m in await collect(bob_inbox, 1)] == ["after mallory left"]

    (stored,) = await relay.store.history(room.id, secret.seq - 1, 0, 1)
    outcome = session.receive(room.id, alice.key, stored.body, int(time.time() * 1000), secret.seq)
    assert outcome.messages == []
    assert any(isinstance(e, cev.MessageDeferred) for e in outcome.events)


async def test_offline_client_gets_everything_on_reconnect(
    make_client: MakeClient, tmp_path: Path
) -> None:
    alice = await make_client("alice")
    bob = await make_client("bob")
    room = await alice.create("news")
    await bob.join("news")
    bob_inbox = bob.messages()
    await room.send("while online")
    await collect(bob_inbox, 1)
    bob_identity = bob._identity
    await bob.close()

    sent = [await room.send(f"while away {i}") for i in range(5)]
    bob_again = await make_client("bob", identity=bob_identity)
    inbox = bob_again.messages()
    # bob's store remembers the room and its last seq: sync brings what he missed.
    got = await collect(inbox, 5)
    assert [(m.text, m.seq) for m in got] == [(m.text, m.seq) for m in sent]
    history = await bob_again.get_room("news").history()  # type: ignore[union-attr]
    assert [m.text for m in history] == ["while online"] + [m.text for m in sent]
