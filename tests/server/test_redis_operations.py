"""A relay's Redis as its operator meets it: credentials, ACLs and databases Redis
refuses, an outage, a heartbeat Redis does not take."""

import logging
import time
from pathlib import Path

import msgspec
import pytest
from click.testing import CliRunner
from e2echat_server import Relay, redis_broker
from e2echat_server.cli import app
from e2echat_server.relay import REDIS_LOST_REASON
from e2echat_server.sessions import STORE_FAILED_REASON
from redis import Redis

from e2echat.protocol import Challenge, CloseCode
from tests.client.test_bot_ops import watching
from tests.redis_server import RedisServer
from tests.server.conftest import REDIS_PASSWORD
from tests.server.test_cluster import node_config
from tests.server.test_http import http_get
from tests.server.test_metrics_listener import scrape
from tests.server.wire import Identity, closed_with, login, open_raw

WRONG_PASSWORD = "not-the-password"


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("redis://:{wrong}@{at}/0", "refused the credentials: WRONGPASS "),
        ("redis://nobody:{password}@{at}/0", "refused the credentials: WRONGPASS "),
        ("redis://relay:{wrong}@{at}/0", "refused the credentials: WRONGPASS "),
        (
            "redis://{at}/0",
            "needs credentials and the URL has none (redis://USER:PASSWORD@host/db): NOAUTH ",
        ),
        (
            "redis://no-bus:{password}@{at}/0",  # subscribing to the bus is what it may not
            "refused the relay a command, key or channel it needs (the user's ACL): NOPERM ",
        ),
        (
            "redis://relay:{password}@{at}/99",
            "has no database 99 (see its 'databases' setting): ERR DB index is out of range",
        ),
    ],
)
def test_redis_refusing_the_relay_is_a_bad_setting_said_at_once_without_the_password(
    guarded_redis: RedisServer, tmp_path: Path, url: str, said: str
) -> None:
    at = f"127.0.0.1:{guarded_redis.port}"
    flags = ["--redis", url.format(at=at, password=REDIS_PASSWORD, wrong=WRONG_PASSWORD)]
    began = time.monotonic()
    result = CliRunner().invoke(app, [*flags, "--port", "0", "--data-dir", str(tmp_path)])
    assert time.monotonic() - began < 10  # not retried for the keepalive window (40 s)
    assert result.exit_code == 2  # a bad setting, as docs/server.md says
    assert result.output.startswith(f"e2echat-server: Setting 'redis': Redis at {at} {said}")
    assert result.output.count("\n") == 1
    assert REDIS_PASSWORD not in result.output
    assert WRONG_PASSWORD not in result.output


def _events(records: list[logging.LogRecord], name: str) -> list[logging.LogRecord]:
    return [r for r in records if r.getMessage() == name]


async def health(relay: Relay) -> tuple[int, bytes]:
    status, _, body = await http_get(relay, "/healthz")
    return status, body


async def test_while_redis_is_lost_healthz_is_503_and_clients_are_told_to_reconnect(
    durable_redis: RedisServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(redis_broker, "_RESUBSCRIBE_S", (0.01,))  # many tries per outage
    config = node_config(durable_redis.url, tmp_path)
    slow = msgspec.structs.replace(
        config, ping_interval_s=60.0, ping_timeout_s=60.0, metrics_listen="127.0.0.1:0"
    )
    async with watching("e2echat_server") as log, Relay(slow) as relay:  # no heartbeat due
        assert relay.metrics_url is not None
        metrics_healthz = relay.metrics_url.replace("/metrics", "/healthz")
        assert await health(relay) == (200, b"ok\n")
        bob = Identity("bob")
        await (await login(relay.url, bob)).close()
        alice = await login(relay.url, Identity("alice"))

        durable_redis.kill()
        await closed_with(alice.conn, CloseCode.TRY_AGAIN_LATER)
        assert alice.conn.close_reason == REDIS_LOST_REASON
        status, headers, body = await http_get(relay, "/healthz")
        assert (status, body) == (503, b"unavailable: the relay lost its Redis bus\n")
        assert headers["content-type"].startswith("text/plain")
        assert await scrape(metrics_healthz) == (503, body.decode())
        # A returning user is welcomed from memory, then what waits for it is read from Redis.
        returning = await open_raw(relay.url)
        await returning.send(bob.hello(await returning.expect(Challenge)))
        await closed_with(returning.conn, CloseCode.TRY_AGAIN_LATER)
        assert returning.conn.close_reason == STORE_FAILED_REASON

        durable_redis.start()
        restored = await log.wait(lambda r: r.getMessage() == "bus_restored")
        assert await health(relay) == (200, b"ok\n")
        assert await scrape(metrics_healthz) == (200, "ok\n")
        await (await login(relay.url, bob)).close()
    (lost,) = _events(log.records, "bus_lost")  # once for the outage, not once per try
    assert lost.levelno == logging.WARNING
    assert lost.__dict__["fields"]["error"] == "ConnectionError"
    assert _events(log.records, "bus_restored") == [restored]
    assert restored.levelno == logging.INFO
    assert restored.__dict__["fields"]["down_s"] > 0


async def test_while_redis_does_not_take_the_heartbeat_healthz_is_503(
    guarded_redis: RedisServer, tmp_path: Path
) -> None:
    at = f"{REDIS_PASSWORD}@127.0.0.1:{guarded_redis.port}/0"
    config = node_config(f"redis://relay:{at}", tmp_path)
    fast = msgspec.structs.replace(config, ping_interval_s=0.2, ping_timeout_s=0.2)
    with Redis.from_url(f"redis://:{at}") as admin:
        async with watching("e2echat_server") as log, Relay(fast) as relay:  # beats each 0.1 s
            admin.execute_command("ACL", "SETUSER", "relay", "-zadd")
            await log.wait(lambda r: r.getMessage() == "heartbeat_failed")
            body = b"unavailable: Redis does not take the relay's heartbeat\n"
            assert await health(relay) == (503, body)
            admin.execute_command("ACL", "SETUSER", "relay", "+zadd")
            await log.wait(lambda r: r.getMessage() == "heartbeat_restored")
            assert await health(relay) == (200, b"ok\n")
    assert len(_events(log.records, "heartbeat_failed")) == 1  # once, not once per beat
