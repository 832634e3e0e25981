"""A malicious relay is caught: tampering, replay, reordering, swapped senders, ghosts."""

import time
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest
from e2echat_server import Relay

import e2echat
from e2echat.crypto.identity import Identity
from e2echat.crypto.prekeys import new_prekey
from e2echat.protocol import (
    Error,
    ErrorCode,
    MemberJoined,
    Message,
    RelayFrame,
    RosterEntry,
    SignedPrekey,
    Welcome,
)
from tests.client.conftest import MakeClient, collect, validated
from tests.client.proxy import EvilProxy, evil_proxy


@pytest.fixture
async def proxy(relay: Relay) -> AsyncIterator[EvilProxy]:
    async with evil_proxy(relay.url) as running:
        yield running


async def _pair(
    make_client: MakeClient, proxy: EvilProxy, password: str | None = None
) -> tuple[e2echat.Client, e2echat.Client, e2echat.Room]:
    """alice on the real relay, bob behind the evil proxy, in one room.

    bob waits at most half a second for a new member's proof before sending (a ghost
    never proves: it may delay bob's messages that long, never receive them).
    """
    alice = await make_client("alice")
    bob = await make_client("bob", proxy.url, proof_wait=0.5)
    alice_events = alice.events()
    room = await alice.create("den", password=password)
    await bob.join("den", password=password)
    await collect(alice_events, 1, lambda e: validated(e, "bob"))
    return alice, bob, room


def _is_message(frame: RelayFrame) -> bool:
    return isinstance(frame, Message)


async def test_tampered_message_is_rejected_and_reported(
    make_client: MakeClient, proxy: EvilProxy
) -> None:
    _alice, bob, room = await _pair(make_client, proxy)
    inbox, events = bob.messages(), bob.events()

    def flip(frame: RelayFrame) -> list[RelayFrame]:
        if isinstance(frame, Message):
            body = bytearray(frame.body)
            body[200] ^= 1
            return [msgspec.structs.replace(frame, body=bytes(body))]
        return [frame]

    proxy.rewrite = flip
    tampered = await room.send("pay 10 euros")
    (event,) = await collect(events, 1, lambda e: isinstance(e, e2echat.Undecryptable))
    assert isinstance(event, e2echat.Undecryptable)
    assert event.seq == tampered.seq
    assert event.sender is not None
    assert event.sender.name == "alice"
    proxy.rewrite = lambda frame: [frame]
    await room.send("clean")
    assert [m.text for m in await collect(inbox, 1)] == ["clean"]


async def test_a_replayed_copy_is_shown_once_and_not_reported(
    make_client: MakeClient, proxy: EvilProxy
) -> None:
    """A byte-identical copy at a new seq is what a sender's resend looks like: the
    crypto core rejects it, the app sees the message once and no alarm. (Replays with
    other bytes, or of messages never delivered here, are reported: test_hardening.)"""
    _alice, bob, room = await _pair(make_client, proxy)
    inbox, events = bob.messages(), bob.events()

    def replay(frame: RelayFrame) -> list[RelayFrame]:
        if isinstance(frame, Message):
            return [frame, msgspec.structs.replace(frame, seq=frame.seq + 1000)]
        return [frame]

    def flip(frame: RelayFrame) -> list[RelayFrame]:
        if isinstance(frame, Message):
            body = bytearray(frame.body)
            body[200] ^= 1
            return [msgspec.structs.replace(frame, body=bytes(body))]
        return [frame]

    proxy.rewrite = replay
    await room.send("once only")
    proxy.rewrite = flip
    tampered = await room.send("tampered")
    (event,) = await collect(events, 1, lambda e: isinstance(e, e2echat.Undecryptable))
    assert isinstance(event, e2echat.Undecryptable)
    assert event.seq == tampered.seq  # the first alarm: the copy raised none
    assert "replay" not in event.reason
    proxy.rewrite = lambda frame: [frame]
    await room.send("next")
    assert [m.text for m in await collect(inbox, 2)] == ["once only", "next"]


