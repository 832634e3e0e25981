"""The config file: TOML under the platform's config directory.

``e2echat init`` writes it, ``e2echat connect`` and ``demo`` read it. Each setting is
decided in one place, ``pick``: a flag, else an environment variable, else the file,
else the default. The file is checked whole before anything starts: a TOML error, an
unknown key or a value of the wrong kind ends the command with the file and the key
named, and nothing runs. docs/tui.md lists every setting.
"""

import json
import os
import re
import tomllib
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal, TypeVar

import msgspec
import platformdirs
from textual.theme import BUILTIN_THEMES

CONFIG_ENV: Final = "E2ECHAT_CONFIG"
RELAY_ENV: Final = "E2ECHAT_RELAY"
NAME_ENV: Final = "E2ECHAT_NAME"
STORE_ENV: Final = "E2ECHAT_STORE"
HOME_ENV: Final = "E2ECHAT_HOME"  # the library's: everything under one folder

T = TypeVar("T")
NotifyOn = Literal["mentions", "messages", "nothing"]

MODIFIERS: Final = frozenset({"ctrl", "alt", "shift", "super", "meta", "hyper"})
NAMED_KEYS: Final = frozenset(
    {
        "escape",
        "enter",
        "tab",
        "space",
        "backspace",
        "delete",
        "insert",
        "home",
        "end",
        "pageup",
        "pagedown",
        "up",
        "down",
        "left",
        "right",
        *(f"f{number}" for number in range(1, 25)),
    }
)
_KEY_NAME = re.compile(r"[a-z0-9_]+")


class ConfigError(ValueError):
    """A config file (or setting) that cannot be used; ``str()`` names the file and key."""


