"""deploy/: what the files reference exists in the code: settings, metric names, ports,
paths. Reads the files only (no docker, no systemd, no network): the Dockerfile through
Docker's own parser (the ``dockerfile`` package), since no Docker engine runs here."""

import fnmatch
import json
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import dockerfile
import yaml
from e2echat_server.config import SETTINGS, RelayConfig, convert, from_env, split_address
from e2echat_server.metrics import Metrics

ROOT = Path(__file__).parents[2]
DEPLOY = ROOT / "deploy"
_BY_FLAG = {s.flag: s for s in SETTINGS}
_METRIC = re.compile(r"\b((?:e2echat|process|python)_[a-z0-9_]+|up)\b")


def exported_metrics() -> set[str]:
    """Every sample name the relay's /metrics can carry."""
    names = set()
    for family in Metrics().registry().collect():
        suffixes = {
            "counter": ("_total",),
            "histogram": ("", "_bucket", "_sum", "_count"),  # "": how the docs name one
        }.get(family.type, ("",))
        names.update(family.name + suffix for suffix in suffixes)
        names.update(sample.name for sample in family.samples)
    return names


def referenced_metrics(expressions: list[str]) -> set[str]:
    return {name for expr in expressions for name in _METRIC.findall(expr)}


def alert_rules() -> list[dict[str, Any]]:
    document = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def dashboard_expressions() -> list[str]:
    board = json.loads((DEPLOY / "grafana" / "e2echat-relay.json").read_text())
    return [target["expr"] for panel in board["panels"] for target in panel["targets"]]


def unit_config() -> RelayConfig:
    """The settings of the systemd unit's ExecStart, as the relay would parse them."""
    unit = (DEPLOY / "systemd" / "e2echat-server.service").read_text()
    exec_start = re.search(r"^ExecStart=(.*?)(?<!\\)$", unit, re.MULTILINE | re.DOTALL)
    assert exec_start is not None
    program, *words = shlex.split(exec_start.group(1).replace("\\\n", " "))
    assert program.endswith("/e2echat-server")
    chosen: dict[str, object] = {}
    while words:
        flag = words.pop(0)
        assert flag in _BY_FLAG, f"the unit passes {flag}, which the relay does not have"
        setting = _BY_FLAG[flag]
        chosen[setting.name] = True if setting.kind is bool else words.pop(0)
    return convert(chosen)


def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return document


def relay_environment(environment: dict[str, str]) -> RelayConfig:
    resolved = {
        k: re.sub(r"\$\{E2ECHAT_DOMAIN[^}]*\}", "chat.example.org", v)
        for k, v in environment.items()
    }
    known = {s.env for s in SETTINGS}
    assert set(resolved) <= known, set(resolved) - known
    return convert(from_env(resolved))


def test_alerts_and_dashboard_use_metrics_the_relay_exports() -> None:
    rules = alert_rules()
    expressions = [rule["expr"] for rule in rules] + dashboard_expressions()
    referenced = referenced_metrics(expressions)
    assert {"e2echat_refusals_total", "e2echat_store_seconds_bucket"} <= referenced
    assert referenced - {"up"} <= exported_metrics(), referenced - exported_metrics()
    for rule in rules:
        assert rule["alert"].startswith("E2echat")
        assert rule["annotations"]["summary"]


def test_the_docs_metrics_table_names_exported_metrics() -> None:
    docs = (ROOT / "docs" / "server.md").read_text()
    table = docs.split("### Metrics", 1)[1].split("\n#", 1)[0]
    named = set(re.findall(r"`(e2echat_[a-z_]+)", table))
    assert "e2echat_build_info" in named
    assert named <= exported_metrics(), named - exported_metrics()


def test_the_systemd_unit_passes_settings_the_relay_accepts_and_proxies_match() -> None:
    config = unit_config()
    assert "127.0.0.1" in config.trusted_proxy
    assert config.metrics_listen is not None
    nginx = (DEPLOY / "nginx" / "e2echat.conf").read_text()
    assert re.search(rf"server {config.host}:{config.port};", nginx)
    assert "proxy_set_header X-Forwarded-For $remote_addr;" in nginx
    assert "proxy_set_header Upgrade $http_upgrade;" in nginx
    caddy = (DEPLOY / "caddy" / "Caddyfile").read_text()
    assert f"{{$E2ECHAT_UPSTREAM:{config.host}:{config.port}}}" in caddy
    scrape = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    (job,) = scrape["scrape_configs"]
    assert job["job_name"] == "e2echat"  # the alert rules select job="e2echat"
    assert job["static_configs"][0]["targets"] == [config.metrics_listen]
    unit = (DEPLOY / "systemd" / "e2echat-server.service").read_text()
    for hardening in ("NoNewPrivileges=yes", "ProtectSystem=strict", "CapabilityBoundingSet="):
        assert hardening in unit.splitlines()
    assert config.admin_socket is not None
    assert str(config.admin_socket.parent).endswith("/run/e2echat-server")
    assert "RuntimeDirectory=e2echat-server" in unit.splitlines()


