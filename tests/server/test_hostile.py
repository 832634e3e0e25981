"""What a hostile client found, and what the relay now does (docs/protocol.md section 8)."""

import json

from e2echat_server import Relay, RelayConfig
from websockets.exceptions import ConnectionClosed

from e2echat.protocol import (
    MAX_BODY,
    Challenge,
    CloseCode,
    CreateRoom,
    DirectSend,
    Error,
    ErrorCode,
    JoinRoom,
    ListRooms,
    OpenAccess,
    RoomList,
    RoomReply,
    Send,
    Sent,
    Sync,
    Welcome,
)
from tests.server.test_identities import settled
from tests.server.test_limits import stalled_client
from tests.server.wire import TIMEOUT, Identity, WireClient, closed_with, login


def nested(depth: int) -> str:
    return '{"x":' + "[" * depth + "]" * depth + ',"type":"list_rooms","id":"deep"}'


async def test_deeply_nested_frames_are_bad_frames_and_keep_the_connection(relay: Relay) -> None:
    alice = await login(relay.url, Identity("alice"))
    for depth in (1000, 30_000):  # 2 KB, and 60 KB (within max_frame)
        await alice.send_raw(nested(depth))
        refusal = await alice.error()
        assert (refusal.code, refusal.message) == (
            ErrorCode.BAD_FRAME,
            "Frame rejected: it is nested too deeply.",
        )
    assert (await alice.request(ListRooms(), RoomList)).rooms == []


async def test_a_sync_to_a_client_that_never_reads_is_dropped_in_bounded_time() -> None:
    config = RelayConfig(
        port=0,
        memory=True,
        rate=100_000,
        burst=100_000,
        send_timeout_s=0.5,
    )
    async with Relay(config) as relay:
        alice = await login(relay.url, Identity("alice"))
        room = (
            await alice.request(CreateRoom(name="lobby", access=OpenAccess()), RoomReply)
        ).room.id
        # 7 MB of history: more than the kernel buffers of both sockets (4 MiB at most).
        for _ in range(150):
            await alice.send(Send(room=room, body=b"x" * MAX_BODY))
        for _ in range(150):
            await alice.next_of(Sent)
        slow = await stalled_client(relay.url)
        slow.challenge = await slow.expect(Challenge)
        await slow.send(Identity("slow").hello(slow.challenge))
        await slow.next_of(Welcome)
        await slow.request(JoinRoom(name="lobby"), RoomReply)
        await slow.send(Sync(room=room, after=0, limit=1000))  # ...and never reads again
        await settled(relay, still_open=1)  # only alice's session is left
        assert relay.metrics.slow_consumers == 1
        assert (await alice.request(ListRooms(), RoomList)).rooms  # nobody else waited


async def flood(client: WireClient, room: bytes, frames: int) -> None:
    for _ in range(frames):
        await client.send(Send(room=room, body=b"spam"))


async def test_accepted_sends_are_acknowledged_before_the_4429_close() -> None:
    config = RelayConfig(port=0, memory=True, rate=1, burst=8)
    async with Relay(config) as relay:
        spammer = await login(relay.url, Identity("spammer"))
        room = (
            await spammer.request(CreateRoom(name="lobby", access=OpenAccess()), RoomReply)
        ).room.id
        await flood(spammer, room, 40)
        received = []
        try:
            while True:
                received.append(await spammer.recv(TIMEOUT))
        except ConnectionClosed:
            pass
        assert spammer.conn.close_code == CloseCode.RATE_LIMIT
        accepted = relay.directory.rooms[room].seq
        assert accepted >= 5
        assert [f.seq for f in received if isinstance(f, Sent)] == list(range(1, accepted + 1))
        assert all(f.code is ErrorCode.RATE_LIMITED for f in received if isinstance(f, Error))


async def test_a_closed_abuser_that_does_not_answer_the_close_is_released_promptly() -> None:
    config = RelayConfig(port=0, memory=True, rate=1, burst=8)
    async with Relay(config) as relay:
        spammer = await stalled_client(relay.url)
        spammer.challenge = await spammer.expect(Challenge)
        await spammer.send(Identity("spammer").hello(spammer.challenge))
        await spammer.next_of(Welcome)
        room = (
            await spammer.request(CreateRoom(name="lobby", access=OpenAccess()), RoomReply)
        ).room.id
        await flood(spammer, room, 40)  # and it never reads the close frame
        await settled(relay, still_open=0)  # within TIMEOUT, not after a 10 s close wait
        assert relay.sessions.per_ip == {}


async def test_invalid_utf8_in_a_text_frame_closes_1007(relay: Relay) -> None:
    alice = await login(relay.url, Identity("alice"))
    await alice.conn.send(b'{"type":"list_rooms","id":"\xff"}', text=True)
    await closed_with(alice.conn, CloseCode.INVALID_DATA)


async def test_relay_frames_omit_absent_fields_instead_of_null(relay: Relay) -> None:
    alice, bob_id = await login(relay.url, Identity("alice")), Identity("bob")
    await (await login(relay.url, bob_id)).close()
    await alice.send_raw("not json")
    error = json.loads(await alice.conn.recv())
    assert error["type"] == "error"
    assert "id" not in error  # the frame had no readable id
    await alice.send(DirectSend(id="d", to=bob_id.key, body=b"hi"))
    sent = json.loads(await alice.conn.recv())
    assert (sent["type"], sent["id"]) == ("sent", "d")
    assert "room" not in sent  # a direct is in no room
    assert all(value is not None for value in sent.values())
