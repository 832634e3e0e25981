"""Fixtures: an in-memory relay on an ephemeral 127.0.0.1 port per test; a real Redis."""

import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from pathlib import Path

import pytest
from e2echat_server import Relay, RelayConfig
from redis import Redis

from tests.redis_server import INSTALL, RedisServer, redis_binary
from tests.server.wire import Identity, WireClient, login


@pytest.fixture
async def relay() -> AsyncIterator[Relay]:
    async with Relay(RelayConfig(port=0, memory=True)) as running:
        yield running


@pytest.fixture
def connect(relay: Relay) -> Callable[[str], Awaitable[WireClient]]:
    """``await connect("alice")``: a fresh identity, logged in to the fixture relay."""

    async def make(name: str) -> WireClient:
        return await login(relay.url, Identity(name))

    return make


def require_redis_server(environ: Mapping[str, str]) -> str:
    """The redis-server to test against; without one the test skips, or fails under CI."""
    binary = redis_binary()
    if binary is None:
        message = f"redis-server is not installed (Debian: {INSTALL})"
        if environ.get("CI") == "true":
            pytest.fail(message + "; CI must run the Redis tests")
        pytest.skip(message)
    return binary


@pytest.fixture(scope="session")
def redis_server_binary() -> str:
    return require_redis_server(os.environ)


@pytest.fixture(scope="session")
def shared_redis(
    redis_server_binary: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RedisServer]:
    """One in-memory redis-server per test process, emptied before each test that uses it."""
    server = RedisServer(redis_server_binary, tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(shared_redis: RedisServer) -> str:
    """The URL of an empty Redis database."""
    with Redis.from_url(shared_redis.url) as client:
        client.flushall()
    return shared_redis.url


@pytest.fixture
def durable_redis(redis_server_binary: str, tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test's own, fsyncing its append-only file on every write."""
    server = RedisServer(redis_server_binary, tmp_path / "redis", appendfsync="always")
    server.start()
    yield server
    server.stop()


REDIS_PASSWORD = "s3cret-pw"  # of every user of `guarded_redis`


@pytest.fixture
def guarded_redis(redis_server_binary: str, tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test's own that takes no one without a password: the
    default user and ``relay`` (the keys and channels a relay uses, no dangerous
    command), both with REDIS_PASSWORD, and ``no-bus`` (as ``relay``, but no channel)."""
    server = RedisServer(redis_server_binary, tmp_path / "redis")
    server.start()
    try:
        with Redis.from_url(server.url) as admin:
            for user, channels in (("relay", ["e2echat:*"]), ("no-bus", [])):
                admin.acl_setuser(
                    user,
                    enabled=True,
                    passwords=[f"+{REDIS_PASSWORD}"],
                    keys=["e2echat:*"],
                    channels=channels,
                    commands=["+@all", "-@dangerous"],
                )
            admin.config_set("requirepass", REDIS_PASSWORD)  # the default user's, from now on
        yield server
    finally:
        server.stop()


@pytest.fixture
def replicated_redis(
    redis_server_binary: str, tmp_path: Path
) -> Iterator[tuple[RedisServer, RedisServer]]:
    """A primary and one replica of it, in sync (``WAIT`` saw the replica) when yielded."""
    primary = RedisServer(redis_server_binary, tmp_path / "primary")
    primary.start()
    replica = RedisServer(redis_server_binary, tmp_path / "replica", replica_of=primary)
    try:
        replica.start()
        with Redis.from_url(primary.url, socket_timeout=60) as client:
            client.set("synced", 1)  # WAIT returns once the replica has it: in sync
            assert client.wait(1, 30_000) == 1, "the replica did not come up"
        yield primary, replica
    finally:
        replica.stop()
        primary.stop()
