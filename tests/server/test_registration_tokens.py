"""Registration by token: tokens made by the operator, single- or multi-use, expiring,
revocable; only their digests are kept."""

import asyncio
from pathlib import Path
from typing import Any

import pytest
from e2echat_server import Relay, RelayConfig
from e2echat_server.admin import AdminError, AdminSocket, request
from e2echat_server.registration_tokens import TOKENS_FILE, RegistrationTokens

from e2echat.protocol import Challenge, CloseCode, Error, ErrorCode
from tests.server.wire import Identity, WireClient, closed_with, open_raw


async def hello(url: str, identity: Identity, token: str | None) -> WireClient | Error:
    """Authenticate with ``token``: the welcomed client, or the error it was refused with."""
    client = await open_raw(url)
    challenge = await client.expect(Challenge)
    frame = identity.hello(challenge)
    frame.registration_token = token
    await client.send(frame)
    reply = await client.recv()
    if isinstance(reply, Error):
        await closed_with(client.conn, CloseCode.AUTH_FAILED)
        return reply
    return client


def test_tokens_are_spent_expire_and_are_kept_as_digests_only() -> None:
    tokens = RegistrationTokens()
    once = tokens.issue(1, None, now=0)
    twice = tokens.issue(2, 1000, now=0)
    assert tokens.redeem(once, 1)
    assert not tokens.redeem(once, 2)  # used up
    assert tokens.redeem(twice, 999)
    assert not tokens.redeem(twice, 1000)  # expired, one use left
    assert not tokens.redeem("x" * 32, 0)
    stored = tokens.dumps()
    assert once not in stored
    assert twice not in stored
    again = RegistrationTokens.loads(stored)
    assert [t["uses"] for t in again.listed(0)] == [0, 1]


async def test_a_new_key_needs_a_valid_token_and_a_known_key_none(tmp_path: Path) -> None:
    config = RelayConfig(port=0, data_dir=tmp_path, create_db=True, registration="token")
    async with Relay(config) as relay, AdminSocket(relay, tmp_path / "admin.sock") as admin:

        async def ask(command: str, *args: str) -> Any:
            return await asyncio.to_thread(request, admin.path, command, list(args))

        alice, bob = Identity("alice"), Identity("bob")
        refused = await hello(relay.url, alice, None)
        assert isinstance(refused, Error)
        assert refused.code == ErrorCode.FORBIDDEN
        assert "registration token" in refused.message
        token = (await ask("token", "1", "0"))["token"]
        assert token not in (tmp_path / TOKENS_FILE).read_text()
        welcomed = await hello(relay.url, alice, token)
        assert isinstance(welcomed, WireClient)
        await welcomed.close()
        again = await hello(relay.url, alice, None)  # known now: no token needed
        assert isinstance(again, WireClient)
        await again.close()
        spent = await hello(relay.url, bob, token)  # single use: spent
        assert isinstance(spent, Error)
        assert spent.message.startswith("This registration token is not valid")
        wrong = await hello(relay.url, bob, "x" * 32)
        assert isinstance(wrong, Error)
        assert wrong.message == spent.message  # not "ask for one": one was given
        (listed,) = await ask("tokens")
        assert (listed["uses"], listed["valid"]) == (0, False)
        several = (await ask("token", "0", "3600"))["token"]
        (_, second) = await ask("tokens")
        assert (await ask("revoke", second["id"][:6]))["revoked"]
        assert isinstance(await hello(relay.url, bob, several), Error)  # revoked
        with pytest.raises(AdminError, match="No one token"):
            await ask("revoke", "ffff")
        with pytest.raises(AdminError, match="whole numbers"):
            await ask("token", "one", "0")
        assert relay.metrics.refusals.counts["token_needed"] == 4


async def test_tokens_survive_a_restart(tmp_path: Path) -> None:
    config = RelayConfig(port=0, data_dir=tmp_path, create_db=True, registration="token")
    async with Relay(config) as relay:
        token = await relay.operator.issue_token(None, None, 0)
    async with Relay(RelayConfig(port=0, data_dir=tmp_path, registration="token")) as relay:
        for name in ("a", "b"):  # unlimited uses
            client = await hello(relay.url, Identity(name), token)
            assert isinstance(client, WireClient)
            await client.close()
