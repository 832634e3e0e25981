"""The connection's writer: what is posted while the pacer holds it back.

Steps post their frames and go on; the writer sends them in order when the pacer has a
token, and the directs frames that piled up meanwhile go as fewer frames (the outbox
rebatches them). First with a stand-in socket and a stand-in rebatch, then a secret
room's owner validating joins one after another while its pacer holds every frame.
"""

import asyncio
import functools
from collections.abc import AsyncIterator
from typing import cast

import pytest
from e2echat_server import Relay
from websockets.asyncio.client import ClientConnection

from e2echat.client.connection import Connection
from e2echat.client.pacing import TokenBucket
from e2echat.protocol import (
    Ack,
    ClientFrame,
    DirectItem,
    DirectSend,
    DirectsSend,
    Send,
    decode_client_frame,
)
from tests.client.conftest import MakeClient, collect, validated
from tests.client.proxy import evil_proxy

ROOM = b"R" * 16


class Socket:
    """Records what the writer sends; a message (``send``) frame waits for ``open``."""

    def __init__(self) -> None:
        self.sent: list[ClientFrame] = []
        self.open = asyncio.Event()
        self.open.set()

    async def send(self, message: str, text: bool = True) -> None:
        frame = decode_client_frame(message)
        if isinstance(frame, Send):
            await self.open.wait()
        self.sent.append(frame)

    async def close(self, *_: object) -> None:
        pass


class Hold:
    """Holds back a pacer's tokens while ``on`` (the writer looks again every 10 ms)."""

    def __init__(self, pacer: TokenBucket, monkeypatch: pytest.MonkeyPatch) -> None:
        self.on = True
        real = pacer.wait
        monkeypatch.setattr(
            pacer, "wait", lambda now, cost=1.0: 0.01 if self.on else real(now, cost)
        )


def direct(n: int) -> DirectSend:
    return DirectSend(to=bytes([n]) * 32, body=b"share %d" % n, id=f"d{n}")


def message(n: int) -> Send:
    return Send(room=ROOM, body=b"message %d" % n, id=f"o{n}")


async def merge(frames: list[ClientFrame]) -> list[ClientFrame]:
    """A stand-in for the outbox's rebatch: every direct in one frame."""
    items = [
        DirectItem(to=f.to, body=f.body) if isinstance(f, DirectSend) else item
        for f in frames
        for item in (f.items if isinstance(f, DirectsSend) else [None])
    ]
    return [DirectsSend(items=[i for i in items if i is not None], id="b1")]


@pytest.fixture
async def held(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[Connection, Socket, Hold]]:
    """A link on a stand-in socket whose pacer holds every frame until told."""
    socket = Socket()
    pacer = TokenBucket(rate=1000.0, burst=1000)
    link = Connection(cast(ClientConnection, socket), pacer)
    link.coalesce = merge
    yield link, socket, Hold(pacer, monkeypatch)
    await link.stop_writing()


async def test_directs_posted_while_held_go_as_one_frame_and_messages_keep_their_place(
    held: tuple[Connection, Socket, Hold],
) -> None:
    link, socket, hold = held
    for frames in (
        [message(1)],
        [direct(1)],
        [message(2)],
        [direct(2)],
        [Ack(mailbox=3)],
        [direct(3)],
    ):
        link.post(frames)
    await asyncio.sleep(0)
    assert socket.sent == []
    hold.on = False
    await link.drained()
    batch = DirectsSend(
        items=[DirectItem(to=d.to, body=d.body) for d in map(direct, (1, 2, 3))], id="b1"
    )
    assert socket.sent == [message(1), batch, message(2), Ack(mailbox=3)]


async def test_who_waits_for_frames_is_answered_once_they_are_written(
    held: tuple[Connection, Socket, Hold],
) -> None:
    """A send whose frame was merged returns once the merged frame is written; a drain
    that waited for a direct pulled ahead waits for the frames that were before it."""
    link, socket, hold = held
    socket.open.clear()
    link.post([direct(1)])
    sending = asyncio.ensure_future(link.send([direct(2)]))
    await asyncio.sleep(0)  # it posts
    link.post([message(1), direct(3)])
    draining = asyncio.ensure_future(link.drained())
    await asyncio.sleep(0)
    hold.on = False
    await asyncio.wait_for(sending, 5)
    assert [type(f) for f in socket.sent] == [DirectsSend]
    assert not draining.done()  # the message is still being written
    socket.open.set()
    await asyncio.wait_for(draining, 5)
    assert [type(f) for f in socket.sent] == [DirectsSend, Send]


async def test_a_stopped_writer_drops_what_waits_and_answers_who_waits(
    held: tuple[Connection, Socket, Hold],
) -> None:
    link, socket, _hold = held
    sending = asyncio.ensure_future(link.send([message(1), direct(1)]))
    await asyncio.sleep(0)
    await link.stop_writing()
    await asyncio.wait_for(sending, 5)
    link.post([message(2)])
    await link.drained()
    assert socket.sent == []