def test_the_compose_file_and_dockerfile_agree_with_the_settings() -> None:
    services = compose()["services"]
    relay, caddy = services["relay"], services["caddy"]
    config = relay_environment(relay["environment"])
    caddy_address = caddy["networks"]["front"]["ipv4_address"]
    assert config.trusted_proxy == (caddy_address,)
    assert caddy["environment"]["E2ECHAT_UPSTREAM"] == f"relay:{config.port}"
    assert config.metrics_listen is not None
    metrics_port = split_address(config.metrics_listen)[1]  # type: ignore[index]
    assert relay["ports"] == [f"127.0.0.1:{metrics_port}:{metrics_port}"]  # host-only
    assert (DEPLOY / relay["build"]["context"] / relay["build"]["dockerfile"]).is_file()
    caddyfile = caddy["volumes"][0].split(":", 1)[0]
    assert (DEPLOY / caddyfile).is_file()
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    env = dict(re.findall(r"(E2ECHAT_SERVER_\w+)=(\S+)", dockerfile))
    image = relay_environment(env)
    assert (image.port, image.data_dir, image.metrics_listen) == (
        config.port,
        config.data_dir,
        config.metrics_listen,
    )
    assert f"EXPOSE {config.port} {metrics_port}" in dockerfile
    assert f"http://127.0.0.1:{config.port}/healthz" in dockerfile
    assert re.search(r"^USER relay$", dockerfile, re.MULTILINE)


def dockerfile_stages() -> list[list[dockerfile.Command]]:
    """deploy/Dockerfile as Docker's own parser reads it, one list per FROM."""
    stages: list[list[dockerfile.Command]] = []
    for command in dockerfile.parse_file(str(DEPLOY / "Dockerfile")):
        if command.cmd == "FROM":
            stages.append([])
        stages[-1].append(command)
    return stages


def test_the_dockerfile_builds_from_pinned_images_and_runs_the_relay_unprivileged() -> None:
    stages = dockerfile_stages()
    names = {stage[0].value[2] for stage in stages if len(stage[0].value) == 3}
    for stage in stages:
        image = stage[0].value[0]
        assert ":" in image, f"{image} has no tag"
        assert not image.endswith(":latest")
    every = [command for stage in stages for command in stage]
    assert "ADD" not in {c.cmd for c in every}  # COPY only: nothing fetched at build
    for command in every:
        for flag in command.flags:
            if flag.startswith("--from="):
                source = flag.removeprefix("--from=")
                assert source in names or ":" in source, f"unknown stage {source}"
    final = {c.cmd: c for c in stages[-1]}
    order = [c.cmd for c in stages[-1]]
    assert final["USER"].value == ("relay",)
    assert order.index("USER") < order.index("ENTRYPOINT")
    assert final["ENTRYPOINT"].json  # exec form: the relay is PID 1 and gets SIGTERM
    scripts = tomllib.loads((ROOT / "server" / "pyproject.toml").read_text())
    assert final["ENTRYPOINT"].value[0] in scripts["project"]["scripts"]
    assert final["HEALTHCHECK"].value[0] == "CMD"
    assert final["STOPSIGNAL"].value == ("SIGTERM",)


def test_the_build_context_sends_the_sources_and_no_local_state() -> None:
    """``docker build -f deploy/Dockerfile .`` reads deploy/Dockerfile.dockerignore."""
    patterns = [
        line.strip()
        for line in (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]

    def ignored(path: str) -> bool:
        return any(
            fnmatch.fnmatch(path, p) or fnmatch.fnmatch(path, p.removeprefix("**/"))
            for p in patterns
        )

    for local in (".git", ".venv", "server/.venv", "e2echat/__pycache__", "dist"):
        assert ignored(local), local
    needed = ["pyproject.toml", "uv.lock", "e2echat", "server", "client"]
    needed += [str(p.relative_to(ROOT)) for p in (ROOT / "server").rglob("*.py")]
    assert not [path for path in needed if ignored(path)]
