"""deploy/cluster: the relays' settings are ones the relay accepts, every relay service is
behind HAProxy, and Redis keeps every answered write (appendfsync always)."""

import re
from pathlib import Path

from e2echat_server.config import SETTINGS, convert, from_env

CLUSTER = Path(__file__).parents[2] / "deploy" / "cluster"


def relay_environment(compose: str) -> dict[str, str]:
    """The ``KEY: value`` lines of the shared relay environment (``&relay-env``)."""
    block = compose.split("environment: &relay-env\n", 1)[1]
    found = {}
    for line in block.splitlines():
        match = re.fullmatch(r"    (E2ECHAT_SERVER_\w+): ([^#]*?)\s*(#.*)?", line)
        if match is None:
            if line.strip() and not line.lstrip().startswith("#"):
                break
            continue
        found[match.group(1)] = match.group(2).strip('"')
    return found


def test_the_relay_nodes_settings_are_valid() -> None:
    env = relay_environment((CLUSTER / "compose.yaml").read_text())
    known = {s.env for s in SETTINGS}
    assert set(env) <= known, set(env) - known
    config = convert(from_env(env))
    assert config.redis == "redis://redis:6379/0"
    assert config.host == "0.0.0.0"


def test_every_relay_service_is_behind_haproxy() -> None:
    compose = (CLUSTER / "compose.yaml").read_text()
    services = set(re.findall(r"^  (relay-\w+):\n    <<: \*relay$", compose, re.MULTILINE))
    haproxy = (CLUSTER / "haproxy.cfg").read_text()
    servers = set(re.findall(r"^    server (\S+) \1:8765$", haproxy, re.MULTILINE))
    assert len(services) >= 2
    assert services == servers


def test_haproxy_takes_out_a_node_whose_healthz_fails() -> None:
    """A node that lost Redis answers /healthz with 503 (docs/server.md): not a 200."""
    haproxy = (CLUSTER / "haproxy.cfg").read_text()
    assert "    option httpchk GET /healthz\n" in haproxy
    assert "    http-check expect status 200\n" in haproxy


def test_redis_fsyncs_every_answered_write() -> None:
    conf = dict(
        line.split(None, 1)
        for line in (CLUSTER / "redis.conf").read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert (conf["appendonly"], conf["appendfsync"]) == ("yes", "always")
    assert conf["maxmemory-policy"] == "noeviction"
