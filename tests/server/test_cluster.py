"""Several relays over one Redis: one chat, whichever relay each client is connected to."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from e2echat_server import Relay, RelayConfig, redis_broker
from e2echat_server.redis_broker import RedisBroker

from e2echat.protocol import (
    CloseCode,
    CreateRoom,
    Error,
    ErrorCode,
    JoinRoom,
    Lookup,
    Message,
    OpenAccess,
    Presence,
    RoomReply,
    Send,
    Sent,
    SummaryReply,
    Sync,
    Synced,
)
from tests.server.test_http import http_get
from tests.server.wire import Identity, WireClient, closed_with, login

# No relay dies here (test_cluster_process.py kills them), so a long keepalive window: a
# relay whose loop stalls under load must not be buried alive as a dead one mid-test.
PING_S = 5.0


def node_config(redis_url: str, data_dir: Path) -> RelayConfig:
    return RelayConfig(
        port=0,
        redis=redis_url,
        data_dir=data_dir,
        ping_interval_s=PING_S,
        ping_timeout_s=PING_S,
        rate=1000,
        burst=1000,
    )


@asynccontextmanager
async def relays(redis_url: str, tmp_path: Path, count: int = 2) -> AsyncIterator[list[Relay]]:
    nodes = [Relay(node_config(redis_url, tmp_path / f"node{i}")) for i in range(count)]
    for node in nodes:
        await node.start()
    try:
        yield nodes
    finally:
        for node in nodes:
            await node.close()


async def room_of_two(a: WireClient, b: WireClient, name: str = "lobby") -> bytes:
    reply = await a.request(CreateRoom(name=name, access=OpenAccess(), id="c"), RoomReply)
    await b.request(JoinRoom(name=name, id="j"), RoomReply)
    return reply.room.id


async def test_two_users_on_two_relays_chat(redis_url: str, tmp_path: Path) -> None:
    async with relays(redis_url, tmp_path) as (one, two):
        alice = await login(one.url, Identity("alice"))
        bob = await login(two.url, Identity("bob"))
        room = await room_of_two(alice, bob)
        sent = await alice.request(Send(room=room, body=b"hi bob", id="s1"), Sent)
        got = await bob.next_of(Message)
        assert (got.seq, got.sender, got.body) == (sent.seq, alice.identity.key, b"hi bob")  # type: ignore[union-attr]
        answer = await bob.request(Send(room=room, body=b"hi alice", id="s2"), Sent)
        assert answer.seq == sent.seq + 1  # one numbering, whichever relay took the send
        assert (await alice.next_of(Message)).body == b"hi alice"
        await bob.send(Sync(room=room, after=0, id="y"))
        history = [await bob.next_of(Message), await bob.next_of(Message)]
        assert [m.body for m in history] == [b"hi bob", b"hi alice"]
        assert (await bob.next_of(Synced)).seq == answer.seq


async def test_presence_crosses_relays(redis_url: str, tmp_path: Path) -> None:
    async with relays(redis_url, tmp_path) as (one, two):
        alice = await login(one.url, Identity("alice"))
        bob_id = Identity("bob")
        bob = await login(two.url, bob_id)
        await room_of_two(alice, bob)
        await bob.close()
        offline = await alice.next_of(Presence)
        assert (offline.key, offline.status) == (bob_id.key, "offline")
        bob = await login(two.url, bob_id)
        online = await alice.next_of(Presence)
        assert (online.key, online.status) == (bob_id.key, "online")
        # A relay started now learns who is online on the others.
        async with relays(redis_url, tmp_path / "late", count=1) as (three,):
            carol = await login(three.url, Identity("carol"))
            joined = await carol.request(JoinRoom(name="lobby", id="j"), RoomReply)
            statuses = {m.name: m.status for m in joined.room.members}
            assert statuses == {"alice": "online", "bob": "online", "carol": "online"}


async def test_a_room_created_on_two_relays_at_once_has_one_winner(
    redis_url: str, tmp_path: Path
) -> None:
    async with relays(redis_url, tmp_path) as (one, two):
        alice = await login(one.url, Identity("alice"))
        bob = await login(two.url, Identity("bob"))
        for round_ in range(5):
            name = f"race-{round_}"
            await alice.send(CreateRoom(name=name, access=OpenAccess(), id="a"))
            await bob.send(CreateRoom(name=name, access=OpenAccess(), id="b"))
            answers = [
                await alice.next_of((RoomReply, Error)),  # type: ignore[arg-type]
                await bob.next_of((RoomReply, Error)),  # type: ignore[arg-type]
            ]
            won = [a for a in answers if isinstance(a, RoomReply)]
            lost = [a for a in answers if isinstance(a, Error)]
            assert (len(won), len(lost)) == (1, 1), answers
            assert lost[0].code == ErrorCode.NAME_TAKEN
            seen = [await c.request(Lookup(name=name, id="l"), SummaryReply) for c in (alice, bob)]
            assert {s.room.id for s in seen} == {won[0].room.id}  # both relays agree
            assert all(s.room.member_count == 1 for s in seen)


async def test_many_senders_on_two_relays_get_one_gapless_numbering(
    redis_url: str, tmp_path: Path
) -> None:
    async with relays(redis_url, tmp_path) as (one, two):
        alice = await login(one.url, Identity("alice"))
        bob = await login(two.url, Identity("bob"))
        room = await room_of_two(alice, bob)
        for i in range(20):
            await alice.send(Send(room=room, body=b"a%d" % i, id=f"a{i}"))
            await bob.send(Send(room=room, body=b"b%d" % i, id=f"b{i}"))
        seqs = [(await c.next_of(Sent)).seq for c in (alice, bob) for _ in range(20)]
        assert sorted(seqs) == list(range(1, 41))


async def test_a_join_waits_for_a_room_created_on_another_relay_a_moment_ago(
    redis_url: str, tmp_path: Path
) -> None:
    async with relays(redis_url, tmp_path) as (one, two):
        broker = two.engine.broker
        assert isinstance(broker, RedisBroker)
        held: list[Any] = []
        receive = broker._receive

        async def slow_bus() -> None:  # relay two gets every notice 0.2 s late, in order
            while True:
                await asyncio.sleep(0.2)
                for data in held[:]:
                    held.remove(data)
                    receive(data)

        broker._receive = held.append  # type: ignore[method-assign]
        lagging = asyncio.create_task(slow_bus())
        try:
            alice, bob = (
                await login(one.url, Identity("alice")),
                await login(two.url, Identity("bob")),
            )
            await alice.request(CreateRoom(name="fresh", access=OpenAccess(), id="c"), RoomReply)
            assert "fresh" not in two.directory.by_name  # not there yet
            reply = await bob.request(JoinRoom(name="fresh", id="j"), RoomReply)
            assert reply.room.name == "fresh"
            await bob.send(JoinRoom(name="never", id="n"))
            missing = await bob.next_of(Error)
            assert missing.code == ErrorCode.NO_SUCH_ROOM  # after the wait, still refused
        finally:
            lagging.cancel()


async def test_a_join_by_name_on_a_relay_cut_off_from_the_bus_is_unavailable_not_refused(
    redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(redis_broker, "_CATCH_UP_S", 0.2)
    async with relays(redis_url, tmp_path) as (one, two):
        broker = two.engine.broker
        assert isinstance(broker, RedisBroker)
        alice = await login(one.url, Identity("alice"))
        bob = await login(two.url, Identity("bob"))
        broker._receive = lambda data: None  # type: ignore[method-assign]  # nothing arrives
        await alice.request(CreateRoom(name="fresh", access=OpenAccess(), id="c"), RoomReply)
        await bob.send(JoinRoom(name="fresh", id="j"))
        refused = await bob.next_of(Error)
        assert refused.code == ErrorCode.UNAVAILABLE  # it cannot tell, so it does not say "no"


async def test_one_identity_moving_between_relays_keeps_one_live_connection(
    redis_url: str, tmp_path: Path
) -> None:
    """A user who moves to a terminal connected to another relay of the cluster: the
    newest connection wins there too (4409 for the old one), and never looks offline."""
    async with relays(redis_url, tmp_path) as (one, two):
        alice_id = Identity("alice")
        first, bob = await login(one.url, alice_id), await login(one.url, Identity("bob"))
        room = await room_of_two(first, bob)
        await two.engine.broker.catch_up()  # two has applied the room and its members
        second = await login(two.url, alice_id)
        await second.request(Lookup(name="lobby", id="in"), SummaryReply)  # it is in its rooms
        await closed_with(first.conn, CloseCode.REPLACED)
        assert "replaced" in (first.conn.close_reason or "")
        await bob.request(Send(room=room, body=b"to the new place", id="s"), Sent)
        assert (await second.next_of(Message)).body == b"to the new place"
        await bob.request(Lookup(name="lobby", id="barrier"), SummaryReply)
        assert not [f for f in bob._stash if isinstance(f, Presence) and f.key == alice_id.key]
        assert one.directory.users[alice_id.key].status == "online"
        third = await login(one.url, alice_id)  # and back again: the second gives way
        await third.request(Lookup(name="lobby", id="in"), SummaryReply)
        await closed_with(second.conn, CloseCode.REPLACED)
        await bob.request(Send(room=room, body=b"back home", id="t"), Sent)
        assert (await third.next_of(Message)).body == b"back home"


def gauge(text: str, name: str) -> float:
    """The value of gauge ``name`` in a /metrics page."""
    (line,) = [line for line in text.splitlines() if line.startswith(f"{name} ")]
    return float(line.split()[1])


async def test_every_relay_counts_the_rooms_and_users_of_the_cluster(
    redis_url: str, tmp_path: Path
) -> None:
    """Rooms and users made on one relay come to the other by its notices; its gauges
    must count them too, or an operator's dashboard of node two shows an empty relay."""
    async with relays(redis_url, tmp_path) as (one, two):
        alice, bob = await login(one.url, Identity("alice")), await login(one.url, Identity("bob"))
        await room_of_two(alice, bob)
        await two.engine.broker.catch_up()  # two has applied the room and its users
        for relay in (one, two):
            _, _, body = await http_get(relay, "/metrics")
            page = body.decode()
            assert (gauge(page, "e2echat_rooms"), gauge(page, "e2echat_users")) == (1, 2)