async def test_reordered_messages_each_arrive_once(
    make_client: MakeClient, proxy: EvilProxy
) -> None:
    _alice, bob, room = await _pair(make_client, proxy)
    inbox = bob.messages()
    held: list[RelayFrame] = []
    seen = 0

    def swap(frame: RelayFrame) -> list[RelayFrame]:
        nonlocal seen
        if not isinstance(frame, Message):
            return [frame]
        seen += 1
        if seen == 1:
            held.append(frame)
            return []
        return [frame, *held] if seen == 2 else [frame]

    proxy.rewrite = swap
    await room.send("first")
    await room.send("second")
    await room.send("third")
    received = await collect(inbox, 3)
    assert [m.text for m in received] == ["second", "first", "third"]
    assert len({m.seq for m in received}) == 3


async def test_swapped_sender_is_rejected(make_client: MakeClient, proxy: EvilProxy) -> None:
    alice, bob, room = await _pair(make_client, proxy)
    carol = await make_client("carol")
    alice_events = alice.events()
    await carol.join("den")
    await collect(alice_events, 1, lambda e: validated(e, "carol"))
    inbox, events = bob.messages(), bob.events()

    def swap_from(frame: RelayFrame) -> list[RelayFrame]:
        if isinstance(frame, Message):
            return [msgspec.structs.replace(frame, sender=carol.key)]
        return [frame]

    proxy.rewrite = swap_from
    await room.send("from alice, really")
    (event,) = await collect(events, 1, lambda e: isinstance(e, e2echat.Undecryptable))
    assert isinstance(event, e2echat.Undecryptable)
    assert event.sender is not None
    assert event.sender.name == "carol"
    proxy.rewrite = lambda frame: [frame]
    await room.send("ok")
    assert [(m.text, m.sender.name) for m in await collect(inbox, 1)] == [("ok", "alice")]


async def test_ghost_member_in_password_room_gets_no_keys(
    make_client: MakeClient, proxy: EvilProxy
) -> None:
    # bob is behind the evil relay: it tells him a ghost joined his password room.
    alice, bob, _room = await _pair(make_client, proxy, password="s3cret")
    ghost = Identity.generate()
    prekey = new_prekey(ghost, int(time.time() * 1000), set()).signed
    member = RosterEntry(
        key=ghost.public_key,
        name="ghost",
        status="online",
        prekey=SignedPrekey(id=prekey.id, key=prekey.key, sig=prekey.sig),
        joined=int(time.time() * 1000),
    )
    bob_room = bob.get_room("den")
    assert bob_room is not None
    events, alice_inbox = bob.events(), alice.messages()
    await proxy.inject(MemberJoined(room=bob_room.id, member=member))
    (joined,) = await collect(events, 1, lambda e: isinstance(e, e2echat.MemberJoined))
    assert isinstance(joined, e2echat.MemberJoined)
    assert joined.member.name == "ghost"
    assert not joined.member.validated
    await bob_room.send("for members only")
    await collect(alice_inbox, 1)
    assert proxy.directs_to(ghost.public_key) == []
    (listed,) = [m for m in bob_room.member_list if m.name == "ghost"]
    assert not listed.validated


async def test_a_refused_hello_raises_auth_error(proxy: EvilProxy, tmp_path: Path) -> None:
    def refuse(frame: RelayFrame) -> list[RelayFrame]:
        if isinstance(frame, Welcome):
            return [Error(code=ErrorCode.AUTH_FAILED, message="Signature does not verify.")]
        return [frame]

    proxy.rewrite = refuse
    client = e2echat.Client(
        proxy.url, identity=e2echat.Identity.generate(), name="eve", store=tmp_path / "eve"
    )
    with pytest.raises(e2echat.AuthError, match="Signature does not verify"):
        await client.connect()
    assert client.state == e2echat.ConnectionState.CLOSED


async def test_without_reconnect_a_dropped_connection_closes_the_client(
    proxy: EvilProxy, tmp_path: Path
) -> None:
    client = e2echat.Client(
        proxy.url,
        identity=e2echat.Identity.generate(),
        name="once",
        store=tmp_path / "once",
        reconnect=False,
    )
    async with client:
        events = client.events()
        await proxy.close_all()
        (closed,) = await collect(events, 1, lambda e: isinstance(e, e2echat.ConnectionChanged))
        assert isinstance(closed, e2echat.ConnectionChanged)
        assert closed.state == e2echat.ConnectionState.CLOSED
        with pytest.raises(e2echat.ConnectError):
            await client.list_rooms()
