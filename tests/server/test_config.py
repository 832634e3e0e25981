"""Config merging: flags over environment over file over defaults, every value checked."""

import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from e2echat_server import __version__
from e2echat_server.cli import app
from e2echat_server.config import (
    SETTINGS,
    ConfigError,
    RelayConfig,
    from_env,
    from_toml,
    load,
    merge,
    service_links,
    settings_table,
)

from e2echat.protocol import MAX_BODY, MAX_FRAME


def test_defaults_just_work() -> None:
    config = merge({}, {}, {})
    assert config == RelayConfig()
    assert (config.host, config.port, config.memory) == ("127.0.0.1", 8765, False)
    assert (config.max_frame, config.max_body) == (MAX_FRAME, MAX_BODY)
    assert config.data_dir.name == "e2echat-server"


def test_flags_beat_env_beat_file() -> None:
    file = {"port": 1, "host": "10.0.0.1", "rate": 5}
    env = {"port": "2", "host": "10.0.0.2"}
    flags: dict[str, object] = {"port": 3, "host": None}
    config = merge(flags, env, file)
    assert (config.port, config.host, config.rate) == (3, "10.0.0.2", 5.0)


def test_env_variables_are_prefixed_and_typed() -> None:
    env = from_env(
        {
            "E2ECHAT_SERVER_MEMORY": "yes",
            "E2ECHAT_SERVER_ORIGINS": "https://a.example, https://b.example",
            "E2ECHAT_SERVER_MAX_BODY": "1024",
            "E2ECHAT_DATA_DIR": "/not/ours",
        }
    )
    config = merge({}, env, {})
    assert config.memory is True
    assert config.origins == ("https://a.example", "https://b.example")
    assert config.max_body == 1024
    assert config.data_dir != Path("/not/ours")


def test_an_unknown_server_variable_is_refused_naming_the_closest_setting() -> None:
    """As an unknown TOML key is: a mistyped variable used to change nothing, silently."""
    with pytest.raises(
        ConfigError,
        match=re.escape(
            "Unknown setting 'E2ECHAT_SERVER_MAX_MEMBER' in the environment: did you mean"
            " 'E2ECHAT_SERVER_MAX_MEMBERS'?"
        ),
    ):
        load({}, {"E2ECHAT_SERVER_MAX_MEMBER": "5000"}, None)
    with pytest.raises(
        ConfigError, match=r"^Unknown setting 'E2ECHAT_SERVER_COLOUR' in the environment\.$"
    ):
        from_env({"E2ECHAT_SERVER_COLOUR": "blue"})
    with pytest.raises(ConfigError, match=r"did you mean 'E2ECHAT_SERVER_CONFIG'\?$"):
        from_env({"E2ECHAT_SERVER_CONFIG_FILE": "relay.toml"})
    # The config file's own variable is no setting but is known; the client's are not ours.
    env = {"E2ECHAT_SERVER_CONFIG": "relay.toml", "E2ECHAT_NAME": "x", "E2ECHAT_SERVER_PORT": "1"}
    assert from_env(env) == {"port": "1"}


