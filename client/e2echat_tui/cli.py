"""The ``e2echat`` command: init, connect, fingerprint, demo.

Errors a user can fix (wrong passphrase, unreachable relay, existing identity) end the
command with one readable line on stderr and exit status 1, never a traceback.
"""

import asyncio
import os
from pathlib import Path
from typing import Annotated

import typer

from e2echat import Client, E2EChatError, Identity, default_identity_path
from e2echat import __version__ as e2echat_version
from e2echat_tui import __version__

app = typer.Typer(
    help="e2echat: end-to-end encrypted chat in your terminal.",
    no_args_is_help=True,
    add_completion=False,
)

PASSPHRASE_ENV = "E2ECHAT_PASSPHRASE"  # noqa: S105 (the variable's name, read by the library)

IdentityOption = Annotated[
    Path | None,
    typer.Option(
        "--identity",
        "-i",
        help="Identity file (default: identity.key under $E2ECHAT_HOME or the data dir).",
        envvar="E2ECHAT_IDENTITY",
        show_default=False,
    ),
]
BellOption = Annotated[bool, typer.Option("--bell/--no-bell", help="Ring the bell on a mention.")]
ToastOption = Annotated[bool, typer.Option("--toast/--no-toast", help="Show a toast on a mention.")]


def _version(shown: bool) -> None:
    if shown:
        typer.echo(f"e2echat, version {__version__} (library {e2echat_version})")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Show the version and exit.", callback=_version, is_eager=True
        ),
    ] = False,
) -> None:
    """e2echat: end-to-end encrypted chat in your terminal."""


def _fail(message: str) -> typer.Exit:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(1)


def _load_identity(path: Path | None) -> Identity:
    """Load the identity, asking for its passphrase unless $E2ECHAT_PASSPHRASE is set."""
    path = path or default_identity_path()
    if not path.exists():
        raise _fail(f"no identity at {path}: run `e2echat init` first")
    passphrase = None
    if not os.environ.get(PASSPHRASE_ENV):
        passphrase = typer.prompt(f"Passphrase for {path}", hide_input=True)
    try:
        return Identity.load(path, passphrase)
    except E2EChatError as exc:
        raise _fail(str(exc)) from None


@app.command()
def init(
    identity: IdentityOption = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace an existing identity (it is lost).")
    ] = False,
) -> None:
    """Create your identity key, encrypted under a passphrase, and print its fingerprint."""
    path = identity or default_identity_path()
    if path.exists() and not force:
        raise _fail(f"{path} already exists; use --force to replace it")
    passphrase = typer.prompt("New passphrase", hide_input=True, confirmation_prompt=True)
    new = Identity.generate()
    try:
        new.save(path, passphrase, overwrite=force)
    except (E2EChatError, ValueError) as exc:
        raise _fail(str(exc)) from None
    typer.echo(f"Identity saved to {path}")
    typer.echo(f"Fingerprint: {new.fingerprint}")


@app.command()
def fingerprint(identity: IdentityOption = None) -> None:
    """Print the fingerprint of your identity key (others compare it with /verify)."""
    typer.echo(_load_identity(identity).fingerprint)


@app.command()
def connect(
    url: Annotated[
        list[str],
        typer.Argument(
            help="Relay URL, e.g. ws://127.0.0.1:8765/; several nodes of one relay cluster"
            " may be given, tried in turn when one is down."
        ),
    ],
    name: Annotated[str, typer.Option("--name", "-n", help="Your display name.")],
    identity: IdentityOption = None,
    store: Annotated[
        Path | None,
        typer.Option(
            help="Message store (default: one per identity under the data dir).", show_default=False
        ),
    ] = None,
    room: Annotated[str | None, typer.Option(help="Room to show first.")] = None,
    bell: BellOption = True,
    toast: ToastOption = True,
) -> None:
    """Open the chat on a relay (asks for your identity's passphrase)."""
    from e2echat_tui.launch import run_chat

    loaded = _load_identity(identity)
    try:
        # a person at the terminal is told at once that the relay is unreachable (one
        # try of each URL); once connected, the client reconnects on its own
        chat = Client(url, identity=loaded, name=name, store=store, connect_timeout=0)
        asyncio.run(run_chat(chat, room=room, bell=bell, toast=toast))
    except E2EChatError as exc:
        raise _fail(str(exc)) from None


@app.command()
def demo(bell: BellOption = True, toast: ToastOption = True) -> None:
    """Try e2echat now: a local relay, a greeter bot in `lobby`, and you. Nothing is kept."""
    from e2echat_tui.demo import run_demo

    try:
        asyncio.run(run_demo(bell=bell, toast=toast))
    except E2EChatError as exc:
        raise _fail(str(exc)) from None


def main() -> None:
    app()
