"""With --redis-replicas, a write is acknowledged only once the replicas have it (WAIT)."""

from pathlib import Path

import pytest
from e2echat_server import Relay, RelayConfig
from e2echat_server.store import MemberRecord, RedisStore
from e2echat_server.store.redis import ReplicasBehindError
from redis.asyncio import Redis

from e2echat.protocol import Challenge, Error, ErrorCode
from tests.redis_server import RedisServer
from tests.server.test_store import ALICE, ROOM, envelope, room
from tests.server.wire import Identity, open_raw

# A live replica confirms in milliseconds; the bound is only there for a dead one, so it
# is long where the replica lives (a loaded machine must not fail the test) and short
# where the test waits for it to run out.
LIVE_S, DEAD_S = 30.0, 0.2


async def test_an_acknowledged_write_is_on_the_replica_and_one_it_lacks_is_not_acknowledged(
    replicated_redis: tuple[RedisServer, RedisServer],
) -> None:
    primary, replica = replicated_redis
    store = await RedisStore.open(primary.url, replicas=1, replica_timeout_s=LIVE_S)
    impatient = await RedisStore.open(primary.url, replicas=1, replica_timeout_s=DEAD_S)
    copy = Redis.from_url(replica.url)
    try:
        await store.create_room(room(), MemberRecord(ROOM, ALICE, 0))
        for seq in range(1, 21):
            await store.append(ROOM, envelope(seq), keep=100)
        entries = await copy.xrange(store.keys.history(ROOM))  # read on the replica itself
        assert len(entries) == 20  # every acknowledged message was there already
        replica.kill()
        with pytest.raises(ReplicasBehindError, match="0 of 1"):
            await impatient.append(ROOM, envelope(21), keep=100)
    finally:
        await copy.aclose()
        await impatient.close()
        await store.close()


async def test_a_relay_asked_for_a_replica_answers_unavailable_while_it_lacks_one(
    replicated_redis: tuple[RedisServer, RedisServer], tmp_path: Path
) -> None:
    primary, replica = replicated_redis
    replica.kill()
    config = RelayConfig(
        port=0,
        redis=primary.url,
        redis_replicas=1,
        redis_replica_timeout_s=DEAD_S,
        data_dir=tmp_path / "node",
    )
    relay = Relay(config)
    await relay.start()
    try:
        alice = await open_raw(relay.url)
        identity = Identity("alice")
        await alice.send(identity.hello(await alice.expect(Challenge)))
        refused = await alice.expect(Error)  # registering her key is a write none confirmed
        assert refused.code == ErrorCode.UNAVAILABLE
    finally:
        await relay.close()
