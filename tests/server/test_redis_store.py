"""What the Redis store promises beyond the shared Store contract (test_store.py)."""

import asyncio
from collections import defaultdict

import pytest
from e2echat_server import bus
from e2echat_server.store import Envelope, MemberRecord, RedisStore, UserRecord
from e2echat_server.store.redis import RedisKeys, StoreClosedError
from redis.crc import key_slot
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from tests.redis_server import RedisServer
from tests.server import conftest
from tests.server.test_store import ALICE, BOB, ROOM, envelope, room, user


async def test_acknowledged_writes_survive_redis_being_killed(durable_redis: RedisServer) -> None:
    store = await RedisStore.open(durable_redis.url)
    try:
        await store.put_user(user(ALICE))
        await store.create_room(room(), MemberRecord(ROOM, ALICE, 0))
        await asyncio.gather(*(store.append(ROOM, envelope(s), keep=100) for s in range(1, 51)))
        await store.mailbox_put(ALICE, envelope(1))
        durable_redis.kill()
        with pytest.raises(RedisConnectionError):
            await store.history(ROOM, 0, 0, 100)
        durable_redis.start()  # same port, same append-only file
        snapshot = await store.load()
        assert snapshot.room_seqs == {ROOM: 50}
        assert [u.key for u in snapshot.users] == [ALICE]
        assert [e.seq for e in await store.history(ROOM, 0, 0, 100)] == list(range(1, 51))
        assert [e.seq for e in await store.mailbox(ALICE, 0, 10)] == [1]
        await store.append(ROOM, envelope(51), keep=100)  # and writes work again
    finally:
        await store.close()


async def test_a_resent_message_is_stored_once_and_answered_with_its_number(
    redis_url: str,
) -> None:
    store = await RedisStore.open(redis_url)
    try:
        creator = MemberRecord(ROOM, ALICE, 0)
        await store.create_room(room(), creator)
        await store.create_room(room(), creator)  # the same call again: already done
        first = await store.append(ROOM, envelope(1, ts=10), keep=10)
        await store.append(ROOM, envelope(2, ts=20), keep=10)
        again = await store.append(ROOM, envelope(1, ts=30), keep=10)  # same body resent
        assert first == again == Envelope(1, 10, ALICE, b"body-1")
        assert [e.seq for e in await store.history(ROOM, 0, 0, 10)] == [1, 2]
        with pytest.raises(ValueError, match="name"):
            await store.create_room(room(b"y" * 16), MemberRecord(b"y" * 16, BOB, 1))
    finally:
        await store.close()


async def test_relays_sharing_redis_never_hand_out_one_number_twice(redis_url: str) -> None:
    one, two = await RedisStore.open(redis_url), await RedisStore.open(redis_url)
    try:
        await one.put_user(user(BOB, "bob"))
        await one.create_room(room(), MemberRecord(ROOM, ALICE, 0))
        # Both relays believe the next number is 1 (and the second one's clock is behind).
        a = await one.append(ROOM, Envelope(1, 500, ALICE, b"from one"), keep=10)
        b = await two.append(ROOM, Envelope(1, 400, BOB, b"from two"), keep=10)
        assert (a.seq, b.seq, b.ts) == (1, 2, 500)  # ts never goes backwards either
        assert await two.latest_seq(ROOM) == 2
        d1 = await one.mailbox_put(BOB, Envelope(1, 0, ALICE, b"x"))
        d2 = await two.mailbox_put(BOB, Envelope(1, 0, ALICE, b"y"))
        assert (d1.seq, d2.seq) == (1, 2)
        assert [e.body for e in await two.mailbox(BOB, 0, 10)] == [b"x", b"y"]
    finally:
        await one.close()
        await two.close()


async def test_a_name_left_claimed_by_a_deleted_room_is_taken_over(redis_url: str) -> None:
    store = await RedisStore.open(redis_url)
    try:
        await store.create_room(room(), MemberRecord(ROOM, ALICE, 0))
        k = store.keys  # a crash after deleting the room, before releasing its name:
        await store.client.delete(k.room(ROOM), k.members(ROOM), k.history(ROOM))
        assert (await store.load()).rooms == []
        fresh = b"n" * 16
        await store.create_room(room(fresh), MemberRecord(fresh, BOB, 1))
        snapshot = await store.load()
        assert [r.id for r in snapshot.rooms] == [fresh]
        assert await store.client.smembers(k.rooms) == {fresh}
    finally:
        await store.close()


async def test_each_room_and_each_user_lives_in_one_cluster_slot(redis_url: str) -> None:
    store = await RedisStore.open(redis_url)
    try:
        rooms = [bytes([i]) * 16 for i in range(1, 9)]
        for i, room_id in enumerate(rooms):
            await store.create_room(room(room_id, f"room-{i}"), MemberRecord(room_id, ALICE, 0))
            await store.append(room_id, envelope(1), keep=10)
        await store.put_user(user(ALICE))
        await store.mailbox_put(ALICE, envelope(1))
        slots: dict[str, set[int]] = defaultdict(set)
        async for name in store.client.scan_iter(count=1000):
            owner = name.decode().split("}", 1)[0]  # up to the end of the hash tag
            slots[owner].add(key_slot(name))
        assert len(slots) == len(rooms) + 2  # the rooms, alice, the directory indexes
        assert all(len(found) == 1 for found in slots.values())
        assert len(set().union(*slots.values())) > len(rooms) // 2  # rooms spread out
    finally:
        await store.close()


