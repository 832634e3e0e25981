"""`directs`: many envelopes in one frame, on every engine (memory, SQLite, Redis)."""

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from e2echat_server import Relay, RelayConfig

from e2echat.protocol import (
    MAX_DIRECTS,
    Ack,
    DirectDelivery,
    DirectItem,
    DirectsSend,
    DirectsSent,
    ErrorCode,
    Ok,
    Send,
    Sent,
)
from tests.server.test_messages import room_of
from tests.server.wire import Identity, WireClient, login


@pytest.fixture(params=["memory", "sqlite", "redis"])
async def relay(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Relay]:
    """A relay on each engine (overrides the in-memory one of conftest)."""
    if request.param == "memory":
        config = RelayConfig(port=0, memory=True)
    elif request.param == "sqlite":
        config = RelayConfig(port=0, data_dir=tmp_path)
    else:
        config = RelayConfig(port=0, data_dir=tmp_path, redis=request.getfixturevalue("redis_url"))
    async with Relay(config) as running:
        yield running


async def members(relay: Relay, count: int) -> tuple[WireClient, list[Identity], bytes]:
    """The owner of a room with ``count`` other members (who then log off)."""
    owner = await login(relay.url, Identity("owner"))
    identities = [Identity(f"m{i}") for i in range(count)]
    clients = [await login(relay.url, identity) for identity in identities]
    room = await room_of(owner, *clients)
    for client in clients:
        await client.close()
    return owner, identities, room


def batch(identities: list[Identity], tag: bytes = b"share") -> DirectsSend:
    items = [DirectItem(to=i.key, body=tag + i.key[:4]) for i in identities]
    return DirectsSend(items=items, id="b1")


async def test_a_batch_lands_in_every_mailbox_before_a_later_send(relay: Relay) -> None:
    owner, identities, room = await members(relay, 3)
    online = await login(relay.url, identities[0])
    sent = await owner.request(batch(identities), DirectsSent)
    assert (sent.id, sent.seqs) == ("b1", [1, 1, 1])
    live = await online.expect(DirectDelivery)
    assert (live.sender, live.body) == (owner.identity.key, b"share" + identities[0].key[:4])  # type: ignore[union-attr]
    await owner.request(Send(room=room, body=b"unlocked", id="s"), Sent)
    for identity in identities[1:]:  # offline: the mailbox flush comes before room traffic
        member = await login(relay.url, identity)
        assert member.welcome is not None
        assert member.welcome.mailbox == 1
        queued = await member.expect(DirectDelivery)
        assert queued.body == b"share" + identity.key[:4]
        await member.request(Ack(mailbox=queued.seq, id="a"), Ok)
        await member.close()


async def test_a_bad_item_refuses_the_whole_frame_and_stores_nothing(relay: Relay) -> None:
    owner, identities, _ = await members(relay, 2)
    stranger = Identity("stranger")
    await (await login(relay.url, stranger)).close()
    refusals = {
        ErrorCode.FORBIDDEN: batch([*identities, stranger]),  # shares no room with the owner
        ErrorCode.BAD_FRAME: batch([identities[0], identities[0]]),  # a recipient twice
    }
    for code, frame in refusals.items():
        await owner.send(frame)
        error = await owner.error()
        assert (error.id, error.code) == ("b1", code)
    sent = await owner.request(batch(identities), DirectsSent)
    assert sent.seqs == [1, 1]  # nothing of the refused frames was numbered or stored
    member = await login(relay.url, identities[0])
    assert member.welcome is not None
    assert member.welcome.mailbox == 1


async def test_a_frame_over_the_item_bound_is_bad() -> None:
    items = [{"to": "A" * 43 + "=", "body": "AA=="}] * (MAX_DIRECTS + 1)
    async with Relay(RelayConfig(port=0, memory=True)) as relay:
        owner = await login(relay.url, Identity("owner"))
        await owner.send_json({"type": "directs", "id": "b", "items": items})
        assert (await owner.error()).code == ErrorCode.BAD_FRAME


async def test_the_share_budget_refuses_past_its_burst() -> None:
    config = RelayConfig(port=0, memory=True, share_rate=0.001, share_burst=MAX_DIRECTS)
    async with Relay(config) as relay:
        owner, identities, _ = await members(relay, 3)
        for _ in range(MAX_DIRECTS // 3):
            await owner.request(batch(identities), DirectsSent)
        await owner.send(batch(identities))
        error = await owner.error()
        assert (error.id, error.code) == ("b1", ErrorCode.RATE_LIMITED)
        await owner.request(Ack(mailbox=0, id="a"), Ok)  # still open: a refusal, not abuse
