"""Room messages, sync and history bounds; direct frames and the mailbox."""

from collections.abc import Awaitable, Callable

from e2echat_server import Relay, RelayConfig
from e2echat_server.store import Envelope, MemoryStore

from e2echat.protocol import (
    Ack,
    CreateRoom,
    DirectDelivery,
    DirectSend,
    Error,
    ErrorCode,
    JoinRoom,
    ListRooms,
    Message,
    Ok,
    OpenAccess,
    RoomList,
    RoomReply,
    Send,
    Sent,
    Sync,
    Synced,
)
from tests.server.wire import Identity, WireClient, login

Connect = Callable[[str], Awaitable[WireClient]]


async def room_of(*clients: WireClient) -> bytes:
    owner, *others = clients
    room = (await owner.request(CreateRoom(name="lobby", access=OpenAccess()), RoomReply)).room.id
    for other in others:
        await other.request(JoinRoom(name="lobby"), RoomReply)
    return room


async def test_three_parties_each_get_one_message_and_the_sender_sent(
    relay: Relay, connect: Connect
) -> None:
    alice, bob, carol = await connect("alice"), await connect("bob"), await connect("carol")
    room = await room_of(alice, bob, carol)
    for i in range(3):
        sent = await alice.request(Send(room=room, body=b"x%d" % i, id=f"s{i}"), Sent)
        assert (sent.id, sent.room, sent.seq) == (f"s{i}", room, i + 1)
    sent_by_bob = await bob.request(Send(room=room, body=b"reply"), Sent)
    for who in (bob, carol):
        seen = [await who.next_of(Message) for _ in range(3)]
        assert [(m.seq, m.body) for m in seen] == [(1, b"x0"), (2, b"x1"), (3, b"x2")]
        assert {m.sender for m in seen} == {alice.identity.key}  # type: ignore[union-attr]
    assert (await carol.next_of(Message)).seq == sent_by_bob.seq == 4
    assert (await alice.next_of(Message)).body == b"reply"  # the sender does not get its own
    await bob.quiet()
    assert (relay.metrics.messages_in, relay.metrics.messages_out) == (4, 8)


async def test_send_refusals(relay: Relay, connect: Connect) -> None:
    alice, bob = await connect("alice"), await connect("bob")
    room = await room_of(alice)
    assert (await bob.error(Send(room=room, body=b"x"))).code is ErrorCode.NOT_MEMBER
    assert (await bob.error(Send(room=b"n" * 16, body=b"x"))).code is ErrorCode.NO_SUCH_ROOM
    assert (await bob.error(Sync(room=room, after=0))).code is ErrorCode.NOT_MEMBER
    assert relay.directory.rooms[room].seq == 0


async def test_body_over_the_configured_limit_is_too_large() -> None:
    async with Relay(RelayConfig(port=0, memory=True, max_body=256)) as relay:
        alice = await login(relay.url, Identity("alice"))
        room = await room_of(alice)
        refusal = await alice.error(Send(room=room, body=b"x" * 257, id="big"))
        assert (refusal.code, refusal.id) == (ErrorCode.TOO_LARGE, "big")
        refusal = await alice.error(DirectSend(to=alice.identity.key, body=b"x" * 257))  # type: ignore[union-attr]
        assert refusal.code is ErrorCode.TOO_LARGE
        assert (await alice.request(Send(room=room, body=b"x" * 256), Sent)).seq == 1


async def test_sync_after_a_seq_in_order_with_limit(relay: Relay, connect: Connect) -> None:
    alice, bob = await connect("alice"), await connect("bob")
    room = await room_of(alice, bob)
    for i in range(5):
        await alice.request(Send(room=room, body=b"m%d" % i), Sent)
    late = await login(relay.url, bob.identity)  # type: ignore[arg-type]
    await late.send(Sync(room=room, after=2, limit=2, id="y"))
    assert [(await late.expect(Message)).seq for _ in range(2)] == [3, 4]
    synced = await late.expect(Synced)
    assert (synced.id, synced.room, synced.seq) == ("y", room, 5)  # the head: more to fetch
    await late.send(Sync(room=room, after=4))
    assert (await late.expect(Message)).body == b"m4"
    assert (await late.expect(Synced)).seq == 5
    await late.send(Sync(room=room, after=5))
    assert (await late.expect(Synced)).seq == 5


async def test_history_is_bounded_by_count_and_age() -> None:
    store = MemoryStore()
    async with Relay(
        RelayConfig(port=0, history_count=3, history_age_s=3600), store=store
    ) as relay:
        alice = await login(relay.url, Identity("alice"))
        room = await room_of(alice)
        await store.append(room, Envelope(1, 0, b"o" * 32, b"ancient"), keep=3)  # ts 1970
        relay.directory.rooms[room].seq = 1
        for i in range(4):
            await alice.request(Send(room=room, body=b"n%d" % i), Sent)
        await alice.send(Sync(room=room, after=0))
        assert [(await alice.expect(Message)).seq for _ in range(3)] == [3, 4, 5]
        assert (await alice.expect(Synced)).seq == 5


