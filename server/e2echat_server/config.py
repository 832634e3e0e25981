"""The relay's settings: one declarative schema, and the pure merge of its sources.

Every setting is one field of `RelayConfig`, a msgspec Struct: its type, its default and
its description (``Meta``) are the whole declaration. From it come the command-line
flags (`cli`), the environment variables, the TOML keys, the conversion of raw values
(``msgspec.convert``) and the settings table of docs/server.md (`settings_table`, which a
test compares with the document). Precedence is flags over environment over file over
defaults, field by field. Environment variables are ``E2ECHAT_SERVER_<FIELD>``: the
``SERVER_`` infix keeps them apart from the client's ``E2ECHAT_*`` variables. Every
value is checked here, once, so the running relay can trust its config.
"""

import difflib
import re
import tomllib
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Final

import msgspec
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
    MAX_DIRECTS,
    MAX_FRAME,
    MAX_MEMBERS,
    MAX_ROOMS_PER_USER,
    RATE,
    SHARE_BURST,
    SHARE_RATE,
)
from e2echat_server.access import REGISTRATION_MODES, ROOM_CREATION_MODES
from e2echat_server.proxies import networks

ENV_PREFIX: Final = "E2ECHAT_SERVER_"
CONFIG_ENV: Final = ENV_PREFIX + "CONFIG"  # the config file's path, not a setting
_LOG_LEVELS: Final = ("debug", "info", "warning", "error")
EVENT_LOOPS: Final = ("auto", "uvloop", "asyncio")
_REDIS_SCHEMES: Final = ("redis://", "rediss://", "unix://")


def _redis_url_ok(url: str) -> bool:
    """A Redis URL the client can open: a known scheme, and for TCP a host, a numeric
    port and a numeric database. redis-py's own parser is laxer: it fails on a bad port
    only at connect (a traceback, not a setting) and reads a database of "x" as 0."""
    if not url.startswith(_REDIS_SCHEMES):
        return False
    if url.startswith("unix://"):
        return True
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError for a port that is not a number)
    except ValueError:
        return False
    database = parts.path.strip("/")
    return bool(parts.hostname) and (database == "" or database.isdigit())


class ConfigError(ValueError):
    """A configuration value that cannot be used; the message names the setting."""


def default_data_dir() -> Path:
    """Where the SQLite store lives unless told otherwise (per-user, per-platform)."""
    return Path(platformdirs.user_data_dir("e2echat-server", appauthor=False))


def _about(text: str, *, live: bool = False, shown: str | None = None) -> msgspec.Meta:
    """A setting's description; ``live``: SIGHUP applies a new value without a restart;
    ``shown``: the default as the docs show it, when the value itself depends on the host."""
    extra: dict[str, Any] = {"live": live}
    if shown is not None:
        extra["shown"] = shown
    return msgspec.Meta(description=text, extra=extra)


class RelayConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Everything the relay can be told. Defaults make `e2echat-server` just work."""

    host: Annotated[str, _about("address to listen on")] = "127.0.0.1"
    port: Annotated[int, _about("TCP port for WebSocket and HTTP (0: any free port)")] = 8765
    data_dir: Annotated[
        Path,
        _about("SQLite and blob directory", shown='platformdirs `user_data_dir("e2echat-server")`'),
    ] = msgspec.field(default_factory=default_data_dir)
    memory: Annotated[bool, _about("keep state in memory only (lost on exit)")] = False
    fsync: Annotated[bool, _about("`synchronous=FULL`: also survive power loss")] = False
    commit_window_ms: Annotated[
        float,
        _about(
            "SQLite: while a commit is under way, room messages gather for up to this long"
            " before the next (fewer commits and socket writes per message under load,"
            " answers up to this much later; 0: each loop turn's at once)"
        ),
    ] = 2.0
    redis: Annotated[
        str | None,
        _about(
            "keep all state in this Redis (`redis://host:port/db`, `rediss://`, `unix://`),"
            ' shared by every relay node that names it, instead of SQLite (see "Many relays'
            ' over Redis")'
        ),
    ] = None
    redis_replicas: Annotated[
        int,
        _about(
            "with `redis`: acknowledge a write only once this many replicas have it (`WAIT`"
            " after each batch of writes; 0: once the primary has it)"
        ),
    ] = 0
    redis_replica_timeout_s: Annotated[
        float,
        _about(
            "with `redis_replicas`: how long a batch waits for the replicas before its"
            " writes fail with `unavailable` (clients resend; a resent message is stored once)"
        ),
    ] = 1.0
    create_db: Annotated[
        bool, _about('start on an empty database file (refused otherwise; see "Safe start")')
    ] = False
    repair_db: Annotated[
        bool, _about("rebuild a damaged database from its readable rows, keeping the damaged file")
    ] = False
    tls_cert: Annotated[
        Path | None, _about("PEM certificate chain: serve `wss://` (SIGHUP reloads it)", live=True)
    ] = None
    tls_key: Annotated[Path | None, _about("PEM private key of `tls_cert`", live=True)] = None
    trusted_proxy: Annotated[
        tuple[str, ...],
        _about(
            "addresses or CIDRs of reverse proxies whose `X-Forwarded-For` / `Forwarded`"
            " names the client (comma-separated in env); others' headers are ignored",
            live=True,
        ),
    ] = ()
    proxy_protocol: Annotated[
        bool,
        _about(
            "read a PROXY protocol header (v1 or v2) first on every connection from a"
            " `trusted_proxy` (a TCP load balancer): its client address stands for the peer;"
            " others are not read for one"
        ),
    ] = False
    metrics_listen: Annotated[
        str | None,
        _about(
            "`HOST:PORT` of a separate listener for `/metrics` (then not served on `port`;"
            " port 0: any free port)"
        ),
    ] = None
    registration: Annotated[
        str,
        _about(
            "who may register a new key: `open`, `token` (with a token from `admin token`),"
            " `closed` (known keys and `allow_keys` only) or `allowlist` (`allow_keys` only,"
            " known or not)",
            live=True,
        ),
    ] = "open"
    room_creation: Annotated[
        str, _about("who may create rooms: `anyone` or `allowlist` (`allow_keys`)", live=True)
    ] = "anyone"
    allow_keys: Annotated[
        Path | None,
        _about(
            "file of public keys, one a line (as `e2echat fingerprint` prints them, or base64)"
            " for `registration` and `room_creation` (SIGHUP re-reads it)",
            live=True,
        ),
    ] = None
    admin_socket: Annotated[
        Path | None,
        _about(
            "Unix socket of `e2echat-server admin` (mode 0600)",
            shown="`admin.sock` in `data_dir` (with `memory` or `redis`: none unless given)",
        ),
    ] = None
    origins: Annotated[
        tuple[str, ...], _about("Origin headers browsers may use (comma-separated in env)")
    ] = ()
    name: Annotated[str, _about("relay name, sent in `challenge` and signed by clients")] = (
        "e2echat-relay"
    )
    log_level: Annotated[str, _about("`debug`, `info`, `warning` or `error`", live=True)] = "info"
    log_json: Annotated[bool, _about("one JSON object per log line", live=True)] = False
    event_loop: Annotated[
        str,
        _about(
            "`auto` (uvloop if installed: the `e2echat-server[uvloop]` extra), `uvloop`"
            " (refuse to start without it) or `asyncio` (the standard loop)"
        ),
    ] = "auto"
    max_frame: Annotated[int, _about("largest frame (bytes of JSON)")] = MAX_FRAME
    max_body: Annotated[int, _about("largest `body` (decoded bytes)")] = MAX_BODY
    max_members: Annotated[int, _about("members per room (a room may ask for fewer)")] = MAX_MEMBERS
    max_rooms_per_user: Annotated[
        int,
        _about(
            "rooms one user may be in (past it, `create_room` and `join_room` answer"
            " `quota_exceeded`)",
            live=True,
        ),
    ] = MAX_ROOMS_PER_USER
    history_count: Annotated[int, _about("messages kept per room")] = HISTORY_COUNT
    history_age_s: Annotated[int, _about("seconds a room message is kept")] = HISTORY_AGE_S
    mailbox_max: Annotated[int, _about("direct entries queued per user", live=True)] = MAILBOX_MAX
    rate: Annotated[float, _about("frames per second per connection", live=True)] = RATE
    burst: Annotated[int, _about("frames a connection may send at once", live=True)] = BURST
    share_rate: Annotated[
        float, _about("envelopes per second per connection in `directs` frames", live=True)
    ] = SHARE_RATE
    share_burst: Annotated[
        int, _about("envelopes a connection may send at once in `directs` frames", live=True)
    ] = SHARE_BURST
    handshake_timeout_s: Annotated[float, _about("seconds to complete `hello`")] = (
        HANDSHAKE_TIMEOUT_S
    )
    max_conn_per_ip: Annotated[
        int, _about("simultaneous connections from one address", live=True)
    ] = MAX_CONN_PER_IP
    new_keys_per_ip: Annotated[
        float, _about("new identities per hour from one address (IPv6: one /64)", live=True)
    ] = 60.0
    new_keys_burst: Annotated[
        int, _about("new identities one address may register at once", live=True)
    ] = 20
    forget_after_s: Annotated[
        int, _about("seconds offline before a user in no room and with no mail is forgotten")
    ] = 7 * 86400
    send_buffer: Annotated[
        int, _about("bytes queued to one client before it is dropped as a slow consumer", live=True)
    ] = 1024 * 1024
    send_timeout_s: Annotated[
        float,
        _about(
            "seconds one bulk reply frame (welcome, sync, mailbox) waits for a client that"
            " does not read before it is dropped",
            live=True,
        ),
    ] = 10.0
    welcome_members: Annotated[
        int,
        _about(
            "bytes of member data in `welcome`; rooms past it are sent `partial` and clients"
            " fetch their members",
            live=True,
        ),
    ] = 1024 * 1024
    ping_interval_s: Annotated[float, _about("seconds between WebSocket keepalive pings")] = 20.0
    ping_timeout_s: Annotated[
        float, _about("seconds to wait for a pong before closing the connection")
    ] = 20.0
    blob_max_size: Annotated[
        int, _about("largest encrypted file one upload may declare (bytes)")
    ] = MAX_BLOB_SIZE_DEFAULT
    blob_quota: Annotated[int, _about("bytes of files one user may hold at once")] = (
        BLOB_QUOTA_DEFAULT
    )

    def __post_init__(self) -> None:
        _check(0 <= self.port <= 65535, "port", "must be 0..65535")
        _check(
            self.redis is None or _redis_url_ok(self.redis),
            "redis",
            "must be a URL like redis://host:6379/0 (or rediss://, unix://): a numeric"
            " port and database",
        )
        _check(not (self.redis and self.memory), "redis", "cannot be combined with memory")
        _check(self.redis_replicas >= 0, "redis_replicas", "must be 0 or more")
        _check(not self.redis_replicas or self.redis is not None, "redis_replicas", "needs redis")
        _check(0 <= self.commit_window_ms <= 100, "commit_window_ms", "must be 0..100")
        _check(self.redis_replica_timeout_s > 0, "redis_replica_timeout_s", "must be above 0")
        _check((self.tls_cert is None) == (self.tls_key is None), "tls_cert", "needs tls_key")
        _check(
            self.metrics_listen is None or split_address(self.metrics_listen) is not None,
            "metrics_listen",
            "must be HOST:PORT (IPv6 in brackets: [::1]:9108)",
        )
        _check(
            self.registration in REGISTRATION_MODES,
            "registration",
            f"must be one of {REGISTRATION_MODES}",
        )
        _check(
            self.room_creation in ROOM_CREATION_MODES,
            "room_creation",
            f"must be one of {ROOM_CREATION_MODES}",
        )
        _check(
            self.allow_keys is not None
            or (self.registration != "allowlist" and self.room_creation != "allowlist"),
            "allow_keys",
            "must name a key file when registration or room_creation is allowlist",
        )
        _check(_networks_valid(self.trusted_proxy), "trusted_proxy", "must be addresses or CIDRs")
        _check(
            not _trusts_everyone(self.trusted_proxy),
            "trusted_proxy",
            "must not trust every address (0.0.0.0/0, ::/0): any client could name any"
            " address and escape the per-address limits; list the proxies",
        )
        _check(
            not self.proxy_protocol or bool(self.trusted_proxy),
            "proxy_protocol",
            "needs trusted_proxy: the load balancers' addresses",
        )
        _check(
            not (self.proxy_protocol and self.tls_cert),
            "proxy_protocol",
            "cannot be combined with tls_cert: terminate TLS at the load balancer",
        )
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
        _check(self.share_rate > 0, "share_rate", "must be positive")
        _check(self.share_burst >= MAX_DIRECTS, "share_burst", f"must be at least {MAX_DIRECTS}")
        _check(self.handshake_timeout_s > 0, "handshake_timeout_s", "must be positive")
        _check(self.max_conn_per_ip >= 1, "max_conn_per_ip", "must be at least 1")
        _check(self.new_keys_per_ip > 0, "new_keys_per_ip", "must be positive")
        _check(self.new_keys_burst >= 1, "new_keys_burst", "must be at least 1")
        _check(self.forget_after_s >= 1, "forget_after_s", "must be at least 1")
        _check(self.send_buffer >= self.max_frame, "send_buffer", "must be at least max_frame")
        _check(self.send_timeout_s > 0, "send_timeout_s", "must be positive")
        _check(self.welcome_members >= 0, "welcome_members", "must be at least 0")
        _check(self.ping_interval_s > 0, "ping_interval_s", "must be positive")
        _check(self.ping_timeout_s > 0, "ping_timeout_s", "must be positive")
        _check(1 <= len(self.name) <= 64 and self.name.isprintable(), "name", "1..64 printable")
        _check(self.log_level in _LOG_LEVELS, "log_level", f"must be one of {_LOG_LEVELS}")
        _check(self.event_loop in EVENT_LOOPS, "event_loop", f"must be one of {EVENT_LOOPS}")
        _check(0 <= self.blob_max_size <= MAX_BLOB_SIZE, "blob_max_size", "must be 0..2^40")
        _check(self.blob_quota >= 0, "blob_quota", "must be at least 0")


def split_address(text: str) -> tuple[str, int] | None:
    """``(host, port)`` of ``HOST:PORT`` or ``[V6]:PORT``, or None if it is not one."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        return None
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        return None
    return host, int(port)


