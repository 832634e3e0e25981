"""A direct conversation with a key no shared room lists: the prekey comes from the
relay (``prekey_lookup``), and a relay that substitutes one is refused (crypto.md 14)."""

from collections.abc import AsyncIterator

import pytest
from e2echat_server import Relay

import e2echat
from e2echat.crypto.prekeys import new_prekey
from e2echat.protocol import CreateRoom, PrekeyFound, PrekeyLookup, RelayFrame, SignedPrekey
from tests.client.conftest import MakeClient, collect
from tests.client.proxy import EvilProxy, evil_proxy


@pytest.fixture
async def proxy(relay: Relay) -> AsyncIterator[EvilProxy]:
    async with evil_proxy(relay.url) as running:
        yield running


def started(event: e2echat.Event) -> bool:
    return isinstance(event, e2echat.DirectStarted)


async def test_a_key_no_shared_room_lists_is_invited_with_the_prekey_the_relay_holds(
    make_client: MakeClient,
) -> None:
    alice, bob = await make_client("alice"), await make_client("bob")  # no room at all
    bob_events = bob.events()
    dm = await alice.direct(bob.key)
    assert dm.peer == bob.key
    (event,) = await collect(bob_events, 1, started)
    assert isinstance(event, e2echat.DirectStarted)
    # Bob opened an invitation sealed to the prekey the relay gave alice: his own.
    assert (event.room.id, event.room.peer, event.peer.key) == (dm.id, alice.key, alice.key)
    assert await alice.direct(bob.key) is dm  # the one we have: no second lookup


def substitute() -> SignedPrekey:
    """A usable prekey that another identity signed (the relay's own, say)."""
    signed = new_prekey(e2echat.Identity.generate(), 1_800_000_000_000, set()).signed
    return SignedPrekey(id=signed.id, key=signed.key, sig=signed.sig)


async def test_a_relay_that_substitutes_the_prekey_is_refused_and_nothing_is_made(
    make_client: MakeClient, proxy: EvilProxy
) -> None:
    """The relay answers the lookup with a prekey of its choosing (signed by another
    key), or with bob's real prekey under another key: alice refuses both before she
    creates a room or seals anything, so the relay never gets an invitation it can open."""
    bob = await make_client("bob")
    carol = await make_client("carol")
    alice = await make_client("alice", proxy.url)
    real: list[SignedPrekey] = []

    def forge(frame: RelayFrame) -> list[RelayFrame]:
        if isinstance(frame, PrekeyFound):
            real.append(frame.prekey)
            return [PrekeyFound(key=frame.key, prekey=substitute(), id=frame.id)]
        return [frame]

    proxy.rewrite = forge  # type: ignore[assignment]
    with pytest.raises(e2echat.InvalidInput, match="does not verify"):
        await alice.direct(bob.key)

    def relabel(frame: RelayFrame) -> list[RelayFrame]:
        if isinstance(frame, PrekeyFound):  # bob's genuine prekey, as carol's
            return [PrekeyFound(key=frame.key, prekey=real[0], id=frame.id)]
        return [frame]

    proxy.rewrite = relabel  # type: ignore[assignment]
    with pytest.raises(e2echat.InvalidInput, match="does not verify"):
        await alice.direct(carol.key)

    def rename(frame: RelayFrame) -> list[RelayFrame]:
        if isinstance(frame, PrekeyFound):  # carol's genuine prekey, named as bob's
            return [PrekeyFound(key=bob.key, prekey=frame.prekey, id=frame.id)]
        return [frame]

    proxy.rewrite = rename  # type: ignore[assignment]
    with pytest.raises(e2echat.InvalidInput, match="another key"):
        await alice.direct(carol.key)
    assert len([f for f in proxy.sent if isinstance(f, PrekeyLookup)]) == 3
    assert real  # the relay did answer with the genuine prekey, which the proxy replaced
    assert alice.directs == []
    assert alice.rooms == []
    assert not [f for f in proxy.sent if isinstance(f, CreateRoom)]


async def test_a_key_the_relay_never_saw_is_refused(make_client: MakeClient) -> None:
    alice = await make_client("alice")
    with pytest.raises(e2echat.NotAMember, match="relay does not know it"):
        await alice.direct(e2echat.Identity.generate().public_key)
    assert alice.directs == []
