"""`retract` (a sender drops its stored message) and `signal` (ephemeral, never stored)."""

import base64
from collections.abc import Awaitable, Callable

from e2echat_server import Relay

from e2echat.protocol import (
    MAX_SIGNAL_BODY,
    SIGNAL_BURST,
    CreateRoom,
    ErrorCode,
    JoinRoom,
    MembersList,
    MembersRequest,
    Message,
    Ok,
    OpenAccess,
    Retract,
    RoomReply,
    Send,
    Sent,
    Signal,
    SignalSend,
    Sync,
    Synced,
)
from tests.server.wire import WireClient

Connect = Callable[[str], Awaitable[WireClient]]


async def room_of(*clients: WireClient) -> bytes:
    owner, *others = clients
    room = (await owner.request(CreateRoom(name="lobby", access=OpenAccess()), RoomReply)).room.id
    for other in others:
        await other.request(JoinRoom(name="lobby"), RoomReply)
    return room


async def synced_seqs(client: WireClient, room: bytes) -> list[int]:
    await client.send(Sync(room=room, after=0, id="sync"))
    seqs = []
    while not isinstance(frame := await client.next_of((Message, Synced)), Synced):  # type: ignore[arg-type]
        seqs.append(frame.seq)
    return seqs


async def test_only_the_sender_retracts_and_the_body_is_no_longer_served(
    relay: Relay, connect: Connect
) -> None:
    alice, bob, carol = await connect("alice"), await connect("bob"), await connect("carol")
    room = await room_of(alice, bob)
    first = await alice.request(Send(room=room, body=b"oops"), Sent)
    await alice.request(Send(room=room, body=b"fine"), Sent)
    assert [(await bob.next_of(Message)).seq for _ in range(2)] == [1, 2]  # live
    refusal = await bob.error(Retract(room=room, seq=first.seq, id="r1"))
    assert (refusal.code, refusal.id) == (ErrorCode.FORBIDDEN, "r1")
    assert (await carol.error(Retract(room=room, seq=first.seq))).code is ErrorCode.NOT_MEMBER
    assert await synced_seqs(bob, room) == [1, 2]
    assert (await alice.request(Retract(room=room, seq=first.seq, id="r2"), Ok)).id == "r2"
    await alice.request(Retract(room=room, seq=first.seq), Ok)  # again: nothing left, fine
    assert await synced_seqs(bob, room) == [2]
    assert relay.directory.rooms[room].seq == 2


async def test_signals_reach_live_members_only_and_are_never_stored(
    relay: Relay, connect: Connect
) -> None:
    alice, bob, carol = await connect("alice"), await connect("bob"), await connect("carol")
    room = await room_of(alice, bob)
    await alice.send(SignalSend(room=room, body=b"typing"))
    signal = await bob.next_of(Signal)
    assert (signal.room, signal.sender, signal.body) == (room, alice.identity.key, b"typing")  # type: ignore[union-attr]
    assert await synced_seqs(bob, room) == []
    await carol.request(JoinRoom(name="lobby"), RoomReply)
    assert await synced_seqs(carol, room) == []
    await carol.send(SignalSend(room=b"n" * 16, body=b"x"))
    assert (await carol.error()).code is ErrorCode.NO_SUCH_ROOM
    oversize = base64.b64encode(b"x" * (MAX_SIGNAL_BODY + 1)).decode()
    await carol.send_json(
        {"type": "signal", "room": base64.b64encode(room).decode(), "body": oversize}
    )
    assert (await carol.error()).code is ErrorCode.TOO_LARGE
    # The sender hears nothing back: a barrier request answered proves it.
    await alice.request(MembersRequest(room=room, id="barrier"), MembersList)
    assert not [f for f in alice._stash if isinstance(f, Signal | Ok)]


async def test_signals_over_the_budget_are_dropped(relay: Relay, connect: Connect) -> None:
    alice, bob = await connect("alice"), await connect("bob")
    room = await room_of(alice, bob)
    for i in range(SIGNAL_BURST + 5):
        await alice.send(SignalSend(room=room, body=b"%d" % i))
    await alice.send(Send(room=room, body=b"after", id="barrier"))
    frames = []
    while not isinstance(frame := await bob.next_of((Signal, Message)), Message):  # type: ignore[arg-type]
        frames.append(frame.body)
    # The bucket refills at SIGNAL_RATE a second while the frames are read: a few more.
    assert SIGNAL_BURST <= len(frames) < SIGNAL_BURST + 5
    assert frames == [b"%d" % i for i in range(len(frames))]
