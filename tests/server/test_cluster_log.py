"""A room's membership log over relays sharing one Redis: each relay keeps the log it
read in memory, and an entry appended through another relay must not leave it stale."""

from pathlib import Path

from e2echat.protocol import ErrorCode, JoinRoom, LogAppend, Ok, RoomReply
from e2echat.protocol.roomlog import Kind
from tests.server.test_cluster import relays
from tests.server.test_roomlog import NEW_TOKEN, TOKEN, after, pushed_at, secret_room, statement
from tests.server.wire import Identity, login, verifier_for


async def test_an_append_after_one_through_another_relay_is_taken(
    redis_url: str, tmp_path: Path
) -> None:
    async with relays(redis_url, tmp_path) as (one, two):
        alice = await login(one.url, Identity("alice"))  # relay one reads the log here
        bob = await login(two.url, Identity("bob"))
        room, head = await secret_room(alice, bob)  # bob's join entry goes through two
        carol = await login(one.url, Identity("carol"))
        await carol.request(JoinRoom(name="vault", token=TOKEN), RoomReply)
        join = statement(carol, room, head, Kind.JOIN)
        await carol.request(LogAppend(room=room, entry=join), Ok)  # was log_conflict, always
        await pushed_at(bob, head.length)  # and every member is told
        leave = statement(bob, room, after(head, join), Kind.LEAVE)  # and back through two
        await bob.request(LogAppend(room=room, entry=leave), Ok)


async def test_a_kick_through_another_relay_closes_the_old_secret_everywhere(
    redis_url: str, tmp_path: Path
) -> None:
    async with relays(redis_url, tmp_path) as (one, two):
        alice = await login(two.url, Identity("alice"))
        bob = await login(one.url, Identity("bob"))  # relay one reads the log here
        room, head = await secret_room(alice, bob)
        carol_id = Identity("carol")
        carol = await login(one.url, carol_id)
        await carol.request(JoinRoom(name="vault", token=TOKEN), RoomReply)
        join = statement(carol, room, head, Kind.JOIN)
        await carol.request(LogAppend(room=room, entry=join), Ok)
        head = after(head, join)
        kick = statement(
            alice, room, head, Kind.REMOVE, carol_id.key, epoch=1, verifier=verifier_for(NEW_TOKEN)
        )
        await alice.request(LogAppend(room=room, entry=kick), Ok)
        # bob, on relay one, is pushed the kick after relay one heard of it (one bus, in order)
        await pushed_at(bob, head.length)
        error = await carol.error(JoinRoom(name="vault", token=TOKEN))
        assert error.code == ErrorCode.FORBIDDEN  # the old secret opens nothing on relay one
        ban = statement(
            alice,
            room,
            after(head, kick),
            Kind.BAN,
            carol_id.key,
            epoch=2,
            verifier=verifier_for(TOKEN),
        )
        await alice.request(LogAppend(room=room, entry=ban), Ok)
        await pushed_at(bob, head.length + 1)
        error = await carol.error(JoinRoom(name="vault", token=TOKEN))
        assert error.code == ErrorCode.FORBIDDEN
        assert "banned" in error.message