async def test_joins_validated_while_the_owner_is_paced_cost_it_one_frame(
    make_client: MakeClient, relay: Relay, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The owner of a secret room validates joins one after another (each joiner waits
    for the last one's validation, as a queue of newcomers would) while its pacer holds
    every frame: each validation is published at once, and all their shares then go
    in one `directs` frame, before the owner's next message."""
    joins = 5
    async with evil_proxy(relay.url) as owner_proxy:
        owner = await make_client("owner", owner_proxy.url)
        room = await owner.create("big", secret=True)
        await room.send("before")
        events = owner.events()
        hold = Hold(owner._driver._pacer, monkeypatch)
        since = len(owner_proxy.sent)
        joiners = []
        for i in range(joins):
            joiner = await make_client(f"joiner{i}")
            await joiner.join("big", invite=room.invite())
            await collect(events, 1, functools.partial(validated, name=f"joiner{i}"))
            joiners.append(joiner)
        inboxes = [joiner.messages() for joiner in joiners]
        hold.on = False
        await room.send("after")
        for inbox in inboxes:
            assert [m.text for m in await collect(inbox, 1)] == ["after"]
        keys = {joiner.key for joiner in joiners}
        sent = owner_proxy.sent[since:]
        carrying = [i for i, frame in enumerate(sent) if keys & set(recipients(frame))]
        assert len(carrying) == 1 < joins
        (at,) = carrying
        assert isinstance(sent[at], DirectsSend)
        assert keys <= set(recipients(sent[at]))
        (after,) = [i for i, f in enumerate(sent) if isinstance(f, Send)]
        assert at < after  # the message goes after the shares


def recipients(frame: ClientFrame) -> list[bytes]:
    if isinstance(frame, DirectSend):
        return [frame.to]
    if isinstance(frame, DirectsSend):
        return [item.to for item in frame.items]
    return []


async def test_the_writer_leaves_a_token_in_the_pacer_unless_the_burst_is_one() -> None:
    """With frames coming steadily, our bucket never runs dry: the relay's, a fraction
    behind when a frame waited in its socket, is then not dry either."""
    socket = Socket()
    pacer = TokenBucket(rate=1e-9, burst=3)  # no refill within the test
    link = Connection(cast(ClientConnection, socket), pacer)
    await link.send([message(1)])
    await link.send([message(2)])
    link.post([message(3)])
    for _ in range(3):
        await asyncio.sleep(0)
    await link.stop_writing()
    assert socket.sent == [message(1), message(2)]
    assert pacer.tokens == pytest.approx(1)
    single = Connection(cast(ClientConnection, socket), TokenBucket(rate=1000.0, burst=1))
    await asyncio.wait_for(single.send([message(4), message(5)]), 5)
    await single.stop_writing()
    assert socket.sent[2:] == [message(4), message(5)]


async def test_a_frame_is_overtaken_by_one_run_of_directs_at_most(
    held: tuple[Connection, Socket, Hold],
) -> None:
    """Directs that keep coming (here one more each time the writer asks for a rebatch
    that cannot merge them) do not hold a message back: it goes after the directs that
    overtook it once, and those that came later wait behind it."""
    link, socket, hold = held
    asked = 0

    async def unmerged(frames: list[ClientFrame]) -> list[ClientFrame]:
        nonlocal asked
        asked += 1
        if asked < 50:
            link.post([direct(100 + asked)])
        return frames

    link.coalesce = unmerged
    link.post([direct(1), message(1), direct(2)])
    hold.on = False
    await asyncio.wait_for(link.drained(), 5)
    assert socket.sent[:3] == [direct(1), direct(2), message(1)]


async def test_the_writer_leaves_slack_in_the_share_budget() -> None:
    """A second batch waits until the share bucket holds its envelopes and one frame's
    time of envelopes more (at 30 frames and 500 envelopes a second: about 17)."""
    socket = Socket()
    link = Connection(cast(ClientConnection, socket), TokenBucket(rate=30.0, burst=60))
    link.share_pacer = TokenBucket(rate=500.0, burst=40)

    def batch(n: int) -> DirectsSend:
        return DirectsSend(items=[DirectItem(to=bytes([n, i]) * 16, body=b"s") for i in range(20)])

    await link.send([batch(1)])
    link.post([batch(2)])
    for _ in range(3):
        await asyncio.sleep(0)
    assert len(socket.sent) == 1  # 20 left: not 20 + 16.7
    await asyncio.wait_for(link.drained(), 5)
    assert socket.sent == [batch(1), batch(2)]
    assert link.share_pacer.tokens < 20
    await link.stop_writing()
