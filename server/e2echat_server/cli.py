"""The `e2echat-server` command: flags built from the settings schema, then the relay.

stdout carries exactly one line, the URL the relay is bound to (so a parent process can
start it with ``--port 0`` and read where it listens); everything else goes to stderr.

Exit status: 0 after a clean stop, 1 if the relay cannot start (port taken, TLS file
unreadable, Redis unreachable), 2 for a bad setting (Redis refusing the credentials or
the database of ``redis`` too), 3 if the data directory or its database is refused.
"""

import asyncio
import contextlib
import datetime
import json
import logging
import os
import signal
import sqlite3
import ssl
import sys
from collections.abc import Callable
from pathlib import Path

import click
from click.decorators import FC
from redis.exceptions import RedisError

from e2echat_server import entry, logs
from e2echat_server.access import KeyListError
from e2echat_server.admin import AdminError, AdminSocket, request
from e2echat_server.config import (
    CONFIG_ENV,
    SETTINGS,
    ConfigError,
    RelayConfig,
    Setting,
    admin_socket_path,
    load,
    service_links,
    shown_default,
)
from e2echat_server.datadir import StartRefusedError
from e2echat_server.eventloop import LoopUnavailableError, loop_factory
from e2echat_server.logs import LOGGER, crash_site, event
from e2echat_server.relay import Relay
from e2echat_server.version import __version__

EXIT_REFUSED = 3  # the data directory is locked or its database refused (1: cannot start)
_METAVARS = {int: "INTEGER", float: "NUMBER", str: "TEXT", Path: "PATH", tuple: "LIST"}


def _option(setting: Setting) -> click.Option:
    """The flag of one setting; every value stays raw text for the schema to convert."""
    text = f"{setting.description[0].upper()}{setting.description[1:]}."
    shown = shown_default(setting).replace("`", "")
    if setting.kind is bool:
        flags = f"{setting.flag}/--no-{setting.flag.removeprefix('--')}"
        return click.Option(
            [flags, setting.name], default=None, help=text.replace("`", ""), show_default=shown
        )
    return click.Option(
        [setting.flag, setting.name],
        default=None,
        metavar=_METAVARS[setting.kind],
        help=text.replace("`", ""),
        show_default=shown,
    )


def version_option() -> Callable[[FC], FC]:
    """``--version``, the same on the relay and each of its commands."""
    return click.version_option(__version__, "--version", prog_name="e2echat-server")


def _serve(ctx: click.Context, config: Path | None, **flags: object) -> None:
    """Run the relay. With no flags: 127.0.0.1:8765, SQLite under the user data directory."""
    if ctx.invoked_subcommand is not None:
        return
    config_path = config or _env_path(CONFIG_ENV)
    try:
        settings = load(flags, os.environ, config_path)
    except ConfigError as exc:
        click.echo(f"e2echat-server: {exc}", err=True)
        ctx.exit(2)
    logs.configure(settings.log_level, settings.log_json)
    links = service_links(os.environ)
    if links:
        event(LOGGER, "service_links_ignored", variables=",".join(links))
    # A SIGHUP before the event loop takes it over (run) is noted, never the default
    # action, which kills (the command's entry noted those before its modules loaded).
    entry.note_hangups()
    try:
        _, factory = loop_factory(settings.event_loop)
        with asyncio.Runner(loop_factory=factory) as runner:
            runner.run(run(settings, lambda: load(flags, os.environ, config_path)))
    except StartRefusedError as exc:  # the data dir is locked, the database refused
        click.echo(f"e2echat-server: {exc}", err=True)
        ctx.exit(EXIT_REFUSED)
    except (KeyListError, ConfigError) as exc:  # ConfigError: Redis refused the `redis` URL
        click.echo(f"e2echat-server: {exc}", err=True)
        ctx.exit(2)
    except (LoopUnavailableError, OSError, sqlite3.Error, RedisError) as exc:  # port taken...
        click.echo(f"e2echat-server: cannot start: {str(exc) or type(exc).__name__}", err=True)
        ctx.exit(1)


group = click.Group(
    "e2echat-server",
    help=(
        "Run the e2echat relay (with no command), or talk to a running one (admin)."
        " Flags win over E2ECHAT_SERVER_* variables, which win over the --config file."
    ),
    invoke_without_command=True,
    params=[
        *(_option(s) for s in SETTINGS),
        click.Option(
            ["--config"],
            type=click.Path(path_type=Path, dir_okay=False),
            help=f"TOML config file (also ${CONFIG_ENV}).",
        ),
    ],
    callback=click.pass_context(_serve),
    context_settings={"max_content_width": 100},
)
app = version_option()(group)


def _env_path(variable: str) -> Path | None:
    value = os.environ.get(variable)
    return Path(value) if value else None


async def run(config: RelayConfig, reread: Callable[[], RelayConfig] | None = None) -> None:
    """Serve until SIGTERM or SIGINT, then close connections (1001) and flush the store.

    SIGHUP re-reads the settings (``reread``: the same flags, the environment, the file)
    and applies the live ones; a bad new setting is logged and changes nothing. One that
    comes while the relay is still starting (a large database, a slow Redis) is applied
    once it listens: never the default action, which would kill it.
    """
    stop, reload_asked = asyncio.Event(), asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, reload_asked.set)
    if entry.taken():  # one came while the command was loading: applied once it listens
        reload_asked.set()
    admin_path = admin_socket_path(config)
    async with Relay(config) as relay, contextlib.AsyncExitStack() as admin:
        if admin_path is not None:
            await admin.enter_async_context(AdminSocket(relay, admin_path))
        sys.stdout.write(relay.url + "\n")
        sys.stdout.flush()
        reloads = asyncio.create_task(_reload_when_asked(reload_asked, relay, reread))
        try:
            await stop.wait()
        finally:
            reloads.cancel()


