"""After a kick: the owner's invite follows the new secret an admin's kick made (it came
in a direct after the log's entry), a kicked member invited again reads again, a
password room's old password is refused as changed, and what a member banned while away
had queued is reported failed."""

import pytest
from e2echat_server import Relay

import e2echat
from e2echat.client import client as client_module
from e2echat.protocol import Send
from tests.client.conftest import MakeClient, collect, validated
from tests.client.proxy import evil_proxy
from tests.client.test_rooms import changed, member, secret_room


async def test_the_owner_invites_with_the_secret_an_admins_kick_made(
    make_client: MakeClient,
) -> None:
    clients, rooms = await secret_room(make_client, "bob", "carol")
    alice_room, bob_room = rooms["alice"], rooms["bob"]
    bob_events, alice_events = clients["bob"].events(), clients["alice"].events()
    await alice_room.set_role(member(alice_room, "bob"), "admin")
    await collect(bob_events, 1, lambda e: changed(e, "role"))
    await bob_room.kick(member(bob_room, "carol"))
    await collect(alice_events, 1, lambda e: changed(e, "kick"))
    inbox = clients["bob"].messages()
    await alice_room.send("the new epoch")  # sent once alice holds its secret
    await collect(inbox, 1)
    assert alice_room.epoch == bob_room.epoch == 1
    assert alice_room.invite() == bob_room.invite()


async def test_a_kicked_member_invited_again_reads_and_is_read(make_client: MakeClient) -> None:
    clients, rooms = await secret_room(make_client, "bob", "carol")
    alice_room = rooms["alice"]
    carol_events = clients["carol"].events()
    await alice_room.kick(member(alice_room, "carol"))
    await collect(carol_events, 1, lambda e: isinstance(e, e2echat.RoomLeft))
    alice_events = clients["alice"].events()
    carol_room = await clients["carol"].join("ops", invite=alice_room.invite())
    await collect(alice_events, 1, lambda e: isinstance(e, e2echat.MemberValidated))
    carol_inbox, alice_inbox = clients["carol"].messages(), clients["alice"].messages()
    await alice_room.send("welcome back")
    assert [m.text for m in await collect(carol_inbox, 1)] == ["welcome back"]
    await carol_room.send("thanks")
    assert [m.text for m in await collect(alice_inbox, 1)] == ["thanks"]


async def test_a_password_after_a_kick_is_told_the_secret_changed(
    make_client: MakeClient,
) -> None:
    """A kick in a password room gives it a random secret: the password opens nothing
    until an admin sets a new one, and a joiner is told so, not "it has no password"."""
    alice, bob = await make_client("alice"), await make_client("bob")
    room = await alice.create("vault", password="hunter2")
    alice_events = alice.events()
    await bob.join("vault", password="hunter2")
    await collect(alice_events, 1, lambda e: validated(e, "bob"))
    await room.kick(member(room, "bob"))
    await collect(alice_events, 1, lambda e: changed(e, "kick"))
    carol = await make_client("carol")
    with pytest.raises(e2echat.WrongAccess, match="its secret was changed") as refused:
        await carol.join("vault", password="hunter2")
    assert "has no password" not in str(refused.value)
    with pytest.raises(e2echat.SecretRequired) as required:  # without one: not a password
        await carol.join("vault")
    assert required.value.needs == "invite"
    await room.change_password("correct horse")
    assert (await carol.join("vault", password="correct horse")).epoch == 2


async def test_sends_queued_by_a_member_banned_while_away_each_fail(
    make_client: MakeClient, relay: Relay, monkeypatch: pytest.MonkeyPatch
) -> None:
    """bob's messages wait in his outbox while he is away; alice bans him meanwhile. At
    his next connect the relay no longer lists the room: each waiting message gets its
    ``SendFailed`` before ``RoomLost``, none vanishes unreported."""
    monkeypatch.setattr(client_module, "SEND_CONFIRM_TIMEOUT_S", 0.05)
    clients, rooms = await secret_room(make_client, "carol")
    alice_room = rooms["alice"]
    invite = alice_room.invite()
    async with evil_proxy(relay.url) as proxy:
        bob = await make_client("bob", proxy.url)
        alice_events = clients["alice"].events()
        bob_room = await bob.join("ops", invite=invite)
        await collect(alice_events, 1, lambda e: validated(e, "bob"))
        proxy.withhold = lambda frame: isinstance(frame, Send)  # the relay never has them
        queued = [await bob_room.send(text) for text in ("one", "two")]
        assert [m.seq for m in queued] == [0, 0]
        assert await bob.close() == 2
    await alice_room.ban(member(alice_room, "bob"))
    bob = await make_client("bob")  # the same identity and store, straight to the relay
    events = bob.events()
    seen = await collect(events, 3, lambda e: isinstance(e, (e2echat.SendFailed, e2echat.RoomLost)))
    assert [type(e) for e in seen] == [e2echat.SendFailed, e2echat.SendFailed, e2echat.RoomLost]
    assert [e.send_id for e in seen[:2]] == [m.send_id for m in queued]  # type: ignore[attr-defined]
    assert "no longer lists us" in seen[0].text  # type: ignore[attr-defined]
    assert await bob.flush() == 0


async def test_a_member_unbanned_after_rotations_proves_itself_at_the_current_epoch(
    make_client: MakeClient,
) -> None:
    """Kicked, then two new epochs (a rotation, a ban), then unbanned: reading the log
    again from the start, its client shared its chain at its own old join entry, with a
    proof of epoch 0, and every member refused it ("membership proof is for epoch 0,
    the room is at 2") in a red line. It shares once the whole log is read, at epoch 2."""
    clients, rooms = await secret_room(make_client, "bob", "carol")
    alice, carol = clients["alice"], clients["carol"]
    alice_room = rooms["alice"]
    carol_events = carol.events()
    await alice_room.kick(carol.key)
    await collect(carol_events, 1, lambda e: isinstance(e, e2echat.RoomLeft))
    await alice_room.rotate_secret()
    await alice_room.ban(carol.key)
    await alice_room.unban(carol.key)
    alice_events = alice.events()
    carol_room = await carol.join("ops", invite=alice_room.invite())
    assert carol_room.epoch == alice_room.epoch == 3
    inbox = alice.messages()
    await carol_room.send("back again")
    assert [m.text for m in await collect(inbox, 1)] == ["back again"]
    await carol.set_status("away")  # a barrier: relayed to alice after carol's directs
    seen = await collect(
        alice_events, 1, lambda e: isinstance(e, e2echat.Notice | e2echat.PresenceChanged)
    )
    assert [type(e).__name__ for e in seen] == ["PresenceChanged"], seen
