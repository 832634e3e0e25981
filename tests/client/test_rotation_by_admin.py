"""A kick by an admin, seen from the owner: the owner's invite follows the new secret,
which came to it in a direct after the log's entry."""

from tests.client.conftest import MakeClient, collect
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
