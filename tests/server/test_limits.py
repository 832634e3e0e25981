"""Abuse limits: rate, persistent abuse, per-IP connections, frame sizes, slow consumers."""

import asyncio
import socket

from e2echat_server import Relay, RelayConfig
from websockets.asyncio.client import connect
from websockets.typing import Subprotocol

from e2echat.protocol import (
    SUBPROTOCOL,
    Challenge,
    CloseCode,
    CreateRoom,
    ErrorCode,
    JoinRoom,
    ListRooms,
    Message,
    OpenAccess,
    RoomList,
    RoomReply,
    Send,
    Sent,
    Welcome,
)
from tests.server.wire import Identity, WireClient, closed_with, login, open_raw


async def test_rate_limit_refuses_then_closes_4429() -> None:
    async with Relay(RelayConfig(port=0, memory=True, rate=1, burst=5)) as relay:
        alice = await login(relay.url, Identity("alice"))  # hello took one token of five
        for i in range(4):
            await alice.send(ListRooms(id=f"ok{i}"))
        for i in range(5):
            await alice.send(ListRooms(id=f"no{i}"))
        replies = [await alice.recv() for _ in range(9)]
        assert [type(r).__name__ for r in replies] == ["RoomList"] * 4 + ["Error"] * 5
        assert [(r.code, r.id) for r in replies[4:]] == [  # type: ignore[union-attr]
            (ErrorCode.RATE_LIMITED, f"no{i}") for i in range(5)
        ]
        assert relay.directory.users  # refused frames changed nothing, the session is up
        await alice.send(ListRooms())  # a sixth refusal in a row: persistent abuse
        await closed_with(alice.conn, CloseCode.RATE_LIMIT)


async def test_connections_per_ip_are_capped() -> None:
    async with Relay(RelayConfig(port=0, memory=True, max_conn_per_ip=2)) as relay:
        first, second = await open_raw(relay.url), await open_raw(relay.url)
        third = await open_raw(relay.url)
        await closed_with(third.conn, CloseCode.POLICY)
        await first.expect(Challenge)
        await second.expect(Challenge)
        await first.close()
        await closed_with(first.conn, 1000)
        fourth = await open_raw(relay.url)
        await fourth.expect(Challenge)


async def test_oversize_frames(relay: Relay) -> None:
    alice = await login(relay.url, Identity("alice"))
    await alice.send_raw('{"type":"list_rooms","id":"big","pad":"' + "x" * 70_000 + '"}')
    refusal = await alice.error()
    assert (refusal.code, refusal.id) == (ErrorCode.TOO_LARGE, "big")
    assert (await alice.request(ListRooms(), RoomList)).rooms == []
    await alice.send_raw("x" * (4 * 65536 + 1))
    await closed_with(alice.conn, CloseCode.TOO_LARGE)


async def test_unread_input_per_connection_is_bounded(relay: Relay) -> None:
    alice = await login(relay.url, Identity("alice"))
    assert alice.identity is not None
    (conn,) = relay.engine.broker.connections.of(alice.identity.key)
    # websockets stops reading the socket past this many unread frames of at most
    # 4 x max_frame each: 1 MiB per connection, not the library's default 16 frames (4 MiB).
    assert conn.recv_messages.high == 4
    assert conn.protocol.max_message_size == 4 * relay.config.max_frame


async def test_binary_frames_are_bad_frames(relay: Relay) -> None:
    alice = await login(relay.url, Identity("alice"))
    await alice.send_raw(b'{"type":"list_rooms"}')
    assert (await alice.error()).code is ErrorCode.BAD_FRAME
    assert (await alice.request(ListRooms(), RoomList)).rooms == []


async def stalled_client(url: str) -> WireClient:
    """A client whose socket buffers are tiny and which never reads."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    host, port = url.removeprefix("ws://").rstrip("/").rsplit(":", 1)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
    conn = await connect(
        url, sock=sock, subprotocols=[Subprotocol(SUBPROTOCOL)], compression=None, max_queue=1
    )
    return WireClient(conn, None)


async def test_slow_consumer_is_dropped_and_the_room_goes_on() -> None:
    config = RelayConfig(
        port=0,
        memory=True,
        rate=100_000,
        burst=100_000,
        max_frame=16384,
        max_body=8192,
        send_buffer=16384,
    )
    async with Relay(config) as relay:
        alice, bob = (
            await login(relay.url, Identity("alice")),
            await login(relay.url, Identity("bob")),
        )
        room = (
            await alice.request(CreateRoom(name="lobby", access=OpenAccess()), RoomReply)
        ).room.id
        await bob.request(JoinRoom(name="lobby"), RoomReply)
        slow = await stalled_client(relay.url)
        slow_id = Identity("slow")
        slow.challenge = await slow.expect(Challenge)
        await slow.send(slow_id.hello(slow.challenge))
        await slow.next_of(Welcome)
        await slow.request(JoinRoom(name="lobby"), RoomReply)
        body = b"x" * 8192
        sent = 0
        while relay.metrics.slow_consumers == 0 and sent < 3000:
            await alice.request(Send(room=room, body=body), Sent)
            sent += 1
            assert (await bob.next_of(Message)).seq == sent  # bob keeps up, undisturbed
        assert relay.metrics.slow_consumers == 1
        assert (await alice.request(Send(room=room, body=b"after"), Sent)).seq == sent + 1
        assert (await bob.next_of(Message)).body == b"after"
