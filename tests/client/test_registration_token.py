"""Client(registration_token=...): a relay that admits new keys with a token lets it in."""

from pathlib import Path

import pytest
from e2echat_server import Relay, RelayConfig

import e2echat


async def test_a_client_with_a_token_gets_in_and_one_without_is_told_why(tmp_path: Path) -> None:
    config = RelayConfig(port=0, memory=True, registration="token")
    async with Relay(config) as relay:
        token = await relay.operator.issue_token(1, None, 0)
        admitted = e2echat.Client(
            relay.url,
            identity=e2echat.Identity.generate(),
            name="alice",
            store=tmp_path / "a.sqlite3",
            connect_timeout=0,
            registration_token=token,
        )
        async with admitted:
            assert admitted.state == e2echat.ConnectionState.CONNECTED
        refused = e2echat.Client(
            relay.url,
            identity=e2echat.Identity.generate(),
            name="bob",
            store=tmp_path / "b.sqlite3",
            connect_timeout=0,
        )
        with pytest.raises(e2echat.AuthError, match="registration token only"):
            async with refused:
                pass