def admin_socket_path(config: RelayConfig) -> Path | None:
    """Where the admin socket is: as set, or in the data dir of a SQLite relay (Redis
    nodes may share a data dir: each is given its own socket)."""
    if config.admin_socket is not None:
        return config.admin_socket
    return None if config.memory or config.redis else config.data_dir / "admin.sock"


def _networks_valid(cidrs: tuple[str, ...]) -> bool:
    try:
        networks(cidrs)
    except ValueError:
        return False
    return True


def _trusts_everyone(cidrs: tuple[str, ...]) -> bool:
    return _networks_valid(cidrs) and any(n.prefixlen == 0 for n in networks(cidrs))


def _check(ok: bool, name: str, rule: str) -> None:
    if not ok:
        raise ConfigError(f"Setting {name!r} {rule}.")


@dataclass(frozen=True, slots=True)
class Setting:
    """One field of the schema, as the command line, the environment and the docs see it."""

    name: str
    kind: type  # bool, int, float, str, Path or tuple (a list of strings)
    optional: bool
    default: object
    description: str
    live: bool
    shown: str | None

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()


def _settings() -> tuple[Setting, ...]:
    info = msgspec.inspect.type_info(RelayConfig)
    assert isinstance(info, msgspec.inspect.StructType)
    found = []
    for f in info.fields:
        kind, optional, meta = f.type, False, None
        if isinstance(kind, msgspec.inspect.Metadata):
            meta, kind = kind, kind.type
        if isinstance(kind, msgspec.inspect.UnionType):
            optional = True
            kind = next(t for t in kind.types if not isinstance(t, msgspec.inspect.NoneType))
        python = {
            msgspec.inspect.BoolType: bool,
            msgspec.inspect.IntType: int,
            msgspec.inspect.FloatType: float,
            msgspec.inspect.StrType: str,
            msgspec.inspect.CustomType: Path,
            msgspec.inspect.VarTupleType: tuple,
        }[type(kind)]
        if meta is None or meta.extra_json_schema is None or meta.extra is None:
            raise TypeError(f"setting {f.name!r} has no description (use _about)")
        default = f.default_factory() if f.default_factory is not msgspec.NODEFAULT else f.default
        found.append(
            Setting(
                f.name,
                python,
                optional,
                default,
                meta.extra_json_schema["description"],
                bool(meta.extra.get("live")),
                meta.extra.get("shown"),
            )
        )
    return tuple(found)


