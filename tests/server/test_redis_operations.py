"""A relay's Redis as its operator meets it: credentials, ACLs and databases Redis
refuses."""

import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from e2echat_server.cli import app

from tests.redis_server import RedisServer
from tests.server.conftest import REDIS_PASSWORD

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
