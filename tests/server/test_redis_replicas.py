"""With --redis-replicas, a write is acknowledged only once the replicas have it (WAIT)."""

from pathlib import Path

import pytest
from e2echat_server import Relay, RelayConfig
from e2echat_server.store import MemberRecord, RedisStore
from e2echat_server.store.redis import ReplicasBehindError
from redis.asyncio import Redis

from e2echat.protocol import CreateRoom, Error, ErrorCode, OpenAccess, RoomReply, Send, Sent
from tests.redis_server import RedisServer
from tests.server.test_store import ALICE, ROOM, envelope, room
from tests.server.wire import Identity, login


async def test_an_acknowledged_write_is_on_the_replica_and_one_it_lacks_is_not_acknowledged(
    replicated_redis: tuple[RedisServer, RedisServer],
) -> None:
    primary, replica = replicated_redis
    store = await RedisStore.open(primary.url, replicas=1, replica_timeout_s=0.2)
    copy = Redis.from_url(replica.url)
    try:
        await store.create_room(room(), MemberRecord(ROOM, ALICE, 0))
        for seq in range(1, 21):
            await store.append(ROOM, envelope(seq), keep=100)
        entries = await copy.xrange(store.keys.history(ROOM))  # read on the replica itself
        assert len(entries) == 20  # every acknowledged message was there already
        replica.kill()
        with pytest.raises(ReplicasBehindError, match="0 of 1"):
            await store.append(ROOM, envelope(21), keep=100)
    finally:
        await copy.aclose()
        await store.close()


async def test_a_relay_asked_for_a_replica_answers_unavailable_while_it_lacks_one(
    replicated_redis: tuple[RedisServer, RedisServer], tmp_path: Path
) -> None:
    primary, replica = replicated_redis
    config = RelayConfig(
        port=0,
        redis=primary.url,
        redis_replicas=1,
        redis_replica_timeout_s=0.2,
        data_dir=tmp_path / "node",
    )
    relay = Relay(config)
    await relay.start()
    try:
        alice = await login(relay.url, Identity("alice"))
        reply = await alice.request(
            CreateRoom(name="lobby", access=OpenAccess(), id="c"), RoomReply
        )
        await alice.send(Send(room=reply.room.id, body=b"kept", id="s1"))
        assert (await alice.next_of(Sent)).seq == 1
        replica.kill()
        await alice.send(Send(room=reply.room.id, body=b"unconfirmed", id="s2"))
        refused = await alice.next_of(Error)
        assert (refused.id, refused.code) == ("s2", ErrorCode.UNAVAILABLE)
    finally:
        await relay.close()