class Notifications(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    """``[notifications]``: how messages in rooms you are not looking at reach you."""

    bell: bool = True
    toast: bool = True
    desktop: bool = False
    on: NotifyOn = "mentions"
    muted: tuple[str, ...] = ()


class FileConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    """The whole file, as written; paths not yet resolved."""

    relay: str | list[str] | None = None
    name: str | None = None
    identity: str | None = None
    store: str | None = None
    room: str | None = None
    theme: str | None = None
    vi: bool = False
    read_receipts: bool = False
    notifications: Notifications = Notifications()
    keymap: dict[str, str] = {}


@dataclass(frozen=True, slots=True)
class Config:
    """A checked config file: relative paths made absolute, ``~`` expanded."""

    path: Path
    exists: bool
    settings: FileConfig

    def file_path(self, value: str | None) -> Path | None:
        """A path setting: ``~`` expanded, relative to the file's folder."""
        if value is None:
            return None
        return self.path.parent / Path(value).expanduser()

    def origin(self, key: str) -> str:
        return f"{self.path}: {key}"


@dataclass(frozen=True, slots=True)
class Preferences:
    """What the app takes from the config file besides bell and toast."""

    notify_on: NotifyOn = "mentions"
    desktop: bool = False
    muted: frozenset[str] = frozenset()
    keymap: Mapping[str, str] = field(default_factory=dict)
    vi: bool = False
    theme: str | None = None


def default_config_path() -> Path:
    """``$E2ECHAT_CONFIG``, else ``config.toml`` under ``$E2ECHAT_HOME``, else under the
    platform's config directory (``~/.config/e2echat`` on Linux)."""
    if os.environ.get(CONFIG_ENV):
        return Path(os.environ[CONFIG_ENV]).expanduser()
    if os.environ.get(HOME_ENV):
        return Path(os.environ[HOME_ENV]) / "config.toml"
    return platformdirs.user_config_path("e2echat", appauthor=False) / "config.toml"


def valid_key(key: str) -> bool:
    """Whether ``key`` is a key as Textual names it (``ctrl+k``, ``alt+1``, ``f5``, ``a``)."""
    *modifiers, base = key.split("+")
    if not base or not set(modifiers) <= MODIFIERS or len(set(modifiers)) != len(modifiers):
        return False
    if len(base) == 1:
        return base.isprintable() and not base.isspace() and base != "+"
    if base in NAMED_KEYS:
        return True
    if _KEY_NAME.fullmatch(base) is None:
        return False
    try:
        unicodedata.lookup(base.replace("_", " "))  # question_mark, full_stop, ...
    except KeyError:
        return False
    return True


def _problem(error: msgspec.ValidationError) -> tuple[str, str]:
    """``(key, what is wrong)`` from msgspec's ``Expected `bool`, got `str` - at `$.x```."""
    text = str(error)
    message, _, where = text.partition(" - at `$")
    key = where.rstrip("`").lstrip(".")
    unknown = re.fullmatch(r"Object contains unknown field `(.+)`", message)
    if unknown is not None:
        field = unknown.group(1)
        return (f"{key}.{field}" if key else field), "no such setting (docs/tui.md lists them)"
    return key or "(top)", message[:1].lower() + message[1:].replace("`", "")


def parse(text: str, path: Path, actions: Mapping[str, str]) -> FileConfig:
    """Check a config file's text; ``actions`` are the remappable binding ids."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    try:
        settings = msgspec.convert(raw, FileConfig)
    except msgspec.ValidationError as exc:
        key, problem = _problem(exc)
        raise ConfigError(f"{path}: {key}: {problem}") from None
    _check(settings, path, actions)
    return settings


def _check(settings: FileConfig, path: Path, actions: Mapping[str, str]) -> None:
    def fail(key: str, problem: str) -> ConfigError:
        return ConfigError(f"{path}: {key}: {problem}")

    relays = [settings.relay] if isinstance(settings.relay, str) else settings.relay or []
    if settings.relay is not None and not relays:
        raise fail("relay", "give at least one URL")
    for url in relays:
        if not url.startswith(("ws://", "wss://")):
            raise fail("relay", f"{json.dumps(url)} is not a ws:// or wss:// URL")
    if settings.theme is not None and settings.theme not in BUILTIN_THEMES:
        raise fail(
            "theme", f"no theme {json.dumps(settings.theme)}; one of {', '.join(BUILTIN_THEMES)}"
        )
    for action, keys in settings.keymap.items():
        if action not in actions:
            raise fail(f"keymap.{action}", "no such action (docs/tui.md lists them)")
        for key in keys.split(","):
            if not valid_key(key.strip()):
                raise fail(f"keymap.{action}", f"{json.dumps(key.strip())} is not a key name")


def load(path: Path, actions: Mapping[str, str]) -> Config:
    """Read and check the config file at ``path`` (a missing file is all defaults)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Config(path, False, FileConfig())
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigError(f"{path}: cannot be read: {reason}") from None
    return Config(path, True, parse(text, path, actions))


def pick(
    flag: T | None,
    flag_name: str,
    env_var: str | None,
    from_env: Callable[[str], T],
    file_value: T | None,
    key: str,
    config: Config,
) -> tuple[T | None, str]:
    """A setting by precedence (flag, environment, file; None for the default) and
    where it came from, to name in an error about its value."""
    if flag is not None:
        return flag, flag_name
    if env_var is not None and os.environ.get(env_var):
        return from_env(os.environ[env_var]), f"${env_var}"
    if file_value is not None:
        return file_value, config.origin(key)
    return None, "the default"


def _toml(value: str) -> str:
    """A TOML basic string (JSON's escapes are all TOML's)."""
    return json.dumps(value, ensure_ascii=False)


def render(relay: Sequence[str], name: str | None, identity: Path | None) -> str:
    """The text ``e2echat init`` writes: the given settings, the others commented out at
    their defaults."""
    lines = [
        "# e2echat settings; docs/tui.md describes each one.",
        "# Flags and environment variables ($E2ECHAT_RELAY, $E2ECHAT_NAME, ...) win over it.",
        "",
    ]
    urls = ", ".join(_toml(url) for url in relay)
    lines.append(f"relay = [{urls}]" if relay else '# relay = ["wss://relay.example.org/"]')
    lines.append(f"name = {_toml(name)}" if name else '# name = "alice"')
    lines.append(f"identity = {_toml(str(identity))}" if identity else "# identity = ...")
    lines += [
        "# store = ...            # the message store (default: one per identity)",
        '# room = "lobby"          # the room shown first',
        '# theme = "textual-dark"',
        "# vi = false             # vi-style normal mode in the composer (Escape)",
        "# read_receipts = false  # tell the members of your rooms how far you read",
        "",
        "[notifications]",
        "# bell = true",
        "# toast = true",
        "# desktop = false        # a desktop notification too (notify-send, osascript)",
        '# on = "mentions"        # or "messages" (any message), or "nothing"',
        "# muted = []             # rooms that never notify",
        "",
        "[keymap]",
        '# next_active = "ctrl+n"  # action = "key[,key...]"; docs/tui.md lists the actions',
        "",
    ]
    return "\n".join(lines)
