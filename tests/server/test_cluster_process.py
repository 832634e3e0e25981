"""Relay processes over one Redis, killed with SIGKILL, and Redis itself killed and restarted.

Redis runs with ``appendfsync always`` (docs/server.md): with it, nothing a relay
acknowledged is lost, and nothing is stored or delivered twice.
"""

import asyncio
import os
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from websockets.exceptions import ConnectionClosed

from e2echat.protocol import (
    CloseCode,
    CreateRoom,
    Error,
    JoinRoom,
    Message,
    OpenAccess,
    Presence,
    RoomReply,
    Send,
    Sent,
    Sync,
    Synced,
)
from tests.redis_server import RedisServer
from tests.server.test_names import signed_rename_then_listed
from tests.server.test_process import relay_process
from tests.server.wire import Identity, WireClient, login

KEEPALIVE_S = 1.0  # ping interval + ping timeout of the relays below


@asynccontextmanager
async def node(
    redis: RedisServer, **settings: str
) -> AsyncIterator[tuple[asyncio.subprocess.Process, str]]:
    """A relay process over ``redis``; ``settings`` are more of its options (``admin_socket``)."""
    env = {
        **os.environ,
        "E2ECHAT_SERVER_PORT": "0",
        "E2ECHAT_SERVER_REDIS": redis.url,
        "E2ECHAT_SERVER_LOG_LEVEL": "warning",
        "E2ECHAT_SERVER_PING_INTERVAL_S": str(KEEPALIVE_S / 2),
        "E2ECHAT_SERVER_PING_TIMEOUT_S": str(KEEPALIVE_S / 2),
        "E2ECHAT_SERVER_RATE": "1000",
        "E2ECHAT_SERVER_BURST": "1000",
        **{f"E2ECHAT_SERVER_{name.upper()}": value for name, value in settings.items()},
    }
    async with relay_process(env=env) as started:
        yield started


async def sync_all(client: WireClient, room: bytes, after: int = 0) -> list[Message]:
    await client.send(Sync(room=room, after=after, id="sync"))
    found: list[Message] = []
    while True:
        frame = await client.next_of((Message, Synced))  # type: ignore[arg-type]
        if isinstance(frame, Synced):
            return found
        found.append(frame)


async def test_a_relay_killed_mid_conversation_loses_nothing(durable_redis: RedisServer) -> None:
    alice_id, bob_id = Identity("alice"), Identity("bob")
    async with AsyncExitStack() as stack:
        _, url_one = await stack.enter_async_context(node(durable_redis))
        two, url_two = await stack.enter_async_context(node(durable_redis))
        alice, bob = await login(url_one, alice_id), await login(url_two, bob_id)
        reply = await alice.request(CreateRoom(name="lobby", access=OpenAccess()), RoomReply)
        room = reply.room.id
        await bob.request(JoinRoom(name="lobby"), RoomReply)
        acknowledged: list[int] = []
        for i in range(10):
            acknowledged.append((await alice.request(Send(room=room, body=b"m%d" % i), Sent)).seq)
        seen = [(await bob.next_of(Message)).seq for _ in range(5)]  # bob read half of them
        two.kill()  # SIGKILL mid-conversation: bob's relay says nothing to anyone
        killed = time.monotonic()
        for i in range(10, 20):
            acknowledged.append((await alice.request(Send(room=room, body=b"m%d" % i), Sent)).seq)
        gone = await alice.next_of(Presence, within=5 * KEEPALIVE_S)
        assert (gone.key, gone.status) == (bob_id.key, "offline")
        assert time.monotonic() - killed < 2 * KEEPALIVE_S  # within the keepalive window
        bob = await login(url_one, bob_id)  # failed over to the surviving relay
        rest = await sync_all(bob, room, after=seen[-1])
        assert seen + [m.seq for m in rest] == acknowledged == list(range(1, 21))
        assert [m.body for m in rest] == [b"m%d" % i for i in range(5, 20)]
        back = await alice.next_of(Presence)
        assert (back.key, back.status) == (bob_id.key, "online")


