"""The shell under pressure: hostile frames, slow consumers, cancellation, close()."""

import asyncio
import contextlib
import gc
import logging
import weakref
from collections.abc import AsyncIterator

import msgspec
import pytest
from e2echat_server import Relay

import e2echat
from e2echat.client.pubsub import Hub
from e2echat.protocol import Message, RelayFrame, Sent
from tests.client.conftest import EVENT_TIMEOUT, MakeClient, collect, validated
from tests.client.proxy import EvilProxy, evil_proxy

CONNECTED = e2echat.ConnectionState.CONNECTED


@pytest.fixture
async def proxy(relay: Relay) -> AsyncIterator[EvilProxy]:
    async with evil_proxy(relay.url) as running:
        yield running


async def test_a_slow_subscriber_keeps_the_newest_backlog_and_counts_the_rest() -> None:
    hub: Hub[int] = Hub(backlog=3)
    slow = hub.subscribe()
    for i in range(5):
        hub.publish(i)
    hub.close()
    assert [i async for i in slow] == [2, 3, 4]
    assert slow.dropped == 2


async def test_an_unbounded_subscriber_keeps_everything() -> None:
    """``messages(bounded=False)``: for a reader that queues items itself (the TUI)."""
    hub: Hub[int] = Hub(backlog=3)
    everything, bounded = hub.subscribe(bounded=False), hub.subscribe()
    for i in range(5):
        hub.publish(i)
    hub.close()
    assert [i async for i in everything] == [0, 1, 2, 3, 4]
    assert everything.dropped == 0
    assert [i async for i in bounded] == [2, 3, 4]


async def test_an_abandoned_or_closed_subscription_is_released() -> None:
    """``chat.messages()`` called and then dropped (or a loop left by ``break``) must not
    keep queueing every later message forever."""
    hub: Hub[int] = Hub()
    abandoned = weakref.ref(hub.subscribe())
    gc.collect()
    assert abandoned() is None
    kept, closed = hub.subscribe(), hub.subscribe()
    hub.publish(1)
    await closed.aclose()
    hub.publish(2)
    assert [i async for i in closed] == []
    hub.close()
    assert [i async for i in kept] == [1, 2]
    assert kept.dropped == 0


async def test_undecodable_and_hostile_frames_are_logged_and_ignored(
    make_client: MakeClient, proxy: EvilProxy, caplog: pytest.LogCaptureFixture
) -> None:
    alice = await make_client("alice")
    bob = await make_client("bob", proxy.url)
    alice_events = alice.events()
    room = await alice.create("den")
    bob_room = await bob.join("den")
    await collect(alice_events, 1, lambda e: validated(e, "bob"))
    inbox = bob.messages()
    with caplog.at_level(logging.WARNING, logger="e2echat"):
        await proxy.inject_raw('{"t": "from_the_future", "x": 1}')
        await proxy.inject_raw("not json at all \x00")
        await proxy.inject(Sent(room=bob_room.id, seq=1, ts=0, id="o" + "9" * 40))
        await room.send("still here")
        assert [m.text for m in await collect(inbox, 1)] == ["still here"]
    assert proxy.accepted == 1  # never reconnected
    assert bob.state is e2echat.ConnectionState.CONNECTED
    refused = [r for r in caplog.records if "refuses" in r.getMessage()]
    assert len(refused) == 2
    assert all(r.levelno == logging.WARNING for r in refused)


async def test_a_cancelled_send_still_goes_out_in_order(make_client: MakeClient) -> None:
    """The message is in the outbox once ``send`` started: cancelling the caller must
    not strand it (it would wait, unsent, until the next reconnect)."""
    alice = await make_client("alice")
    bob = await make_client("bob")
    alice_events = alice.events()
    room = await alice.create("c")
    await bob.join("c")
    await collect(alice_events, 1, lambda e: validated(e, "bob"))
    inbox = bob.messages()
    task = asyncio.create_task(room.send("sent anyway"))
    await asyncio.sleep(0)  # let it start: it is now inside the engine
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await room.send("after")
    assert [m.text for m in await collect(inbox, 2)] == ["sent anyway", "after"]


def _library_tasks() -> list[str]:
    names = [getattr(t.get_coro(), "__qualname__", "") for t in asyncio.all_tasks()]
    return [n for n in names if n.startswith(("Connection.", "Client."))]


async def test_close_leaves_no_task_behind(make_client: MakeClient) -> None:
    alice = await make_client("alice")

    @alice.on_message
    async def ignore(message: e2echat.Message) -> None:
        del message

    await alice.create("tidy")
    assert repr(alice) == f"Client(name='alice', url={alice.url!r}, state=connected)"
    assert _library_tasks() != []
    await alice.close()
    assert _library_tasks() == []


async def test_a_handler_may_close_the_client(make_client: MakeClient) -> None:
    """A bot's "quit" command: ``close()`` from inside a handler ends ``run_forever``."""
    alice = await make_client("alice")
    bot = await make_client("bot")
    room = await alice.create("ctl")
    await bot.join("ctl")
    seen: list[str] = []

    @bot.on_message
    async def command(message: e2echat.Message) -> None:
        seen.append(message.text)
        if message.text == "quit":
            await bot.close()

    await room.send("quit")
    await asyncio.wait_for(bot.run_forever(), 10)
    assert seen == ["quit"]
    assert bot.state is e2echat.ConnectionState.CLOSED
    await bot.close()  # again, as ``async with`` does on the way out


async def test_a_send_whose_reply_was_lost_is_shown_once_without_alarm(
    make_client: MakeClient, relay: Relay
) -> None:
    """The connection drops before the relay's ``sent``: the sender resends the same
    bytes after reconnecting, the receiver shows the message once and raises no alarm."""
    async with evil_proxy(relay.url) as near_alice, evil_proxy(relay.url) as near_bob:
        alice = await make_client("alice", near_alice.url)
        bob = await make_client("bob", near_bob.url)
        alice_events, bob_events, inbox = alice.events(), bob.events(), bob.messages()
        room = await alice.create("den")
        await bob.join("den")
        await collect(alice_events, 1, lambda e: validated(e, "bob"))
        lost = asyncio.Event()

        def lose_reply(frame: RelayFrame) -> list[RelayFrame]:
            if isinstance(frame, Sent) and (frame.id or "").startswith("o"):
                lost.set()
                return []
            return [frame]

        arrived: list[int] = []

        def tamper_third(frame: RelayFrame) -> list[RelayFrame]:
            """The original, its copy, then a tampered marker: the first alarm."""
            if not isinstance(frame, Message):
                return [frame]
            arrived.append(frame.seq)
            if len(arrived) < 3:
                return [frame]
            body = bytearray(frame.body)
            body[200] ^= 1
            return [msgspec.structs.replace(frame, body=bytes(body))]

        near_alice.rewrite, near_bob.rewrite = lose_reply, tamper_third
        sending = asyncio.create_task(room.send("only once"))
        await asyncio.wait_for(lost.wait(), EVENT_TIMEOUT)
        near_alice.rewrite = lambda frame: [frame]
        await near_alice.close_all()
        assert (await sending).seq == 0  # returned queued: the reply never came
        await collect(alice_events, 1, lambda e: e == e2echat.ConnectionChanged(CONNECTED, None))
        marker = await room.send("marker")
        (alarm,) = await collect(bob_events, 1, lambda e: isinstance(e, e2echat.Undecryptable))
        assert isinstance(alarm, e2echat.Undecryptable)
        assert alarm.seq == marker.seq
        assert len(arrived) == 3  # the original and the resent copy came first
        assert [m.text for m in await collect(inbox, 1)] == ["only once"]
