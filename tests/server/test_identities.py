"""Bounded identities over real sockets: new keys per address, forgetting idle users, and
presence announcements of reconnect loops."""

import asyncio
from pathlib import Path

import pytest
from e2echat_server import Relay, RelayConfig, directory
from e2echat_server.clock import now_ms
from e2echat_server.store import SqliteStore

from e2echat.protocol import (
    Challenge,
    CloseCode,
    CreateRoom,
    DirectSend,
    Error,
    ErrorCode,
    JoinRoom,
    OpenAccess,
    Presence,
    RoomReply,
    Sent,
)
from tests.server.wire import TIMEOUT, Identity, closed_with, login, open_raw


async def settled(relay: Relay, still_open: int) -> None:
    """Wait until only ``still_open`` connection handlers are left running: every closed
    connection's session has ended (presence, last_seen, the user's idle time)."""
    assert relay._server is not None
    async with asyncio.timeout(TIMEOUT):
        while len(running := {t for t in relay._server.handler_tasks if not t.done()}) > still_open:
            await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)


async def test_new_identities_per_address_have_a_budget_but_known_keys_always_get_in() -> None:
    config = RelayConfig(port=0, memory=True, new_keys_burst=2, new_keys_per_ip=1)
    async with Relay(config) as relay:
        alice_id = Identity("alice")
        alice = await login(relay.url, alice_id)
        await login(relay.url, Identity("bob"))
        carol = await open_raw(relay.url)
        await carol.send(Identity("carol").hello(await carol.expect(Challenge)))
        refusal = await carol.expect(Error)
        assert (refusal.code, refusal.id) == (ErrorCode.RATE_LIMITED, None)
        await closed_with(carol.conn, CloseCode.RATE_LIMIT)
        assert len(relay.directory.users) == 2  # carol was never recorded
        assert relay.metrics.handshake_failures["new_keys"] == 1
        await alice.close()
        again = await login(relay.url, alice_id)  # a known key spends no budget
        assert again.welcome is not None
        assert again.welcome.user.key == alice_id.key


async def test_idle_users_are_forgotten_in_memory_and_store_and_become_unknown(
    tmp_path: Path,
) -> None:
    store = await SqliteStore.open(tmp_path)
    async with Relay(RelayConfig(port=0, forget_after_s=60), store=store) as relay:
        alice_id, bob_id, carol_id, dave_id = (
            Identity(n) for n in ("alice", "bob", "carol", "dave")
        )
        alice = await login(relay.url, alice_id)  # kept: connected
        bob = await login(relay.url, bob_id)  # kept: in a room
        await bob.request(CreateRoom(name="lobby", access=OpenAccess()), RoomReply)
        await bob.close()
        await (await login(relay.url, carol_id)).close()  # forgotten
        await (await login(relay.url, dave_id)).close()  # kept: mail waiting
        await alice.request(DirectSend(to=dave_id.key, body=b"hi"), Sent)
        await settled(relay, still_open=1)

        assert await relay.forget_idle(now_ms()) == 0  # not idle for long enough yet
        assert await relay.forget_idle(now_ms() + 61_000) == 1
        kept = {alice_id.key, bob_id.key, dave_id.key}
        assert set(relay.directory.users) == kept
        assert {u.key for u in (await store.load()).users} == kept
        assert (relay.metrics.count_users(), relay.metrics.users_forgotten) == (3, 1)

        refusal = await alice.error(DirectSend(to=carol_id.key, body=b"x"))
        assert refusal.code is ErrorCode.FORBIDDEN
        assert "unknown" in refusal.message
        carol = await login(relay.url, carol_id)  # simply a new key again
        assert carol.welcome is not None
        assert carol.welcome.mailbox == 0
        assert carol_id.key in relay.directory.users


async def test_a_session_that_ends_inside_the_handshake_still_leaves_the_user_idle() -> None:
    async with Relay(RelayConfig(port=0, memory=True, forget_after_s=1)) as relay:
        quitter = Identity("quitter")
        client = await open_raw(relay.url)
        await client.send(quitter.hello(await client.expect(Challenge)))
        await client.close()  # without reading welcome
        await settled(relay, still_open=0)
        assert quitter.key in relay.directory.idle
        assert await relay.forget_idle(now_ms() + 1000) == 1


async def test_a_reconnect_loop_is_announced_within_budget_and_peers_end_right(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(directory, "STATUS_RATE", 2.0)  # a catch-up within half a second
    monkeypatch.setattr(directory, "STATUS_BURST", 3)
    async with Relay(RelayConfig(port=0, memory=True)) as relay:
        alice = await login(relay.url, Identity("alice"))
        await alice.request(CreateRoom(name="lobby", access=OpenAccess()), RoomReply)
        bob_id = Identity("bob")
        bob = await login(relay.url, bob_id)
        await bob.request(JoinRoom(name="lobby"), RoomReply)
        await bob.close()
        cycles = 5
        for _ in range(cycles):
            await (await login(relay.url, bob_id)).close()
        await settled(relay, still_open=1)
        final = relay.directory.users[bob_id.key]
        assert final.status == "offline"

        seen: list[Presence] = []
        async with asyncio.timeout(TIMEOUT):  # the final offline comes, if late
            while not seen or (seen[-1].status, seen[-1].last_seen) != ("offline", final.last_seen):
                seen.append(await alice.next_of(Presence))
        assert len(seen) < 1 + 2 * cycles  # fewer announcements than transitions
        assert relay.metrics.presence_deferred > 0
        assert not final.presence_pending
        assert not relay._output.catch_ups