SETTINGS: Final = _settings()
_BY_NAME: Final = {s.name: s for s in SETTINGS}
LIVE: Final = frozenset(s.name for s in SETTINGS if s.live)
_TOML_NAMES: Final = {s.name: s.name for s in SETTINGS}
_ENV_NAMES: Final = {s.name: s.env for s in SETTINGS} | {"config": CONFIG_ENV}


def field_names() -> tuple[str, ...]:
    """Every setting's name, in declaration order."""
    return tuple(_BY_NAME)


def _raw(setting: Setting, value: object) -> object:
    """A value from text (environment, flags) as msgspec.convert takes it for the field."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if setting.optional and not text:
        return None
    if setting.kind is bool:
        lowered = text.lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        return value
    if setting.kind is tuple:
        return [item.strip() for item in text.split(",") if item.strip()]
    return value


def _dec_hook(kind: type, value: Any) -> Any:
    if kind is Path and isinstance(value, str):
        return Path(value).expanduser()
    raise NotImplementedError


_AT = re.compile(r" - at `\$\.?(\w*)`$")


def convert(chosen: Mapping[str, object]) -> RelayConfig:
    """A RelayConfig from raw values by setting name; raises ConfigError naming the setting."""
    try:
        return msgspec.convert(
            {name: _raw(_BY_NAME[name], value) for name, value in chosen.items()},
            RelayConfig,
            strict=False,
            dec_hook=_dec_hook,
        )
    except msgspec.ValidationError as exc:
        text = str(exc)
        match = _AT.search(text)
        if match is None or not match.group(1):  # __post_init__: its own sentence
            raise ConfigError(_AT.sub("", text)) from None
        name = match.group(1)
        raise ConfigError(
            f"Setting {name!r} cannot be {chosen[name]!r}: {_AT.sub('', text)}."
        ) from None


def _unknown(given: str, where: str, known: Mapping[str, str]) -> ConfigError:
    """The error for ``given``, a name no setting has, with the closest known one: ``known``
    maps setting names to how ``where`` spells them. Names are compared without the env
    prefix, which would make every variable look close to every other."""
    text = f"Unknown setting {given!r} {where}"
    compared = given.removeprefix(ENV_PREFIX).lower().replace("-", "_")
    close = difflib.get_close_matches(compared, known, n=1)
    return ConfigError(f"{text}: did you mean {known[close[0]]!r}?" if close else f"{text}.")


# Kubernetes gives a pod variables for every Service it can see ("service links"): one
# named e2echat-server brings E2ECHAT_SERVER_SERVICE_HOST, ..._SERVICE_PORT[_NAME],
# ..._PORT=tcp://10.0.0.11:8765 and ..._PORT_8765_TCP[_PROTO|_PORT|_ADDR]; one named
# e2echat-server-redis the same with E2ECHAT_SERVER_REDIS_ before each.
_SERVICE_HOST: Final = re.compile(re.escape(ENV_PREFIX) + r"([A-Z0-9_]*?)SERVICE_HOST")
_LINK_SUFFIX: Final = re.compile(
    r"SERVICE_HOST|SERVICE_PORT(_[A-Z0-9_]+)?|PORT|PORT_[0-9]+_(TCP|UDP|SCTP)(_PROTO|_PORT|_ADDR)?"
)
_SERVICE_URL: Final = re.compile(r"(tcp|udp|sctp)://")


def service_links(environ: Mapping[str, str]) -> list[str]:
    """The ``E2ECHAT_SERVER_`` variables that are Kubernetes service links, not settings:
    those of each Service whose ``..._SERVICE_HOST`` is set (Kubernetes sets it with every
    link). A name that is also a setting's (``E2ECHAT_SERVER_PORT``) is a link only while
    it holds a ``tcp://`` URL: an operator's own value in the pod spec overrides the link
    and stays a setting."""
    services = [m[1] for name in environ if (m := _SERVICE_HOST.fullmatch(name))]
    settings = set(_ENV_NAMES.values())
    links = []
    for name, value in environ.items():
        prefixes = [ENV_PREFIX + service for service in services]
        if any(
            name.startswith(prefix) and _LINK_SUFFIX.fullmatch(name.removeprefix(prefix))
            for prefix in prefixes
        ) and (name not in settings or _SERVICE_URL.match(value)):
            links.append(name)
    return sorted(links)


def from_env(environ: Mapping[str, str]) -> dict[str, object]:
    """The settings found in ``environ`` (``E2ECHAT_SERVER_*``), still as raw strings.
    Any other ``E2ECHAT_SERVER_`` variable but `CONFIG_ENV` and Kubernetes service links
    is an error, as an unknown TOML key is: a mistyped name would otherwise change
    nothing, and say nothing."""
    links = service_links(environ)
    for variable in environ:
        if variable in links:
            continue
        if variable.startswith(ENV_PREFIX) and variable not in _ENV_NAMES.values():
            raise _unknown(variable, "in the environment", _ENV_NAMES)
    return {s.name: environ[s.env] for s in SETTINGS if s.env in environ and s.env not in links}


def from_toml(text: str) -> dict[str, object]:
    """The settings in a TOML document; keys may use ``-`` or ``_``; unknown keys are errors."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"The config file is not valid TOML: {exc}.") from None
    found: dict[str, object] = {}
    for key, value in data.items():
        name = key.replace("-", "_")
        if name not in _BY_NAME:
            raise _unknown(key, "in the config file", _TOML_NAMES)
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
    for name in _BY_NAME:
        for source in (flags, env, file):
            value = source.get(name)
            if value is not None:
                chosen[name] = value
                break
    return convert(chosen)


