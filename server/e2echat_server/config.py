"""The relay's configuration, and the pure merge of flags, environment and config file.

Precedence is flags over environment over file over defaults, field by field. Environment
variables are ``E2ECHAT_SERVER_<FIELD>`` (``E2ECHAT_SERVER_MAX_BODY``): the ``SERVER_``
infix keeps them apart from the client's ``E2ECHAT_*`` variables, which may share a shell.
Every value is checked here, once, so the running relay can trust its config.
"""

import tomllib
import types
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints

import platformdirs

from e2echat.protocol import (
    BLOB_QUOTA_DEFAULT,
    BURST,
    HANDSHAKE_TIMEOUT_S,
    HISTORY_AGE_S,
    HISTORY_COUNT,
    MAILBOX_MAX,
    MAX_BLOB_SIZE,
    MAX_BLOB_SIZE_DEFAULT,
    MAX_BODY,
    MAX_CONN_PER_IP,
    MAX_FRAME,
    MAX_MEMBERS,
    MAX_ROOMS_PER_USER,
    RATE,
)

ENV_PREFIX = "E2ECHAT_SERVER_"


class ConfigError(ValueError):
    """A configuration value that cannot be used; the message names the setting."""


def default_data_dir() -> Path:
    """Where the SQLite store lives unless told otherwise (per-user, per-platform)."""
    return Path(platformdirs.user_data_dir("e2echat-server", appauthor=False))


@dataclass(frozen=True, slots=True)
class RelayConfig:
    """Everything the relay can be told. Defaults make `e2echat-server` just work."""

    host: str = "127.0.0.1"
    port: int = 8765
    data_dir: Path = field(default_factory=default_data_dir)
    memory: bool = False
    fsync: bool = False
    create_db: bool = False  # start on an empty database file (refused otherwise)
    repair_db: bool = False  # rebuild a damaged database from its readable rows
    tls_cert: Path | None = None
    tls_key: Path | None = None
    origins: tuple[str, ...] = ()
    name: str = "e2echat-relay"
    log_level: str = "info"
    log_json: bool = False
    max_frame: int = MAX_FRAME
    max_body: int = MAX_BODY
    max_members: int = MAX_MEMBERS
    max_rooms_per_user: int = MAX_ROOMS_PER_USER
    history_count: int = HISTORY_COUNT
    history_age_s: int = HISTORY_AGE_S
    mailbox_max: int = MAILBOX_MAX
    rate: float = RATE
    burst: int = BURST
    handshake_timeout_s: float = HANDSHAKE_TIMEOUT_S
    max_conn_per_ip: int = MAX_CONN_PER_IP
    new_keys_per_ip: float = 60.0  # identities never seen before, per hour per address
    new_keys_burst: int = 20
    forget_after_s: int = 7 * 86400
    send_buffer: int = 1024 * 1024
    send_timeout_s: float = 10.0  # a bulk reply frame's wait for a client that does not read
    welcome_members: int = 1024 * 1024  # encoded member bytes in one welcome (protocol §4)
    ping_interval_s: float = 20.0
    ping_timeout_s: float = 20.0
    blob_max_size: int = MAX_BLOB_SIZE_DEFAULT  # bytes of one encrypted file (protocol §11)
    blob_quota: int = BLOB_QUOTA_DEFAULT  # bytes of files one user may hold at once

    def __post_init__(self) -> None:
        _check(0 <= self.port <= 65535, "port", "must be 0..65535")
        _check((self.tls_cert is None) == (self.tls_key is None), "tls_cert", "needs tls_key")
        _check(1024 <= self.max_frame <= MAX_FRAME, "max_frame", f"must be 1024..{MAX_FRAME}")
        _check(256 <= self.max_body <= MAX_BODY, "max_body", f"must be 256..{MAX_BODY}")
        _check(self.max_body < self.max_frame, "max_body", "must be below max_frame")
        _check(2 <= self.max_members <= 100_000, "max_members", "must be 2..100000")
        _check(self.max_rooms_per_user >= 1, "max_rooms_per_user", "must be at least 1")
        _check(self.history_count >= 1, "history_count", "must be at least 1")
        _check(self.history_age_s >= 1, "history_age_s", "must be at least 1")
        _check(self.mailbox_max >= 1, "mailbox_max", "must be at least 1")
        _check(self.rate > 0, "rate", "must be positive")
        _check(self.burst >= 1, "burst", "must be at least 1")
        _check(self.handshake_timeout_s > 0, "handshake_timeout_s", "must be positive")
        _check(self.max_conn_per_ip >= 1, "max_conn_per_ip", "must be at least 1")
        _check(self.new_keys_per_ip > 0, "new_keys_per_ip", "must be positive")
        _check(self.new_keys_burst >= 1, "new_keys_burst", "must be at least 1")
        _check(self.forget_after_s >= 1, "forget_after_s", "must be at least 1")
        _check(self.send_buffer >= self.max_frame, "send_buffer", "must be at least max_frame")
        _check(self.send_timeout_s > 0, "send_timeout_s", "must be positive")
        _check(self.welcome_members >= 0, "welcome_members", "must be at least 0")
        _check(1 <= len(self.name) <= 64 and self.name.isprintable(), "name", "1..64 printable")
        _check(self.log_level in _LOG_LEVELS, "log_level", f"must be one of {_LOG_LEVELS}")
        _check(0 <= self.blob_max_size <= MAX_BLOB_SIZE, "blob_max_size", "must be 0..2^40")
        _check(self.blob_quota >= 0, "blob_quota", "must be at least 0")


