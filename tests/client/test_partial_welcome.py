"""A `welcome` over the relay's member budget lists rooms partial (protocol.md section 4):
the client fetches their members instead of taking the empty list as "everyone left"."""

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from e2echat_server import Relay
from msgspec.structs import replace

import e2echat
from e2echat.crypto.message import parse_body
from e2echat.protocol import MembersRequest, RelayFrame, Welcome
from tests.client.conftest import MakeClient, collect, relay_config, validated
from tests.client.proxy import evil_proxy

CONNECTED = e2echat.ConnectionChanged(e2echat.ConnectionState.CONNECTED, None)
ROOMS = ("one", "two", "three")
BUDGET = 1000
"""Two members (~370 encoded bytes each, with their name statements) fit: one room's
roster, never two."""


@pytest.fixture
async def relay(tmp_path: Path) -> AsyncIterator[Relay]:
    async with Relay(replace(relay_config(tmp_path), welcome_members=BUDGET)) as running:
        yield running


async def _chains(relay: Relay, room: bytes, sender: bytes) -> list[bytes]:
    """The chain ids of ``sender``'s stored messages in ``room``, oldest first."""
    stored = await relay.store.history(room, 0, 0, 100)
    return [parse_body(e.body).header.chain_id for e in stored if e.sender == sender]


async def test_reconnect_with_partial_rooms_fetches_members_without_rotating(
    make_client: MakeClient, relay: Relay
) -> None:
    async with evil_proxy(relay.url) as near_bob:
        alice = await make_client("alice")
        bob = await make_client("bob", near_bob.url)
        alice_events, alice_inbox = alice.events(), alice.messages()
        bob_events, bob_inbox = bob.events(), bob.messages()
        rooms = {name: await alice.create(name) for name in ROOMS}
        for name in ROOMS:
            await bob.join(name)
        await collect(alice_events, len(ROOMS), lambda e: validated(e, "bob"))
        for name in ROOMS:
            await rooms[name].send(f"alice before {name}")
            await bob.get_room(name).send(f"bob before {name}")  # type: ignore[union-attr]
        await collect(bob_inbox, len(ROOMS))
        await collect(alice_inbox, len(ROOMS))
        bob_key = bob._identity.public_key
        before = {name: await _chains(relay, rooms[name].id, bob_key) for name in ROOMS}

        welcomes: list[Welcome] = []

        def watch(frame: RelayFrame) -> list[RelayFrame]:
            if isinstance(frame, Welcome):
                welcomes.append(frame)
            return [frame]

        near_bob.rewrite = watch
        near_bob.sent.clear()
        await near_bob.close_all()
        await collect(bob_events, 1, lambda e: e == CONNECTED)
        (welcome,) = welcomes
        partial = {info.id for info in welcome.rooms if info.partial}
        assert len(partial) == len(ROOMS) - 1  # the path under test is taken

        for name in ROOMS:
            await rooms[name].send(f"alice after {name}")
            await bob.get_room(name).send(f"bob after {name}")  # type: ignore[union-attr]
        got = await collect(bob_inbox, len(ROOMS))
        assert sorted(m.text for m in got) == sorted(f"alice after {name}" for name in ROOMS)
        got = await collect(alice_inbox, len(ROOMS))
        assert sorted(m.text for m in got) == sorted(f"bob after {name}" for name in ROOMS)

        asked = {f.room for f in near_bob.sent if isinstance(f, MembersRequest)}
        assert asked == partial
        for name in ROOMS:
            roster = bob.get_room(name).member_list  # type: ignore[union-attr]
            assert sorted(m.name for m in roster) == ["alice", "bob"]
            # No rotation: bob kept sending on the chain alice already holds.
            chains = await _chains(relay, rooms[name].id, bob_key)
            assert set(chains) == {before[name][0]}

        # A marker after all of that: the first membership event bob sees is carol's
        # join, so reconnecting announced no one leaving (or joining) anywhere.
        carol = await make_client("carol")
        await carol.join("one")
        (first,) = await collect(
            bob_events, 1, lambda e: isinstance(e, (e2echat.MemberJoined, e2echat.MemberLeft))
        )
        assert isinstance(first, e2echat.MemberJoined)
        assert (first.room.name, first.member.name) == ("one", "carol")
