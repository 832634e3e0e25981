"""The operator's actions on one relay of a Redis cluster hold on every relay."""

import asyncio
from pathlib import Path

import msgspec
from e2echat_server import Relay

from e2echat.protocol import (
    CloseCode,
    CreateRoom,
    Error,
    ErrorCode,
    OpenAccess,
    RoomDeleted,
    RoomDeletion,
    RoomReply,
    Send,
    Sent,
    Sync,
)
from tests.server.test_access import refused
from tests.server.test_cluster import node_config, relays, room_of_two
from tests.server.test_registration_tokens import hello
from tests.server.wire import Identity, WireClient, closed_with, login


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


async def test_a_member_offline_when_a_room_is_deleted_is_told_on_any_relay(
    redis_url: str, tmp_path: Path
) -> None:
    async with relays(redis_url, tmp_path) as (one, two):
        alice, bob_identity = await login(one.url, Identity("alice")), Identity("bob")
        bob = await login(two.url, bob_identity)
        room = await room_of_two(alice, bob)
        await bob.close()
        await two.engine.broker.catch_up()  # node two knows bob went
        assert await one.delete_room(room, "Spam.") == 2
        await two.engine.broker.catch_up()  # and that the room is gone
        for node in (two, one):  # every node reads the notice from the shared store
            bob = await login(node.url, bob_identity)
            assert bob.welcome is not None
            assert bob.welcome.rooms == []
            notice = await bob.expect(RoomDeletion)
            assert (notice.room, notice.reason) == (room, "Spam.")
            await bob.close()
        await alice.close()


def token_nodes(redis_url: str, tmp_path: Path) -> list[Relay]:
    configs = [node_config(redis_url, tmp_path / f"node{i}") for i in range(2)]
    return [Relay(msgspec.structs.replace(c, registration="token")) for c in configs]


async def test_a_ban_on_one_relay_holds_on_the_other_and_on_a_relay_started_later(
    redis_url: str, tmp_path: Path
) -> None:
    async with relays(redis_url, tmp_path) as (one, two):
        eve = Identity("eve")
        on_two = await login(two.url, eve)
        assert await one.ban(eve.key)
        await closed_with(on_two.conn, CloseCode.AUTH_FAILED)  # closed by node two
        assert "banned" in (await refused(two.url, eve)).message
        assert not await two.ban(eve.key)  # the shared set has it already
        async with relays(redis_url, tmp_path / "later", count=1) as (three,):
            assert "banned" in (await refused(three.url, eve)).message
            assert await three.ban(eve.key, banned=False)
            await two.engine.broker.catch_up()  # the unban's notice has reached node two
            await (await login(two.url, eve)).close()


async def test_a_token_spent_on_one_relay_is_spent_on_every_relay(
    redis_url: str, tmp_path: Path
) -> None:
    one, two = token_nodes(redis_url, tmp_path)
    async with one, two:
        token = await one.operator.issue_token(1, None, 0)
        (listed,) = (await two.operator.tokens()).listed(0)  # node two sees it
        assert (listed["uses"], listed["valid"]) == (1, True)
        alice = Identity("alice")
        welcomed = await hello(two.url, alice, token)
        assert isinstance(welcomed, WireClient)
        await welcomed.close()
        assert isinstance(await hello(one.url, Identity("bob"), token), Error)
        # alice is known now, on node one too: no token needed there
        again = await hello(one.url, alice, None)
        assert isinstance(again, WireClient)
        await again.close()


async def test_two_relays_racing_for_the_last_use_admit_one_key(
    redis_url: str, tmp_path: Path
) -> None:
    one, two = token_nodes(redis_url, tmp_path)
    async with one, two:
        token = await one.operator.issue_token(1, None, 0)
        answers = await asyncio.gather(
            hello(one.url, Identity("a"), token), hello(two.url, Identity("b"), token)
        )
        admitted = [a for a in answers if isinstance(a, WireClient)]
        assert len(admitted) == 1
        assert sum(isinstance(a, Error) for a in answers) == 1
        await admitted[0].close()


async def test_a_token_revoked_on_one_relay_is_refused_on_the_other(
    redis_url: str, tmp_path: Path
) -> None:
    one, two = token_nodes(redis_url, tmp_path)
    async with one, two:
        token = await one.operator.issue_token(None, None, 0)
        (listed,) = (await one.operator.tokens()).listed(0)
        assert await two.operator.revoke_token(str(listed["id"])) is not None
        assert isinstance(await hello(one.url, Identity("a"), token), Error)
        assert (await one.operator.tokens()).listed(0) == []