_LOG_LEVELS = ("debug", "info", "warning", "error")
_FIELD_TYPES: dict[str, Any] = get_type_hints(RelayConfig)


def _check(ok: bool, name: str, rule: str) -> None:
    if not ok:
        raise ConfigError(f"Setting {name!r} {rule}.")


def _convert(name: str, value: object) -> object:
    """Turn a raw value (a string from the environment, a TOML value) into the field's type."""
    kind = _FIELD_TYPES[name]
    if get_origin(kind) in (Union, types.UnionType):
        if value is None or value == "":
            return None
        kind = next(arg for arg in get_args(kind) if arg is not type(None))
    try:
        if kind is bool:
            return _to_bool(value)
        if get_origin(kind) is tuple:
            items = value.split(",") if isinstance(value, str) else list(value)  # type: ignore[call-overload]
            return tuple(str(item).strip() for item in items if str(item).strip())
        if kind in (int, float) and isinstance(value, bool):
            raise TypeError("a boolean is not a number")
        if kind is Path:
            return Path(str(value)).expanduser()
        return kind(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"Setting {name!r} cannot be {value!r}: {exc}.") from None


def _to_bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ValueError("expected true or false")


def field_names() -> tuple[str, ...]:
    """Every setting's name, in declaration order."""
    return tuple(f.name for f in fields(RelayConfig))


def from_env(environ: Mapping[str, str]) -> dict[str, object]:
    """The settings found in ``environ`` (``E2ECHAT_SERVER_*``), still as raw strings."""
    found: dict[str, object] = {}
    for name in field_names():
        raw = environ.get(ENV_PREFIX + name.upper())
        if raw is not None:
            found[name] = raw
    return found


def from_toml(text: str) -> dict[str, object]:
    """The settings in a TOML document; keys may use ``-`` or ``_``; unknown keys are errors."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"The config file is not valid TOML: {exc}.") from None
    found: dict[str, object] = {}
    known = set(field_names())
    for key, value in data.items():
        name = key.replace("-", "_")
        if name not in known:
            raise ConfigError(f"Unknown setting {key!r} in the config file.")
        found[name] = value
    return found


def merge(
    flags: Mapping[str, object],
    env: Mapping[str, object],
    file: Mapping[str, object],
) -> RelayConfig:
    """Build a RelayConfig: for each field the first source that sets it wins.

    ``flags`` values of None mean "not given". Raises ConfigError on any bad value.
    """
    chosen: dict[str, object] = {}
    for name in field_names():
        for source in (flags, env, file):
            value = source.get(name)
            if value is not None:
                chosen[name] = _convert(name, value)
                break
    try:
        return RelayConfig(**chosen)  # type: ignore[arg-type]
    except TypeError as exc:
        raise ConfigError(str(exc)) from None


def load(flags: Mapping[str, object], environ: Mapping[str, str], path: Path | None) -> RelayConfig:
    """Merge flags, the environment and the TOML file at ``path`` (if any) into a config."""
    file: dict[str, object] = {}
    if path is not None:
        try:
            file = from_toml(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"Cannot read the config file {path}: {exc.strerror}.") from None
    return merge(flags, from_env(environ), file)
