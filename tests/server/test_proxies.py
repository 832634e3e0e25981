"""--trusted-proxy: the client address comes from forwarding headers of listed proxies only."""

import logging

import pytest
from click.testing import CliRunner
from e2echat_server import Relay, RelayConfig
from e2echat_server.cli import app
from e2echat_server.config import ConfigError
from e2echat_server.proxies import client_address, networks

from e2echat.protocol import CloseCode
from tests.server.wire import Identity, closed_with, login, open_raw

PROXY = networks(("10.0.0.0/8", "::1"))


@pytest.mark.parametrize(
    ("peer", "xff", "forwarded", "expected"),
    [
        ("10.1.2.3", ["203.0.113.7"], [], "203.0.113.7"),  # one trusted proxy
        ("10.1.2.3", ["198.51.100.1, 203.0.113.7"], [], "203.0.113.7"),  # client-written left
        ("10.1.2.3", ["203.0.113.7, 10.9.9.9"], [], "203.0.113.7"),  # two proxies in a chain
        ("10.1.2.3", ["203.0.113.7", "10.9.9.9"], [], "203.0.113.7"),  # header lines in order
        ("192.0.2.5", ["203.0.113.7"], [], "192.0.2.5"),  # spoofed: the peer is no proxy
        ("10.1.2.3", [], [], "10.1.2.3"),  # a proxy that says nothing
        ("10.1.2.3", ["unknown"], [], "10.1.2.3"),  # not an address: stop at the proxy
        ("10.1.2.3", ["203.0.113.7:5555"], [], "203.0.113.7"),
        ("::1", ["2001:db8::1"], [], "2001:db8::1"),
        ("10.1.2.3", ["192.0.2.9"], ['for="[2001:db8::2]:4711";proto=https'], "2001:db8::2"),
        ("10.1.2.3", [], ["for=198.51.100.1, for=203.0.113.7"], "203.0.113.7"),
        ("10.1.2.3", ["::ffff:203.0.113.7"], [], "203.0.113.7"),
    ],
)
def test_the_client_is_the_first_untrusted_hop_from_the_right(
    peer: str, xff: list[str], forwarded: list[str], expected: str
) -> None:
    assert client_address(peer, xff, forwarded, PROXY) == expected


def test_without_trusted_proxies_headers_are_ignored() -> None:
    assert client_address("10.1.2.3", ["203.0.113.7"], [], ()) == "10.1.2.3"


def test_a_bad_cidr_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="trusted_proxy"):
        RelayConfig(trusted_proxy=("10.0.0.0/33",))


@pytest.mark.parametrize("everyone", ["0.0.0.0/0", "::/0", "10.0.0.1,0.0.0.0/0"])
def test_trusting_every_address_is_refused_as_unsafe(everyone: str) -> None:
    with pytest.raises(ConfigError, match="must not trust every address"):
        RelayConfig(trusted_proxy=tuple(everyone.split(",")))


def test_the_cli_refuses_to_trust_everyone_with_exit_code_2() -> None:
    result = CliRunner().invoke(app, ["--memory", "--trusted-proxy", "0.0.0.0/0"])
    assert result.exit_code == 2
    assert "must not trust every address" in result.stderr


async def test_a_trusted_proxy_sets_the_address_limits_and_logs_use(
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = RelayConfig(port=0, memory=True, trusted_proxy=("127.0.0.1",), max_conn_per_ip=1)
    async with Relay(config) as relay:
        first = await login(relay.url, Identity("a"), headers={"X-Forwarded-For": "203.0.113.7"})
        second = await login(relay.url, Identity("b"), headers={"X-Forwarded-For": "203.0.113.8"})
        assert dict(relay.sessions.per_ip) == {"203.0.113.7": 1, "203.0.113.8": 1}
        caplog.set_level(logging.WARNING, logger="e2echat_server")
        third = await open_raw(relay.url, headers={"X-Forwarded-For": "203.0.113.7"})
        await closed_with(third.conn, CloseCode.POLICY)
        refused = [r for r in caplog.records if r.getMessage() == "refused"]
        assert [r.fields["peer"] for r in refused] == ["203.0.113.7"]  # type: ignore[attr-defined]
        await first.close()
        await second.close()


async def test_a_spoofed_header_from_an_untrusted_peer_is_ignored() -> None:
    config = RelayConfig(port=0, memory=True, trusted_proxy=("10.0.0.0/8",))
    async with Relay(config) as relay:
        client = await login(relay.url, Identity("a"), headers={"X-Forwarded-For": "203.0.113.7"})
        assert dict(relay.sessions.per_ip) == {"127.0.0.1": 1}
        await client.close()
