"""A relay tampering with a batch of key shares: every attack fails closed.

alice (behind a recording proxy) owns a room with bob, erin (each behind a rewriting
proxy) and carol; dave is in no room, behind a proxy of his own. alice's first message
starts a chain whose shares go to the three members in one `directs` frame. The relay
drops bob's share, delivers erin's twice and hands every share of the batch to dave as
well: dave opens none of them (each is sealed to its member), erin reads each message
once, and bob is told his key has not arrived, asks alice again, and reads.
"""

import functools
from collections.abc import Callable

from e2echat_server import Relay

import e2echat
from e2echat.protocol import DirectDelivery, DirectsSend, RelayFrame
from tests.client.conftest import MakeClient, collect, validated
from tests.client.proxy import EvilProxy, evil_proxy


def batched(alice: EvilProxy, key: bytes) -> set[bytes]:
    """The envelopes alice's batches carried to ``key``."""
    return {
        item.body
        for frame in alice.sent
        if isinstance(frame, DirectsSend)
        for item in frame.items
        if item.to == key
    }


def notice(event: e2echat.Event, text: str) -> bool:
    return isinstance(event, e2echat.Notice) and text in event.text


async def test_a_batch_dropped_duplicated_or_redirected_fails_closed(
    make_client: MakeClient, relay: Relay
) -> None:
    async with (
        evil_proxy(relay.url) as alice_proxy,
        evil_proxy(relay.url) as bob_proxy,
        evil_proxy(relay.url) as erin_proxy,
        evil_proxy(relay.url) as dave_proxy,
    ):
        alice = await make_client("alice", alice_proxy.url)
        alice_room = await alice.create("ops")
        urls = {"bob": bob_proxy.url, "carol": relay.url, "erin": erin_proxy.url}
        members: dict[str, e2echat.Client] = {}
        for name, url in urls.items():
            earlier = [alice.events(), *(c.events() for c in members.values())]
            members[name] = await make_client(name, url)
            await members[name].join("ops")
            for events in earlier:
                await collect(events, 1, functools.partial(validated, name=name))
        dave = await make_client("dave", dave_proxy.url)
        dave_events = dave.events()

        dropped: list[DirectDelivery] = []

        def drop_first_share(frame: RelayFrame) -> list[RelayFrame]:
            bob = members["bob"].key
            if (
                isinstance(frame, DirectDelivery)
                and not dropped
                and frame.body in batched(alice_proxy, bob)
            ):
                dropped.append(frame)
                return []
            return [frame]

        def twice_if_batched(key: bytes) -> Callable[[RelayFrame], list[RelayFrame]]:
            def rewrite(frame: RelayFrame) -> list[RelayFrame]:
                if isinstance(frame, DirectDelivery) and frame.body in batched(alice_proxy, key):
                    return [frame, frame]
                return [frame]

            return rewrite

        bob_proxy.rewrite = drop_first_share
        erin_proxy.rewrite = twice_if_batched(members["erin"].key)
        inboxes = {name: client.messages() for name, client in members.items()}
        bob_events = members["bob"].events()
        at_send = len(alice_proxy.sent)
        await alice_room.send("first of the chain")

        for name in ("carol", "erin"):
            got = await collect(inboxes[name], 1)
            assert [m.text for m in got] == ["first of the chain"]
        (frame,) = [f for f in alice_proxy.sent[at_send:] if isinstance(f, DirectsSend)]
        assert {item.to for item in frame.items} == {c.key for c in members.values()}
        assert alice_proxy.directs_to(dave.key) == []

        (waiting,) = await collect(
            bob_events, 1, lambda e: isinstance(e, e2echat.Undecryptable) and e.waiting
        )
        assert isinstance(waiting, e2echat.Undecryptable)
        assert "has not arrived" in waiting.reason
        assert [m.text for m in await collect(inboxes["bob"], 1)] == ["first of the chain"]
        assert len(dropped) == 1

        for seq, item in enumerate(frame.items, 1):  # the relay redirects the batch to dave
            await dave_proxy.inject(
                DirectDelivery(sender=alice.key, seq=seq, ts=dropped[0].ts, body=item.body)
            )
        rejected = await collect(dave_events, len(frame.items), lambda e: notice(e, "rejected"))
        assert len(rejected) == len(frame.items)
        assert dave.rooms == []

        await alice_room.send("second")  # erin's copy was dropped: she reads each once
        got = await collect(inboxes["erin"], 1)
        assert [m.text for m in got] == ["second"]
