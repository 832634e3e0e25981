"""The operator's actions on one relay of a Redis cluster hold on every relay."""

from pathlib import Path

from e2echat.protocol import (
    CreateRoom,
    ErrorCode,
    OpenAccess,
    RoomDeleted,
    RoomReply,
    Send,
    Sent,
    Sync,
)
from tests.server.test_cluster import relays, room_of_two
from tests.server.wire import Identity, login


async def test_a_room_deleted_on_one_relay_is_gone_on_the_other(
    redis_url: str, tmp_path: Path
) -> None:
    async with relays(redis_url, tmp_path) as (one, two):
        alice = await login(one.url, Identity("alice"))
        bob = await login(two.url, Identity("bob"))
        room = await room_of_two(alice, bob)
        await alice.request(Send(room=room, body=b"before", id="s"), Sent)

        assert await one.delete_room(room, "Spam.") == 2
        for member in (alice, bob):
            deleted = await member.next_of(RoomDeleted)
            assert (deleted.room, deleted.reason) == (room, "Spam.")
        await two.engine.broker.catch_up()  # node two has followed the deletion
        assert "lobby" not in two.directory.by_name
        assert two.directory.rooms_of[bob.identity.key] == set()  # type: ignore[union-attr]
        assert (await bob.error(Sync(room=room, after=0, id="y"))).code == ErrorCode.NO_SUCH_ROOM
        reply = await bob.request(CreateRoom(name="lobby", access=OpenAccess(), id="c"), RoomReply)
        assert reply.room.id != room
        assert reply.room.seq == 0
        await alice.close()
        await bob.close()