async def keep_sending(
    url: str, identity: Identity, room: bytes, count: int, halfway: asyncio.Event
) -> tuple[dict[int, bytes], int]:
    """Send ``count`` bodies, each until acknowledged, reconnecting whenever the relay
    drops us or refuses (Redis down); return what was acknowledged, by seq, and how many
    sends were tried again."""
    acknowledged: dict[int, bytes] = {}
    retries = 0
    client: WireClient | None = None
    i = 0
    while i < count:
        body = b"body-%d" % i
        try:
            if client is None:
                client = await login(url, identity)
            await client.send(Send(room=room, body=body, id=f"s{i}"))
            answer = await client.next_of((Sent, Error))  # type: ignore[arg-type]
        except (ConnectionClosed, OSError, TimeoutError, AssertionError):
            client, retries = None, retries + 1
            await asyncio.sleep(0.05)  # the relay is restarting its bus: try again
            continue
        if isinstance(answer, Sent):
            assert answer.seq not in acknowledged
            acknowledged[answer.seq] = body
            i += 1
            if i == count // 2:
                halfway.set()
        else:
            retries += 1
            await asyncio.sleep(0.05)  # unavailable while Redis is down: resend it
    return acknowledged, retries


async def sync_once_back(url: str, identity: Identity, room: bytes) -> list[Message]:
    """Log in and sync, as a client does after an outage: a relay that subscribes to the
    bus again closes the connections made while it was lost (1013), and we try again."""
    async with asyncio.timeout(10 * KEEPALIVE_S):
        while True:
            client = None
            try:
                client = await login(url, identity)
                return await sync_all(client, room)
            except ConnectionClosed as closed:
                if closed.rcvd is None or closed.rcvd.code != CloseCode.TRY_AGAIN_LATER:
                    raise
            finally:
                if client is not None:
                    await client.close()


async def test_redis_killed_and_restarted_under_load_loses_and_repeats_nothing(
    durable_redis: RedisServer,
) -> None:
    alice_id, bob_id = Identity("alice"), Identity("bob")
    async with AsyncExitStack() as stack:
        _, url_one = await stack.enter_async_context(node(durable_redis))
        _, url_two = await stack.enter_async_context(node(durable_redis))
        alice, bob = await login(url_one, alice_id), await login(url_two, bob_id)
        reply = await alice.request(CreateRoom(name="lobby", access=OpenAccess()), RoomReply)
        room = reply.room.id
        await bob.request(JoinRoom(name="lobby"), RoomReply)
        await alice.close()
        halfway = asyncio.Event()
        sending = asyncio.create_task(keep_sending(url_one, alice_id, room, 200, halfway))
        await asyncio.wait_for(halfway.wait(), 30)  # under load...
        durable_redis.kill()  # ...Redis dies without a shutdown
        durable_redis.start()  # same port, same append-only file
        acknowledged, retries = await asyncio.wait_for(sending, 60)
        assert retries  # the outage was felt: sends were refused or the relay dropped us
        stored = await sync_once_back(url_two, bob_id, room)
        bodies = [m.body for m in stored]
        assert len(bodies) == len(set(bodies))  # nothing stored twice
        assert {m.seq: m.body for m in stored if m.seq in acknowledged} == acknowledged
        assert set(acknowledged.values()) == {b"body-%d" % i for i in range(200)}


async def test_a_signed_name_survives_its_relay_killed_and_redis_restarted(
    durable_redis: RedisServer,
) -> None:
    """The name statement lives in Redis with the user: a relay started after the first
    was killed (and Redis restarted from its append-only file) still lists it."""
    async with AsyncExitStack() as stack:
        first, url = await stack.enter_async_context(node(durable_redis))

        async def restart() -> str:
            first.kill()
            await first.wait()
            durable_redis.kill()
            durable_redis.start()
            _, again = await stack.enter_async_context(node(durable_redis))
            return again

        await signed_rename_then_listed(url, restart)