async def test_a_closed_store_refuses_writes(redis_url: str) -> None:
    store = await RedisStore.open(redis_url)
    await store.close()
    await store.close()  # idempotent
    with pytest.raises(StoreClosedError):
        await store.append(ROOM, Envelope(1, 0, ALICE, b"x"), keep=1)
    with pytest.raises(StoreClosedError):
        await store.put_user(UserRecord(ALICE, "a", 1, b"p" * 32, b"s" * 64))


def test_a_key_prefix_cannot_break_the_hash_tags() -> None:
    for bad in ("", "e2e{x}", "tab\t"):
        with pytest.raises(ValueError, match="prefix"):
            RedisKeys(bad)
    assert RedisKeys("chat").room(ROOM).startswith("chat:room:{")


def test_without_redis_server_the_tests_skip_naming_the_install_but_fail_in_ci(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(conftest, "redis_binary", lambda: None)
    with pytest.raises(pytest.skip.Exception, match="apt-get install -y redis-server"):
        conftest.require_redis_server({})
    with pytest.raises(pytest.fail.Exception, match="CI must run"):
        conftest.require_redis_server({"CI": "true"})


async def test_a_redis_that_lost_the_functions_gets_them_again(redis_url: str) -> None:
    store = await RedisStore.open(redis_url)
    try:
        await store.create_room(room(), MemberRecord(ROOM, ALICE, 0))
        await store.client.execute_command("FUNCTION", "FLUSH")  # as a restart without AOF
        with pytest.raises(ResponseError, match="Function not found"):
            await store.append(ROOM, envelope(1), keep=10)  # refused, so not acknowledged
        await store.append(ROOM, envelope(2), keep=10)
        assert [e.seq for e in await store.history(ROOM, 0, 0, 10)] == [2]  # 1 was not kept
    finally:
        await store.close()


async def test_more_reads_at_once_than_connections_wait_for_one(redis_url: str) -> None:
    store = await RedisStore.open(redis_url)
    try:
        await store.create_room(room(), MemberRecord(ROOM, ALICE, 0))
        await store.append(ROOM, envelope(1), keep=10)
        reads = [store.history(ROOM, 0, 0, 10) for _ in range(300)]  # a reconnect storm
        pages = await asyncio.gather(*reads, store.append(ROOM, envelope(2), keep=10))
        assert all([e.seq for e in page] in ([1], [1, 2]) for page in pages[:-1])
    finally:
        await store.close()


async def test_an_append_publishes_the_message_as_stored_once(redis_url: str) -> None:
    store = await RedisStore.open(redis_url)
    listener = store.client.pubsub()
    try:
        await store.create_room(room(), MemberRecord(ROOM, ALICE, 0))
        await listener.subscribe(store.keys.bus)
        await listener.get_message(timeout=30)  # the subscription's confirmation
        big = b"\xff" * 70_000  # a body needing a 32-bit length, next to 8-bit ones
        late = 1_900_000_000_000  # a ts in ms past 2**32
        await store.append(ROOM, Envelope(1, late, ALICE, big), keep=10)
        await store.append(ROOM, Envelope(1, 5, BOB, b"b"), keep=10)  # renumbered: 2, ts kept
        await store.append(ROOM, Envelope(1, late, ALICE, big), keep=10)  # a resend
        await store.append(ROOM, Envelope(300, 5, BOB, b"c"), keep=10)
        got = []
        while len(got) < 3:
            message = await listener.get_message(ignore_subscribe_messages=True, timeout=30)
            assert message is not None
            got.append(bus.decode(message["data"]))
        assert [p.origin for p in got] == [store.node] * 3
        assert [p.notice for p in got] == [
            bus.Appended(ROOM, ALICE, big, 1, late),
            bus.Appended(ROOM, BOB, b"b", 2, late),
            bus.Appended(ROOM, BOB, b"c", 300, late),  # the resend published nothing
        ]
    finally:
        await listener.aclose()  # type: ignore[no-untyped-call]
        await store.close()


def test_a_relay_tells_its_own_publications_by_their_first_bytes() -> None:
    for node in (b"n" * 8, b"m" * 16):
        mine = bus.origin_prefix(node)
        assert bus.encode(node, bus.Barrier(b"t")).startswith(mine)
        assert bus.encode(node, bus.Appended(ROOM, ALICE, b"x", 1, 2)).startswith(mine)
        assert not bus.encode(b"o" * len(node), bus.Barrier(b"t")).startswith(mine)


async def test_resends_are_recognised_among_the_last_64_and_the_digests_stay_bounded(
    redis_url: str,
) -> None:
    store = await RedisStore.open(redis_url)
    try:
        await store.create_room(room(), MemberRecord(ROOM, ALICE, 0))
        for seq in range(1, 201):
            await store.append(ROOM, envelope(seq), keep=1000)
            assert await store.client.zcard(store.keys.recent(ROOM)) <= 128
        again = await store.append(ROOM, envelope(137), keep=1000)  # 64th newest
        assert again.seq == 137
        assert await store.latest_seq(ROOM) == 200  # nothing stored
    finally:
        await store.close()
