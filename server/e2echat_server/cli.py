"""The `e2echat-server` command: parse flags, merge config, run the relay until a signal.

stdout carries exactly one line, the URL the relay is bound to (so a parent process can
start it with ``--port 0`` and read where it listens); everything else goes to stderr.
"""

import asyncio
import os
import signal
import sqlite3
import sys
from pathlib import Path
from typing import Annotated

import typer

from e2echat_server import logs
from e2echat_server.config import ConfigError, RelayConfig, default_data_dir, load
from e2echat_server.datadir import StartRefusedError
from e2echat_server.relay import Relay

app = typer.Typer(help="Run the e2echat relay.", add_completion=False)

_LIMITS = "Limits"
EXIT_REFUSED = 3  # the data directory is locked or its database refused (1: cannot start)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="TCP port (0: any free port).")] = None,
    data_dir: Annotated[
        Path | None, typer.Option(help=f"SQLite data directory (default: {default_data_dir()}).")
    ] = None,
    memory: Annotated[
        bool | None, typer.Option("--memory/--no-memory", help="Keep state in memory only.")
    ] = None,
    fsync: Annotated[
        bool | None,
        typer.Option("--fsync/--no-fsync", help="fsync every commit: survive power loss too."),
    ] = None,
    create_db: Annotated[
        bool | None,
        typer.Option(
            "--create-db/--no-create-db", help="Start on an empty database file (else refused)."
        ),
    ] = None,
    repair_db: Annotated[
        bool | None,
        typer.Option(
            "--repair-db/--no-repair-db",
            help="Rebuild a damaged database from its readable rows (the file is kept aside).",
        ),
    ] = None,
    tls_cert: Annotated[
        Path | None, typer.Option(help="PEM certificate chain: serve wss://.")
    ] = None,
    tls_key: Annotated[Path | None, typer.Option(help="PEM private key for --tls-cert.")] = None,
    origins: Annotated[
        str | None, typer.Option(help="Comma-separated allowed Origin headers (browsers).")
    ] = None,
    name: Annotated[str | None, typer.Option(help="Relay name, signed into every hello.")] = None,
    log_level: Annotated[str | None, typer.Option(help="debug, info, warning or error.")] = None,
    log_json: Annotated[
        bool | None, typer.Option("--log-json/--no-log-json", help="Log JSON lines.")
    ] = None,
    max_frame: Annotated[
        int | None, typer.Option(help="Largest frame in bytes (JSON).", rich_help_panel=_LIMITS)
    ] = None,
    max_body: Annotated[
        int | None, typer.Option(help="Largest body in bytes (decoded).", rich_help_panel=_LIMITS)
    ] = None,
    max_members: Annotated[
        int | None, typer.Option(help="Members per room.", rich_help_panel=_LIMITS)
    ] = None,
    max_rooms_per_user: Annotated[
        int | None, typer.Option(help="Rooms one user may be in.", rich_help_panel=_LIMITS)
    ] = None,
    history_count: Annotated[
        int | None, typer.Option(help="Messages kept per room.", rich_help_panel=_LIMITS)
    ] = None,
    history_age_s: Annotated[
        int | None, typer.Option(help="Seconds a message is kept.", rich_help_panel=_LIMITS)
    ] = None,
    mailbox_max: Annotated[
        int | None, typer.Option(help="Direct entries queued per user.", rich_help_panel=_LIMITS)
    ] = None,
    rate: Annotated[
        float | None, typer.Option(help="Frames/s per connection.", rich_help_panel=_LIMITS)
    ] = None,
    burst: Annotated[
        int | None,
        typer.Option(help="Frames a connection may send at once.", rich_help_panel=_LIMITS),
    ] = None,
    handshake_timeout_s: Annotated[
        float | None, typer.Option(help="Seconds to complete hello.", rich_help_panel=_LIMITS)
    ] = None,
    max_conn_per_ip: Annotated[
        int | None, typer.Option(help="Connections from one address.", rich_help_panel=_LIMITS)
    ] = None,
    new_keys_per_ip: Annotated[
        float | None,
        typer.Option(
            help="New identities per hour from one address (IPv6: one /64).",
            rich_help_panel=_LIMITS,
        ),
    ] = None,
    new_keys_burst: Annotated[
        int | None,
        typer.Option(
            help="New identities one address may register at once.", rich_help_panel=_LIMITS
        ),
    ] = None,
    forget_after_s: Annotated[
        int | None,
        typer.Option(
            help="Seconds before an offline user with no rooms and no mail is forgotten.",
            rich_help_panel=_LIMITS,
        ),
    ] = None,
    send_buffer: Annotated[
        int | None,
        typer.Option(
            help="Bytes queued to one slow client before it is dropped.", rich_help_panel=_LIMITS
        ),
    ] = None,
    send_timeout_s: Annotated[
        float | None,
        typer.Option(
            help="Seconds a bulk reply (sync, mailbox) waits for a client that does not read.",
            rich_help_panel=_LIMITS,
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(help="TOML config file (flags > E2ECHAT_SERVER_* env > file > defaults)."),
    ] = None,
) -> None:
    """Run the relay. With no flags: 127.0.0.1:8765, SQLite under the user data directory."""
    flags = dict(locals())
    flags.pop("config")
    config_path = config or _env_path("E2ECHAT_SERVER_CONFIG")
    try:
        settings = load(flags, os.environ, config_path)
    except ConfigError as exc:
        typer.echo(f"e2echat-server: {exc}", err=True)
        raise typer.Exit(2) from None
    logs.configure(settings.log_level, settings.log_json)
    try:
        asyncio.run(run(settings))
    except StartRefusedError as exc:  # the data dir is locked, the database refused
        typer.echo(f"e2echat-server: {exc}", err=True)
        raise typer.Exit(EXIT_REFUSED) from None
    except (OSError, sqlite3.Error) as exc:  # the port is taken, a TLS file is unreadable...
        typer.echo(f"e2echat-server: cannot start: {exc}", err=True)
        raise typer.Exit(1) from None


def _env_path(variable: str) -> Path | None:
    value = os.environ.get(variable)
    return Path(value) if value else None


async def run(config: RelayConfig) -> None:
    """Serve until SIGTERM or SIGINT, then close connections (1001) and flush the store."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with Relay(config) as relay:
        sys.stdout.write(relay.url + "\n")
        sys.stdout.flush()
        await stop.wait()


def main() -> None:
    app()