async def _reload_when_asked(
    asked: asyncio.Event, relay: Relay, reread: Callable[[], RelayConfig] | None
) -> None:
    while True:
        await asked.wait()
        asked.clear()
        if reread is None:  # an embedded run: nothing to read the settings from again
            event(LOGGER, "reload_failed", logging.ERROR, error="no settings to re-read")
            continue
        try:
            relay.reload(reread())
        except (ConfigError, KeyListError, OSError, ssl.SSLError) as exc:
            event(LOGGER, "reload_failed", logging.ERROR, error=str(exc))
        except Exception as exc:  # a bug: said as request_failed says one; the next SIGHUP
            # is still applied (the task ended, and no later SIGHUP did anything)
            name = type(exc).__name__
            event(LOGGER, "reload_failed", logging.ERROR, error=name, at=crash_site(exc))


_ADMIN_COMMANDS = {
    "stats": "counts: connections, users, rooms, messages, refusals by reason",
    "users": "every key the relay knows: fingerprint, name, online, rooms, mailbox",
    "rooms": "every room: id, name, access, members, messages",
    "connections": "every authenticated connection: key, name, address, seconds, frames",
    "kick": "KEY: close that key's connection (it may reconnect)",
    "ban": "KEY: close its connection and refuse it from now on (kept in the data dir)",
    "unban": "KEY: admit it again",
    "delete": "ROOM (its name or id): delete the room for everyone, with its history;"
    " members online are told --reason, and the name is free",
    "token": "make a registration token (shown once) for --registration token:"
    " --uses N (0: unlimited), --expires-in SECONDS (0: never)",
    "tokens": "every registration token: id, uses left, expiry, whether still valid",
    "revoke": "ID: drop that token (the first digits of its id)",
}


@group.command(
    "admin",
    help=(
        "Talk to the running relay over its admin socket. COMMAND is one of:\n\n"
        + "\n\n".join(f"{name}: {text}" for name, text in _ADMIN_COMMANDS.items())
        + "\n\nKEY: a fingerprint (hex, as `e2echat fingerprint` prints it), base64, or the"
        " first 8 or more hex digits of a known key. The socket is found from the same"
        " flags, environment and --config as the relay's (--admin-socket, --data-dir)."
    ),
)
@click.argument("command", type=click.Choice(sorted(_ADMIN_COMMANDS)))
@click.argument("key", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the relay's answer as JSON.")
@click.option(
    "--uses", type=click.IntRange(min=0), default=1, show_default=True, help="token: uses."
)
@click.option(
    "--expires-in",
    type=click.IntRange(min=0),
    default=7 * 86400,
    show_default=True,
    help="token: seconds it stays valid.",
)
@click.option("--reason", default="", help="delete: what the room's members are told.")
@version_option()
@click.pass_context
def admin(
    ctx: click.Context,
    command: str,
    key: str | None,
    as_json: bool,
    uses: int,
    expires_in: int,
    reason: str,
) -> None:
    parent = ctx.parent
    assert parent is not None
    flags = {k: v for k, v in parent.params.items() if k != "config"}
    try:
        settings = load(flags, os.environ, parent.params["config"] or _env_path(CONFIG_ENV))
    except ConfigError as exc:
        click.echo(f"e2echat-server: {exc}", err=True)
        ctx.exit(2)
    path = admin_socket_path(settings)
    if path is None:
        kind = "a Redis" if settings.redis else "a memory"
        click.echo(
            f"e2echat-server: {kind} relay has no admin socket unless given: name the"
            " one it was started with (--admin-socket PATH).",
            err=True,
        )
        ctx.exit(2)
    takes_key = command in ("kick", "ban", "unban", "revoke", "delete")
    if takes_key != (key is not None):
        wrong = "needs an argument" if takes_key else "takes no argument"
        click.echo(f"e2echat-server: {command} {wrong}.", err=True)
        ctx.exit(2)
    try:
        args = [key] if key is not None else []
        if command == "token":
            args = [str(uses), str(expires_in)]
        elif command == "delete":
            args.append(reason)
        result = request(path, command, args)
    except AdminError as exc:
        click.echo(f"e2echat-server: {exc}", err=True)
        ctx.exit(1)
    except OSError as exc:
        click.echo(f"e2echat-server: no relay answers at {path}: {exc.strerror or exc}", err=True)
        ctx.exit(1)
    click.echo(json.dumps(result, indent=2) if as_json else _table(result))


def _table(result: object) -> str:
    """A human view of an answer: aligned columns for lists, ``key: value`` lines else.
    Names come from clients: anything not printable is shown as U+FFFD."""
    if isinstance(result, dict):
        return "\n".join(f"{k}: {_cell(v, k)}" for k, v in result.items())
    rows = result if isinstance(result, list) else []
    if not rows:
        return "(none)"
    columns = list(rows[0])
    cells = [columns, *([_cell(row[c], c) for c in columns] for row in rows)]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in cells
    )


# Fields that hold a time in milliseconds since the epoch (as --json gives them).
_TIMES = frozenset({"created", "expires", "last_seen"})


def _cell(value: object, field: str) -> str:
    text = "-" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
    if field in _TIMES and isinstance(value, int) and not isinstance(value, bool):
        moment = datetime.datetime.fromtimestamp(value / 1000, datetime.UTC)
        text = moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, dict):
        text = ", ".join(f"{k}={v}" for k, v in value.items()) or "-"
    return "".join(c if c.isprintable() else "\ufffd" for c in text)


def main() -> None:
    app()
