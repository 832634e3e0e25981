"""A room the relay's operator deletes: its live members are told why and forget it."""

from pathlib import Path

from e2echat_server import Relay

import e2echat
from tests.client.conftest import CHEAP_KDF, FAST_POLICY, MakeClient, collect


async def test_a_live_member_is_told_and_forgets_the_room_without_rejoining(
    tmp_path: Path, relay: Relay, make_client: MakeClient
) -> None:
    alice = await make_client("alice")
    room = await alice.create("lobby")
    bob = e2echat.Client(  # rejoin=True would create a lost room again: not a deleted one
        relay.url,
        identity=e2echat.Identity.generate(),
        name="bob",
        store=tmp_path / "bob.sqlite3",
        policy=FAST_POLICY,
        password_limits=CHEAP_KDF,
        rejoin=True,
    )
    async with bob:
        await bob.join("lobby")
        await room.send("hello")
        events = bob.events()
        await relay.delete_room(room.id, "Spam.")
        (deleted,) = await collect(events, 1, lambda e: isinstance(e, e2echat.RoomLeft))
        assert isinstance(deleted, e2echat.RoomDeleted)
        assert not isinstance(deleted, e2echat.RoomLost)
        assert (deleted.room.name, deleted.reason) == ("lobby", "Spam.")
        assert bob.rooms == []
        # A barrier: the relay has handled everything bob sent before this reply.
        assert [r.name for r in await bob.list_rooms()] == []
        assert "lobby" not in relay.directory.by_name
