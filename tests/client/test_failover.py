"""Clients given several relay URLs: the first connection skips a dead node, and a
client whose node is killed (SIGKILL), or cut off from Redis without a word, resumes on
another node of the cluster with every message, none twice."""

import asyncio
import os
import random
from collections.abc import Iterator
from contextlib import AsyncExitStack
from pathlib import Path

import msgspec
import pytest
from e2echat_server import Relay

import e2echat
from e2echat.client.relays import RelayRotation, relay_urls
from tests.client.conftest import MakeClient, collect
from tests.client.test_bot_ops import watching
from tests.redis_server import RedisServer, free_port
from tests.server.conftest import require_redis_server
from tests.server.test_cluster import node_config
from tests.server.test_cluster_process import node
from tests.tcp_forwarder import Forwarder


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(require_redis_server(os.environ), tmp_path / "redis", "always")
    server.start()
    yield server
    server.stop()


def test_rotation_backs_off_only_after_every_url_failed_in_a_row() -> None:
    rotation = RelayRotation(("ws://a/", "ws://b/", "ws://c/"), rng=random.Random(1))
    assert [rotation.advance() for _ in range(6)] == [False, False, True] * 2
    assert rotation.url == "ws://a/"
    rotation.advance()
    rotation.stable()  # a connection to b lasted: its loss starts a new round
    assert (rotation.url, rotation.advance(), rotation.url) == ("ws://b/", False, "ws://c/")
    assert 0 <= rotation.pause() <= rotation.spread


@pytest.mark.parametrize("bad", [[], [""], ["ws://a/", 3]])
def test_an_empty_or_malformed_url_list_is_refused(bad: list[object]) -> None:
    with pytest.raises(ValueError, match="relay URL"):
        relay_urls(bad)  # type: ignore[arg-type]


async def test_the_first_connection_skips_a_dead_url(make_client: MakeClient, relay: Relay) -> None:
    dead = f"ws://127.0.0.1:{free_port()}/"
    alice = await make_client("alice", [dead, relay.url])
    assert alice.state is e2echat.ConnectionState.CONNECTED
    assert (alice.url, alice.urls) == (relay.url, (dead, relay.url))


async def test_connect_fails_once_every_url_failed(tmp_path: Path) -> None:
    dead = [f"ws://127.0.0.1:{free_port()}/" for _ in range(2)]
    alice = e2echat.Client(
        dead,
        identity=e2echat.Identity.generate(),
        name="alice",
        store=tmp_path / "alice.sqlite3",
        connect_timeout=0,  # the first round only
    )
    with pytest.raises(e2echat.ConnectError):
        await alice.connect()


async def test_a_client_whose_node_is_killed_resumes_on_another(
    make_client: MakeClient, redis: RedisServer
) -> None:
    async with AsyncExitStack() as stack:
        one, url_one = await stack.enter_async_context(node(redis))
        _, url_two = await stack.enter_async_context(node(redis))
        alice = await make_client("alice", [url_one, url_two])
        bob = await make_client("bob", [url_two, url_one])
        room = await alice.create("ops", password="fail-over")
        alice_events, inbox = alice.events(), alice.messages()
        await bob.join("ops", password="fail-over")
        await collect(alice_events, 1, lambda e: isinstance(e, e2echat.MemberValidated))
        bob_room = bob.get_room("ops")
        assert bob_room is not None
        await room.send("before")
        sent = [f"from bob {i}" for i in range(6)]
        for text in sent[:3]:
            await bob_room.send(text)
        assert [m.text for m in await collect(inbox, 3)] == sent[:3]
        one.kill()  # alice's node dies mid-conversation
        await one.wait()
        for text in sent[3:]:  # acknowledged by node two while alice is away
            await bob_room.send(text)
        await collect(alice_events, 1, connected, seconds=20)
        assert alice.url == url_two
        assert [m.text for m in await collect(inbox, 3)] == sent[3:]
        await room.send("after")
        await bob_room.send("last")
        assert [m.text for m in await collect(inbox, 1)] == ["last"]  # nothing twice before it
        assert [m.text for m in await room.history() if not m.own] == [*sent, "last"]


def connected(event: e2echat.Event) -> bool:
    return (
        isinstance(event, e2echat.ConnectionChanged)
        and event.state is e2echat.ConnectionState.CONNECTED
    )


async def test_a_node_cut_off_from_redis_without_an_error_sends_its_clients_on(
    make_client: MakeClient, redis: RedisServer, tmp_path: Path
) -> None:
    """The route between node one and Redis dies and no socket says so: node one must
    notice (its PING on the quiet bus goes unanswered), or alice would sit on a node deaf
    to node two, missing bob's messages for as long as the route stays dead."""
    forwarder = Forwarder(redis.port)
    cut_url = f"redis://127.0.0.1:{await forwarder.start()}/0"
    window = msgspec.structs.replace(  # a keepalive window of 2 s: noticed in 1 s
        node_config(cut_url, tmp_path / "one"), ping_interval_s=1.0, ping_timeout_s=1.0
    )
    async with (
        watching("e2echat_server") as log,
        Relay(window) as one,
        Relay(node_config(redis.url, tmp_path / "two")) as two,
    ):
        alice = await make_client("alice", [one.url, two.url])
        bob = await make_client("bob", two.url)
        room = await alice.create("ops")
        alice_events, inbox = alice.events(), alice.messages()
        await bob.join("ops")
        await collect(alice_events, 1, lambda e: isinstance(e, e2echat.MemberValidated))
        bob_room = bob.get_room("ops")
        assert bob_room is not None
        await bob_room.send("before")
        assert [m.text for m in await collect(inbox, 1)] == ["before"]

        assert forwarder.blackhole() > 0
        await bob_room.send("while cut")  # node two takes it; node one never hears of it
        await collect(alice_events, 1, connected, seconds=20)
        assert alice.url == two.url
        assert [m.text for m in await collect(inbox, 1)] == ["while cut"]
        lost = await log.wait(lambda r: r.getMessage() == "bus_lost")
        assert lost.__dict__["fields"]["error"] == "TimeoutError"
        await log.wait(lambda r: r.getMessage() == "bus_restored")  # on a new connection
        await room.send("after")
        assert [m.text for m in await room.history()] == ["before", "while cut", "after"]
        await forwarder.close()  # the dead flows end: node one stops without waiting on them


async def test_a_node_whose_subscription_is_never_confirmed_subscribes_again(
    redis: RedisServer, tmp_path: Path
) -> None:
    """The route dies again while node one subscribes anew, after the connection opened
    and before Redis confirmed the SUBSCRIBE. Node one must give that connection up
    within the keepalive window and subscribe on a fresh one; waiting on it forever
    would keep the node refusing clients (503) long after Redis is reachable."""
    forwarder = Forwarder(redis.port)
    cut_url = f"redis://127.0.0.1:{await forwarder.start()}/0"
    window = msgspec.structs.replace(  # a keepalive window of 2 s
        node_config(cut_url, tmp_path / "one"), ping_interval_s=1.0, ping_timeout_s=1.0
    )
    async with watching("e2echat_server") as log, Relay(window):
        forwarder.cut_on = b"SUBSCRIBE"
        assert forwarder.blackhole() > 0
        await log.wait(lambda r: r.getMessage() == "bus_lost")
        await asyncio.wait_for(forwarder.unanswered.get(), 10)  # its next SUBSCRIBE, eaten
        forwarder.cut_on = None  # the route is back: only that connection stays dead
        await log.wait(lambda r: r.getMessage() == "bus_restored")
        await forwarder.close()