def test_toml_file_accepts_dashes_and_rejects_unknown_keys(tmp_path: Path) -> None:
    path = tmp_path / "relay.toml"
    path.write_text('max-members = 50\ndata_dir = "~/relay"\ntls-cert = ""\n')
    config = load({}, {}, path)
    assert config.max_members == 50
    assert config.data_dir == Path("~/relay").expanduser()
    assert config.tls_cert is None
    with pytest.raises(ConfigError, match=r"^Unknown setting 'colour' in the config file\.$"):
        from_toml("colour = 'blue'")
    with pytest.raises(
        ConfigError, match=r"'max-member' in the config file: did you mean 'max_members'\?$"
    ):
        from_toml("max-member = 5000")
    with pytest.raises(ConfigError, match="not valid TOML"):
        from_toml("port = ")
    with pytest.raises(ConfigError, match="Cannot read"):
        load({}, {}, tmp_path / "missing.toml")


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"port": "eighty"}, "'port' cannot be"),
        ({"port": 70000}, "'port' must be"),
        ({"memory": "maybe"}, "'memory' cannot be"),
        ({"max_body": True}, "'max_body' cannot be"),
        ({"max_frame": 10 * MAX_FRAME}, "'max_frame' must be"),
        ({"max_body": 4096, "max_frame": 4096}, "'max_body' must be below"),
        ({"tls_cert": "cert.pem"}, "'tls_cert' needs tls_key"),
        ({"rate": 0}, "'rate' must be positive"),
        ({"log_level": "loud"}, "'log_level' must be"),
        ({"name": "a\u202eb"}, "'name'"),
        ({"send_buffer": 10}, "'send_buffer'"),
        ({"new_keys_per_ip": 0}, "'new_keys_per_ip' must be positive"),
        ({"new_keys_burst": 0}, "'new_keys_burst' must be at least 1"),
        ({"forget_after_s": 0}, "'forget_after_s' must be at least 1"),
        ({"welcome_members": -1}, "'welcome_members' must be at least 0"),
        ({"redis_replicas": 1}, "'redis_replicas' needs redis"),
        ({"redis": "redis://r", "redis_replicas": -1}, "'redis_replicas' must be 0 or more"),
        ({"redis_replica_timeout_s": 0}, "'redis_replica_timeout_s' must be above 0"),
        ({"commit_window_ms": -1}, "'commit_window_ms' must be 0..100"),
        ({"commit_window_ms": 250}, "'commit_window_ms' must be 0..100"),
    ],
)
def test_bad_values_are_refused_with_the_setting_named(
    settings: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        merge({}, {}, settings)


def test_identity_limits_come_from_flags_env_and_file(tmp_path: Path) -> None:
    defaults = RelayConfig()
    assert (defaults.new_keys_per_ip, defaults.new_keys_burst) == (60.0, 20)
    assert defaults.forget_after_s == 7 * 86400
    path = tmp_path / "relay.toml"
    path.write_text("new-keys-per-ip = 6\nnew_keys_burst = 3\nforget-after-s = 60\n")
    env = {"E2ECHAT_SERVER_NEW_KEYS_BURST": "4", "E2ECHAT_SERVER_FORGET_AFTER_S": "120"}
    config = load({"forget_after_s": 180}, env, path)
    assert (config.new_keys_per_ip, config.new_keys_burst, config.forget_after_s) == (6, 4, 180)


def test_docs_settings_table_is_the_schema() -> None:
    """docs/server.md shows exactly the settings the schema declares. To update it, paste
    the output of: uv run python -c 'from e2echat_server.config import settings_table as t;
    print(t(), end="")'."""
    docs = (Path(__file__).parents[2] / "docs" / "server.md").read_text(encoding="utf-8")
    assert settings_table() in docs


def test_every_setting_is_a_flag_an_env_variable_and_a_toml_key(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["--help"], terminal_width=200)
    for setting in SETTINGS:
        assert setting.flag in result.output, setting.name
    example = {"port": 4000, "max_members": 7, "log_json": True, "ping_interval_s": 3.5}
    for name, value in example.items():
        assert getattr(merge({name: str(value)}, {}, {}), name) == value  # as a flag
        env = {f"E2ECHAT_SERVER_{name.upper()}": str(value)}
        assert getattr(load({}, env, None), name) == value
        path = tmp_path / "relay.toml"
        path.write_text(f"{name.replace('_', '-')} = {str(value).lower()}\n")
        assert getattr(load({}, {}, path), name) == value


@pytest.mark.parametrize("command", [[], ["admin"]])
def test_version_on_every_command(command: list[str]) -> None:
    result = CliRunner().invoke(app, [*command, "--version"])
    assert (result.exit_code, result.output.strip()) == (
        0,
        f"e2echat-server, version {__version__}",
    )


def test_redis_takes_a_url_and_excludes_memory() -> None:
    assert merge({"redis": "redis://cache:6379/2"}, {}, {}).redis == "redis://cache:6379/2"
    assert merge({}, {"redis": "unix:///run/redis.sock"}, {}).redis == "unix:///run/redis.sock"
    assert merge({"redis": "rediss://:pw@cache/"}, {}, {}).redis == "rediss://:pw@cache/"
    for wrong in ("cache:6379", "redis://cache:notaport/0", "redis://cache:6379/x", "redis://"):
        with pytest.raises(ConfigError, match="'redis' must be a URL"):
            merge({"redis": wrong}, {}, {})
    with pytest.raises(ConfigError, match="'redis' cannot be combined with memory"):
        merge({"redis": "redis://cache", "memory": True}, {}, {})


# What Kubernetes gives a pod for a Service named e2echat-server with a port named ws.
KUBERNETES_LINKS = {
    "E2ECHAT_SERVER_SERVICE_HOST": "10.0.0.11",
    "E2ECHAT_SERVER_SERVICE_PORT": "8765",
    "E2ECHAT_SERVER_SERVICE_PORT_WS": "8765",
    "E2ECHAT_SERVER_PORT": "tcp://10.0.0.11:8765",
    "E2ECHAT_SERVER_PORT_8765_TCP": "tcp://10.0.0.11:8765",
    "E2ECHAT_SERVER_PORT_8765_TCP_PROTO": "tcp",
    "E2ECHAT_SERVER_PORT_8765_TCP_PORT": "8765",
    "E2ECHAT_SERVER_PORT_8765_TCP_ADDR": "10.0.0.11",
}


def test_kubernetes_service_links_are_not_settings() -> None:
    """A Service named e2echat-server must not stop the relay (unknown variables) nor set
    its port to a URL; the settings given beside the links still count."""
    assert service_links(KUBERNETES_LINKS) == sorted(KUBERNETES_LINKS)
    assert from_env({**KUBERNETES_LINKS, "E2ECHAT_SERVER_MAX_BODY": "1024"}) == {"max_body": "1024"}
    own_port = {**KUBERNETES_LINKS, "E2ECHAT_SERVER_PORT": "9000"}  # the pod spec's, not a link
    assert from_env(own_port) == {"port": "9000"}
    assert load({}, own_port, None).port == 9000
    with pytest.raises(ConfigError, match="Unknown setting 'E2ECHAT_SERVER_MAX_MEMBER'"):
        from_env({**KUBERNETES_LINKS, "E2ECHAT_SERVER_MAX_MEMBER": "5"})  # a typo still is one


def test_the_links_of_a_service_named_e2echat_server_redis_are_not_settings_either() -> None:
    redis_links = {
        "E2ECHAT_SERVER_REDIS_SERVICE_HOST": "10.0.0.12",
        "E2ECHAT_SERVER_REDIS_SERVICE_PORT": "6379",
        "E2ECHAT_SERVER_REDIS_PORT": "tcp://10.0.0.12:6379",
        "E2ECHAT_SERVER_REDIS_PORT_6379_TCP_ADDR": "10.0.0.12",
    }
    own = {**redis_links, "E2ECHAT_SERVER_REDIS": "redis://10.0.0.12:6379/0"}
    assert service_links(own) == sorted(redis_links)
    assert from_env(own) == {"redis": "redis://10.0.0.12:6379/0"}


def test_link_like_variables_without_a_service_host_are_settings_as_ever() -> None:
    lone = {"E2ECHAT_SERVER_PORT_8765_TCP_ADDR": "10.0.0.11"}
    assert service_links(lone) == []
    with pytest.raises(ConfigError, match="Unknown setting 'E2ECHAT_SERVER_PORT_8765_TCP_ADDR'"):
        from_env(lone)
    with pytest.raises(ConfigError, match="port"):
        load({}, {"E2ECHAT_SERVER_PORT": "tcp://10.0.0.11:8765"}, None)
