"""After a kick: the owner's invite follows the new secret an admin's kick made (it came
in a direct after the log's entry), and a kicked member invited again reads again."""

import pytest

import e2echat
from tests.client.conftest import MakeClient, collect, validated
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
    await room.change_password("correct horse")
    assert (await carol.join("vault", password="correct horse")).epoch == 2
