"""challenge -> hello -> welcome: signatures, timeouts, and nothing before welcome."""

from collections.abc import AsyncIterator

import pytest
from e2echat_server import Relay, RelayConfig

from e2echat.protocol import (
    MAX_BODY,
    MAX_FRAME,
    PROTOCOL_VERSION,
    Challenge,
    CloseCode,
    CreateRoom,
    ErrorCode,
    Hello,
    ListRooms,
    OpenAccess,
    RoomList,
    SignedPrekey,
    Welcome,
)
from tests.server.wire import Identity, closed_with, login, open_raw


async def test_challenge_announces_version_name_nonce_and_limits(relay: Relay) -> None:
    client = await open_raw(relay.url)
    challenge = await client.expect(Challenge)
    assert (challenge.v, challenge.relay, len(challenge.nonce)) == (
        PROTOCOL_VERSION,
        "e2echat-relay",
        32,
    )
    assert (challenge.limits.max_frame, challenge.limits.max_body) == (MAX_FRAME, MAX_BODY)
    history = (challenge.limits.history, challenge.limits.history_age)
    assert history == (relay.config.history_count, relay.config.history_age_s)
    other = await open_raw(relay.url)
    assert (await other.expect(Challenge)).nonce != challenge.nonce


async def test_welcome_names_the_user_and_counts_the_mailbox(relay: Relay) -> None:
    alice = await login(relay.url, Identity("alice"))
    assert alice.welcome is not None
    assert (alice.welcome.user.name, alice.welcome.rooms, alice.welcome.mailbox) == ("alice", [], 0)


async def test_frames_before_hello_are_refused_and_change_nothing(relay: Relay) -> None:
    client = await open_raw(relay.url)
    challenge = await client.expect(Challenge)
    refusal = await client.error(CreateRoom(name="early", access=OpenAccess(), id="r1"))
    assert (refusal.code, refusal.id) == (ErrorCode.UNAUTHENTICATED, "r1")
    await client.send(Identity("alice").hello(challenge))
    await client.expect(Welcome)
    assert "early" not in relay.directory.by_name


def forged(identity: Identity, challenge: Challenge, what: str) -> Hello:
    hello = identity.hello(challenge)
    if what == "signature":
        return Hello(key=hello.key, name=hello.name, prekey=hello.prekey, sig=bytes(64))
    if what == "prekey":
        bad = SignedPrekey(id=hello.prekey.id, key=hello.prekey.key, sig=bytes(64))
        return Hello(key=hello.key, name=hello.name, prekey=bad, sig=hello.sig)
    if what == "relay":
        return identity.hello(challenge, relay="some-other-relay")
    if what == "name":  # signed as alice, presented as mallory
        return Hello(key=hello.key, name="mallory", prekey=hello.prekey, sig=hello.sig)
    return Hello(key=Identity("x").key, name=hello.name, prekey=hello.prekey, sig=hello.sig)


@pytest.mark.parametrize("what", ["signature", "prekey", "relay", "name", "key"])
async def test_bad_hello_gets_auth_failed_and_4401(relay: Relay, what: str) -> None:
    client = await open_raw(relay.url)
    challenge = await client.expect(Challenge)
    await client.send(forged(Identity("alice"), challenge, what))
    assert (await client.error()).code is ErrorCode.AUTH_FAILED
    await closed_with(client.conn, CloseCode.AUTH_FAILED)
    assert relay.metrics.handshake_failures["signature"] == 1
    assert relay.directory.users == {}


async def test_a_hello_for_another_challenge_is_refused(relay: Relay) -> None:
    first = await open_raw(relay.url)
    second = await open_raw(relay.url)
    await first.expect(Challenge)
    other_challenge = await second.expect(Challenge)
    await first.send(Identity("alice").hello(other_challenge))  # replayed nonce
    assert (await first.error()).code is ErrorCode.AUTH_FAILED
    await closed_with(first.conn, CloseCode.AUTH_FAILED)


@pytest.fixture
async def impatient_relay() -> AsyncIterator[Relay]:
    async with Relay(RelayConfig(port=0, memory=True, handshake_timeout_s=0.3)) as running:
        yield running


async def test_no_hello_in_time_closes_4408(impatient_relay: Relay) -> None:
    client = await open_raw(impatient_relay.url)
    await client.expect(Challenge)
    await client.send(ListRooms())  # refused frames do not extend the deadline
    assert (await client.error()).code is ErrorCode.UNAUTHENTICATED
    await closed_with(client.conn, CloseCode.HANDSHAKE_TIMEOUT)
    assert impatient_relay.metrics.handshake_failures["timeout"] == 1


async def test_a_second_hello_is_refused_and_the_session_stays(relay: Relay) -> None:
    alice = await login(relay.url, Identity("alice"))
    assert alice.challenge is not None
    refusal = await alice.error(Identity("alice").hello(alice.challenge))
    assert refusal.code is ErrorCode.UNAUTHENTICATED
    assert (await alice.request(ListRooms(), RoomList)).rooms == []  # still connected
