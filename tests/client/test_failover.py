"""Clients given several relay URLs: the first connection skips a dead node, and a
client whose node is killed (SIGKILL) resumes on another node of the cluster with every
message, none twice."""

import os
import random
from collections.abc import Iterator
from contextlib import AsyncExitStack
from pathlib import Path

import pytest
from e2echat_server import Relay

import e2echat
from e2echat.client.relays import RelayRotation, relay_urls
from tests.client.conftest import MakeClient, collect
from tests.redis_server import RedisServer, free_port
from tests.server.conftest import require_redis_server
from tests.server.test_cluster_process import node


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
        await collect(
            alice_events,
            1,
            lambda e: (
                isinstance(e, e2echat.ConnectionChanged)
                and e.state is e2echat.ConnectionState.CONNECTED
            ),
            seconds=20,
        )
        assert alice.url == url_two
        assert [m.text for m in await collect(inbox, 3)] == sent[3:]
        await room.send("after")
        await bob_room.send("last")
        assert [m.text for m in await collect(inbox, 1)] == ["last"]  # nothing twice before it
        assert [m.text for m in await room.history() if not m.own] == [*sent, "last"]
