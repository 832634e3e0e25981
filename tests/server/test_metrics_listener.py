"""--metrics-listen: metrics on a listener of their own, with process and build info."""

import asyncio

import pytest
from e2echat_server import Relay, RelayConfig
from e2echat_server.config import ConfigError
from e2echat_server.version import __version__
from prometheus_client.parser import text_string_to_metric_families

from e2echat.protocol import CloseCode
from tests.server.test_http import http_get
from tests.server.wire import Identity, closed_with, login, open_raw


async def scrape(url: str) -> tuple[int, str]:
    host_port = url.removeprefix("http://").split("/", 1)[0]
    host, port = host_port.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    path = "/" + url.split("/", 3)[3]
    writer.write(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
    await writer.drain()
    raw = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split()[1]), body.decode()


async def test_the_metrics_listener_serves_refusals_process_and_build_info() -> None:
    config = RelayConfig(port=0, memory=True, metrics_listen="127.0.0.1:0", max_conn_per_ip=1)
    async with Relay(config) as relay:
        assert relay.metrics_url is not None
        alice = await login(relay.url, Identity("alice"))
        extra = await open_raw(relay.url)
        await closed_with(extra.conn, CloseCode.POLICY)
        status, text = await scrape(relay.metrics_url)
        assert status == 200
        samples = {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }
        assert samples[("e2echat_refusals_total", (("reason", "per_ip"),))] == 1
        assert samples[("e2echat_authenticated_connections", ())] == 1
        assert samples[("process_resident_memory_bytes", ())] > 0
        build = [labels for name, labels in samples if name == "e2echat_build_info"]
        assert dict(build[0])["version"] == __version__
        status, _, body = await http_get(relay, "/metrics")
        assert status == 404  # no longer on the public port, nor named there
        assert body.endswith(b"or GET /healthz or /api/info.\n")
        status, _ = await scrape(relay.metrics_url.replace("/metrics", "/nope"))
        assert status == 404
        await alice.close()


@pytest.mark.parametrize("bad", ["9108", "host:", "::1:9108", "h:99999"])
def test_a_bad_metrics_address_is_a_config_error(bad: str) -> None:
    with pytest.raises(ConfigError, match="metrics_listen"):
        RelayConfig(metrics_listen=bad)


def test_ipv6_metrics_addresses_are_bracketed() -> None:
    assert RelayConfig(metrics_listen="[::1]:9108").metrics_listen == "[::1]:9108"
