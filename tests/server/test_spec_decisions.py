"""The points protocol.md decides for a second implementation, over real sockets: what a
relay answers to garbage before hello, an unknown room id, an out-of-range request, an
unsigned prekey rotation, a half-open upgrade, and what challenge announces."""

import asyncio
import base64
import contextlib
from collections.abc import AsyncIterator

import msgspec
import pytest
from e2echat_server.config import RelayConfig
from e2echat_server.relay import Relay

from e2echat.protocol import (
    SIGNAL_BURST,
    SIGNAL_RATE,
    BlobDownload,
    BlobUpload,
    Challenge,
    ClientFrame,
    CreateRoom,
    ErrorCode,
    LeaveRoom,
    LogAppend,
    LogRequest,
    MembersRequest,
    PrekeyUpdate,
    Retract,
    RoomReply,
    Send,
    SignalSend,
    Sync,
    Welcome,
)
from e2echat.protocol.frames import MembersList, OpenAccess, SignedPrekey
from tests.server.wire import TIMEOUT, Identity, WireClient, login, open_raw

UNKNOWN = b"\x5a" * 16


async def lobby(client: WireClient, name: str = "lobby") -> bytes:
    reply = await client.request(CreateRoom(id="c", name=name, access=OpenAccess()), RoomReply)
    return reply.room.id


async def test_challenge_announces_the_rates_a_client_paces_to() -> None:
    config = RelayConfig(port=0, memory=True, rate=12.5, burst=40)
    async with Relay(config) as relay:
        client = await open_raw(relay.url)
        limits = (await client.expect(Challenge)).limits
        assert (limits.rate, limits.burst) == (12.5, 40)
        assert (limits.signal_rate, limits.signal_burst) == (SIGNAL_RATE, SIGNAL_BURST)
        await client.close()


async def test_garbage_before_hello_is_bad_frame_and_hello_still_works(relay: Relay) -> None:
    client = await open_raw(relay.url)
    challenge = await client.expect(Challenge)
    for garbage in ("GET / HTTP/1.1", "[]", '{"type":"nope","id":"g1"}'):
        await client.send_raw(garbage)
        refusal = await client.error()
        assert refusal.code is ErrorCode.BAD_FRAME
    assert refusal.id == "g1"  # a readable id is echoed even on a bad frame
    await client.send(Identity("alice").hello(challenge))
    await client.expect(Welcome)


async def test_bad_frame_echoes_a_readable_id_only(relay: Relay) -> None:
    alice = await login(relay.url, Identity("alice"))
    await alice.send_json({"type": "sync", "id": "s1", "room": "AA==", "after": 0})
    refused = await alice.error()
    assert (refused.code, refused.id) == (ErrorCode.BAD_FRAME, "s1")
    for frame in ('{"type":"sync","id":5}', '{"type":"sync","id":""}', "{"):
        await alice.send_raw(frame)
        refused = await alice.error()
        assert (refused.code, refused.id) == (ErrorCode.BAD_FRAME, None)


@pytest.mark.parametrize(
    "frame",
    [
        Send(id="x", room=UNKNOWN, body=b"x"),
        Sync(id="x", room=UNKNOWN, after=0),
        MembersRequest(id="x", room=UNKNOWN),
        LeaveRoom(id="x", room=UNKNOWN),
        Retract(id="x", room=UNKNOWN, seq=1),
        LogRequest(id="x", room=UNKNOWN),
        LogAppend(id="x", room=UNKNOWN, entry=b"e" * 300),
        SignalSend(room=UNKNOWN, body=b"x"),
        BlobUpload(id="x", room=UNKNOWN, size=10),
        BlobDownload(id="x", room=UNKNOWN, blob=b"b" * 16),
    ],
    ids=lambda frame: type(frame).__name__,
)
async def test_an_unknown_room_id_is_no_such_room_and_a_foreign_one_not_member(
    relay: Relay, frame: ClientFrame
) -> None:
    alice, bob = await login(relay.url, Identity("alice")), await login(relay.url, Identity("bob"))
    refused = await bob.error(frame)
    assert refused.code is ErrorCode.NO_SUCH_ROOM
    room = await lobby(alice)
    refused = await bob.error(msgspec.structs.replace(frame, room=room))  # type: ignore[type-var]
    assert refused.code is ErrorCode.NOT_MEMBER


async def test_max_members_above_the_relays_limit_is_refused_not_clamped() -> None:
    async with Relay(RelayConfig(port=0, memory=True, max_members=50)) as relay:
        alice = await login(relay.url, Identity("alice"))
        refused = await alice.error(
            CreateRoom(id="c", name="big", access=OpenAccess(), max_members=51)
        )
        assert refused.code is ErrorCode.BAD_FRAME
        assert "big" not in relay.directory.by_name
        made = await alice.request(
            CreateRoom(id="d", name="big", access=OpenAccess(), max_members=50), RoomReply
        )
        assert made.room.max_members == 50


async def test_sync_limit_is_one_to_a_thousand(relay: Relay) -> None:
    alice = await login(relay.url, Identity("alice"))
    room = await lobby(alice)
    for limit in (0, 1001):
        await alice.send_json(
            {
                "type": "sync",
                "id": "s",
                "room": base64.b64encode(room).decode(),
                "after": 0,
                "limit": limit,
            }
        )
        assert (await alice.error()).code is ErrorCode.BAD_FRAME


async def test_a_prekey_rotation_is_verified_and_a_bad_one_changes_nothing(
    relay: Relay,
) -> None:
    identity = Identity("alice")
    alice = await login(relay.url, identity)
    room = await lobby(alice)
    before = relay.directory.users[identity.key].prekey
    good = identity.prekey(9)
    unsigned = SignedPrekey(id=good.id, key=good.key, sig=bytes(64))
    refused = await alice.error(PrekeyUpdate(id="p", prekey=unsigned))
    assert (refused.code, refused.id) == (ErrorCode.BAD_FRAME, "p")
    assert relay.directory.users[identity.key].prekey == before
    other = SignedPrekey(id=good.id, key=good.key, sig=Identity("mallory").prekey(9).sig)
    assert (await alice.error(PrekeyUpdate(id="q", prekey=other))).code is ErrorCode.BAD_FRAME
    members = await alice.request(MembersRequest(id="m", room=room), MembersList)
    assert members.members[0].prekey == before


@pytest.fixture
async def impatient_relay() -> AsyncIterator[Relay]:
    async with Relay(RelayConfig(port=0, memory=True, handshake_timeout_s=0.3)) as running:
        yield running


async def test_an_upgrade_not_completed_in_the_handshake_time_is_dropped(
    impatient_relay: Relay,
) -> None:
    """A connection that opens TCP and never finishes its HTTP upgrade holds nothing past
    the handshake timeout: the relay closes it without a response."""
    reader, writer = await asyncio.open_connection("127.0.0.1", impatient_relay.port)
    with contextlib.suppress(ConnectionError):  # the relay may have closed already
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n")  # the request never ends
        await writer.drain()
    try:
        data = await asyncio.wait_for(reader.read(), TIMEOUT)
    except ConnectionResetError:
        data = b""
    assert data == b""  # closed, no HTTP response
    writer.close()