def read_file(path: Path | None) -> dict[str, object]:
    """The settings of the TOML file at ``path`` (none if None)."""
    if path is None:
        return {}
    try:
        return from_toml(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"Cannot read the config file {path}: {exc.strerror}.") from None


def load(flags: Mapping[str, object], environ: Mapping[str, str], path: Path | None) -> RelayConfig:
    """Merge flags, the environment and the TOML file at ``path`` (if any) into a config."""
    return merge(flags, from_env(environ), read_file(path))


def shown_default(setting: Setting) -> str:
    """The default as the docs and ``--help`` show it."""
    if setting.shown is not None:
        return setting.shown
    value = setting.default
    if value is None or value == ():
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    return f"`{value}`" if isinstance(value, str) else str(value)


def settings_table() -> str:
    """The Markdown table of every setting, as docs/server.md carries it."""
    rows = [
        "| flag | env (`E2ECHAT_SERVER_` + ...) / TOML key | default | SIGHUP | meaning |",
        "| --- | --- | --- | --- | --- |",
    ]
    for s in SETTINGS:
        live = "reloads" if s.live else "restart"
        rows.append(
            f"| `{s.flag}` | `{s.name.upper()}` / `{s.name}` | {shown_default(s)} | {live} |"
            f" {s.description} |"
        )
    return "\n".join(rows) + "\n"