async def test_direct_goes_live_and_offline_waits_in_the_mailbox(relay: Relay) -> None:
    alice = await login(relay.url, Identity("alice"))
    bob_id = Identity("bob")
    bob = await login(relay.url, bob_id)
    sent = await alice.request(DirectSend(to=bob_id.key, body=b"live", id="d"), Sent)
    assert (sent.id, sent.room, sent.seq) == ("d", None, 1)
    live = await bob.expect(DirectDelivery)
    assert (live.sender, live.seq, live.body) == (alice.identity.key, 1, b"live")  # type: ignore[union-attr]
    await bob.request(Ack(mailbox=1), Ok)
    await bob.close()
    for i in range(3):
        await alice.request(DirectSend(to=bob_id.key, body=b"q%d" % i), Sent)
    bob = await login(relay.url, bob_id)
    assert bob.welcome is not None
    assert bob.welcome.mailbox == 3
    queued = [await bob.expect(DirectDelivery) for _ in range(3)]
    assert [(d.seq, d.body) for d in queued] == [(2, b"q0"), (3, b"q1"), (4, b"q2")]
    await bob.request(Ack(mailbox=3, id="a"), Ok)
    await bob.close()
    bob = await login(relay.url, bob_id)  # unacked entries come again: at least once
    assert bob.welcome is not None
    assert bob.welcome.mailbox == 1
    assert (await bob.expect(DirectDelivery)).body == b"q2"


async def test_mailbox_is_flushed_before_room_traffic(relay: Relay) -> None:
    alice, bob_id = await login(relay.url, Identity("alice")), Identity("bob")
    bob = await login(relay.url, bob_id)
    room = await room_of(alice, bob)
    await bob.close()
    await alice.request(DirectSend(to=bob_id.key, body=b"key share"), Sent)
    bob = await login(relay.url, bob_id)
    await alice.request(Send(room=room, body=b"after"), Sent)
    assert (await bob.next_of(DirectDelivery)).body == b"key share"
    assert (await bob.next_of(Message)).body == b"after"


async def test_mailbox_limits_and_unknown_recipients() -> None:
    async with Relay(RelayConfig(port=0, memory=True, mailbox_max=2)) as relay:
        alice, bob_id = await login(relay.url, Identity("alice")), Identity("bob")
        await (await login(relay.url, bob_id)).close()
        for _ in range(2):
            await alice.request(DirectSend(to=bob_id.key, body=b"x"), Sent)
        assert (
            await alice.error(DirectSend(to=bob_id.key, body=b"x"))
        ).code is ErrorCode.UNAVAILABLE
        unknown = DirectSend(to=Identity("ghost").key, body=b"x")
        assert (await alice.error(unknown)).code is ErrorCode.FORBIDDEN


async def test_pipelined_sends_keep_their_order_and_replies_stay_in_frame_order(
    relay: Relay, connect: Connect
) -> None:
    alice, bob = await connect("alice"), await connect("bob")
    room = await room_of(alice, bob)
    for i in range(20):  # no waiting between frames: the relay pipelines the writes
        await alice.send(Send(room=room, body=b"p%d" % i, id=f"s{i}"))
    await alice.send(Send(room=b"n" * 16, body=b"x", id="bad"))
    await alice.send(ListRooms(id="after"))
    replies: list[Sent | Error | RoomList] = []
    while len(replies) < 22:
        frame = await alice.recv()
        if isinstance(frame, Sent | Error | RoomList):  # skip pushes (member_joined)
            replies.append(frame)
    assert [r.id for r in replies] == [f"s{i}" for i in range(20)] + ["bad", "after"]
    assert [r.seq for r in replies[:20] if isinstance(r, Sent)] == list(range(1, 21))
    assert isinstance(replies[20], Error)
    assert [(await bob.next_of(Message)).body for _ in range(20)] == [b"p%d" % i for i in range(20)]


class PageSpy(MemoryStore):
    """Records how many entries each history and mailbox read asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: list[int] = []

    async def history(self, room: bytes, after: int, not_before: int, limit: int) -> list[Envelope]:
        self.reads.append(limit)
        return await super().history(room, after, not_before, limit)

    async def mailbox(self, key: bytes, after: int, limit: int) -> list[Envelope]:
        self.reads.append(limit)
        return await super().mailbox(key, after, limit)


async def test_sync_and_the_mailbox_flush_read_the_store_in_bounded_pages() -> None:
    store = PageSpy()
    async with Relay(RelayConfig(port=0, rate=1000, burst=1000), store=store) as relay:
        alice, bob_id = await login(relay.url, Identity("alice")), Identity("bob")
        await (await login(relay.url, bob_id)).close()
        room = await room_of(alice)
        for i in range(150):
            await alice.send(Send(room=room, body=b"h%d" % i))
            await alice.send(DirectSend(to=bob_id.key, body=b"d%d" % i))
        for _ in range(300):
            await alice.next_of(Sent)
        store.reads.clear()
        await alice.send(Sync(room=room, after=10, limit=130))
        assert [(await alice.expect(Message)).seq for _ in range(130)] == list(range(11, 141))
        assert (await alice.expect(Synced)).seq == 150
        assert store.reads == [64, 64, 2]
        store.reads.clear()
        bob = await login(relay.url, bob_id)
        delivered = [(await bob.expect(DirectDelivery)).body for _ in range(150)]
        assert delivered == [b"d%d" % i for i in range(150)]
        assert store.reads == [64, 64, 64]
