"""The ``e2echat`` command: init, connect, fingerprint, identity rotate, demo.

Errors a user can fix (wrong passphrase, unreachable relay, existing identity) end the
command with one readable line on stderr and exit status 1, never a traceback.
"""

import asyncio
import os
from pathlib import Path
from typing import Annotated

import typer

from e2echat import (
    Client,
    E2EChatError,
    FollowedRoom,
    Identity,
    InvalidName,
    default_identity_path,
    default_store_path,
)
from e2echat import __version__ as e2echat_version
from e2echat_tui import __version__, config
from e2echat_tui.config import (
    NAME_ENV,
    RELAY_ENV,
    STORE_ENV,
    Config,
    ConfigError,
    Preferences,
    pick,
)
from e2echat_tui.format import peer_of
from e2echat_tui.keys import ACTIONS
from e2echat_tui.safe import escape_controls

app = typer.Typer(
    help="e2echat: end-to-end encrypted chat in your terminal.",
    no_args_is_help=True,
    add_completion=False,
)

PASSPHRASE_ENV = "E2ECHAT_PASSPHRASE"  # noqa: S105 (the variable's name, read by the library)
IDENTITY_ENV = "E2ECHAT_IDENTITY"

IdentityOption = Annotated[
    Path | None,
    typer.Option(
        "--identity",
        "-i",
        help="Identity file ($E2ECHAT_IDENTITY; default: identity.key under"
        " $E2ECHAT_HOME or the data dir).",
        show_default=False,
    ),
]
ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        help="Config file ($E2ECHAT_CONFIG; default: config.toml in the config dir).",
        show_default=False,
    ),
]
BellOption = Annotated[
    bool | None,
    typer.Option("--bell/--no-bell", help="Ring the bell on a mention.", show_default=False),
]
ToastOption = Annotated[
    bool | None,
    typer.Option("--toast/--no-toast", help="Show a toast on a mention.", show_default=False),
]
RegistrationTokenOption = Annotated[
    str | None,
    typer.Option(
        help="Token from the relay's operator, for a relay that admits new identities"
        " with one only (needed on the first connection only).",
        envvar="E2ECHAT_REGISTRATION_TOKEN",
    ),
]


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


def _load_config(path: Path | None) -> Config:
    """The checked config file (all defaults if there is none); a bad one ends here."""
    try:
        return config.load(path or config.default_config_path(), ACTIONS)
    except ConfigError as exc:
        raise _fail(str(exc)) from None


def _path_setting(
    flag: Path | None, option: str, env: str, key: str, configured: str | None, settings: Config
) -> Path | None:
    """A path from ``option``, then ``env``, then the config file's ``key`` (its value
    ``configured``, relative to the file); None when none of them gives one."""
    path, _ = pick(
        flag,
        option,
        env,
        lambda text: Path(text).expanduser(),
        settings.file_path(configured),
        key,
        settings,
    )
    return path


def _store_path(flag: Path | None, settings: Config) -> Path | None:
    """The store (None: the default next to the identity)."""
    store = settings.settings.store
    return _path_setting(flag, "--store", STORE_ENV, "store", store, settings)


def _identity_path(flag: Path | None, settings: Config) -> Path:
    configured = settings.settings.identity
    path = _path_setting(flag, "--identity", IDENTITY_ENV, "identity", configured, settings)
    return path or default_identity_path()


def _load_identity(path: Path) -> Identity:
    """Load the identity, asking for its passphrase unless $E2ECHAT_PASSPHRASE is set."""
    if not path.exists():
        raise _fail(f"no identity at {path}: run `e2echat init` first")
    passphrase = None
    if not os.environ.get(PASSPHRASE_ENV):
        passphrase = typer.prompt(f"Passphrase for {path}", hide_input=True)
    try:
        return Identity.load(path, passphrase)
    except E2EChatError as exc:
        raise _fail(str(exc)) from None


def _preferences(settings: Config) -> Preferences:
    file = settings.settings
    return Preferences(
        notify_on=file.notifications.on,
        desktop=file.notifications.desktop,
        muted=frozenset(file.notifications.muted),
        keymap=dict(file.keymap),
        vi=file.vi,
        theme=file.theme,
    )


def _flag_or_file(flag: bool | None, file_value: bool) -> bool:
    return file_value if flag is None else flag


@app.command()
def init(
    identity: IdentityOption = None,
    relay: Annotated[
        list[str] | None,
        typer.Option("--relay", help="Relay URL to keep in the config file (repeatable)."),
    ] = None,
    name: Annotated[
        str | None, typer.Option("--name", "-n", help="Display name to keep in the config file.")
    ] = None,
    config_path: ConfigOption = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace an existing identity (it is lost).")
    ] = False,
) -> None:
    """Create your identity key, encrypted under a passphrase, print its fingerprint, and
    write the config file (relay, name) unless there is one already."""
    settings = _load_config(config_path)  # a broken config file is reported, not replaced
    path = identity or _identity_path(None, settings)
    if path.exists() and not force:
        raise _fail(f"{path} already exists; use --force to replace it")
    text = config.render(relay or [], name, identity)
    try:
        config.parse(text, settings.path, ACTIONS)  # what is written must load back
    except ConfigError as exc:
        raise _fail(str(exc).replace(f"{settings.path}: ", "", 1)) from None
    passphrase = typer.prompt("New passphrase", hide_input=True, confirmation_prompt=True)
    new = Identity.generate()
    try:
        new.save(path, passphrase, overwrite=force)
    except (E2EChatError, ValueError) as exc:
        raise _fail(str(exc)) from None
    typer.echo(f"Identity saved to {path}")
    typer.echo(f"Fingerprint: {new.fingerprint}")
    if settings.exists:
        typer.echo(f"Config file {settings.path} kept as it is")
        return
    try:
        settings.path.parent.mkdir(parents=True, exist_ok=True)
        with settings.path.open("x", encoding="utf-8") as file:
            file.write(text)
    except OSError as exc:
        raise _fail(f"{settings.path}: cannot be written: {exc.strerror}") from None
    typer.echo(f"Config file written to {settings.path}")


@app.command()
def fingerprint(identity: IdentityOption = None, config_path: ConfigOption = None) -> None:
    """Print the fingerprint of your identity key (others compare it with /verify)."""
    settings = _load_config(config_path)
    typer.echo(_load_identity(_identity_path(identity, settings)).fingerprint)


@app.command()
def connect(
    url: Annotated[
        list[str] | None,
        typer.Argument(
            help="Relay URL, e.g. ws://127.0.0.1:8765/; several nodes of one relay cluster"
            " may be given, tried in turn when one is down ($E2ECHAT_RELAY, comma"
            " separated; default: relay in the config file).",
            show_default=False,
        ),
    ] = None,
    name: Annotated[
        str | None,
        typer.Option(
            "--name",
            "-n",
            help="Your display name ($E2ECHAT_NAME; default: name in the config file).",
            show_default=False,
        ),
    ] = None,
    identity: IdentityOption = None,
    store: Annotated[
        Path | None,
        typer.Option(
            help="Message store ($E2ECHAT_STORE; default: one per identity under the data dir).",
            show_default=False,
        ),
    ] = None,
    room: Annotated[str | None, typer.Option(help="Room to show first.")] = None,
    registration_token: RegistrationTokenOption = None,
    bell: BellOption = None,
    toast: ToastOption = None,
    config_path: ConfigOption = None,
) -> None:
    """Open the chat on a relay (asks for your identity's passphrase). With no arguments
    it uses the config file that `e2echat init` wrote."""
    from e2echat_tui.launch import run_chat

    settings = _load_config(config_path)
    file = settings.settings
    file_relays = [file.relay] if isinstance(file.relay, str) else file.relay
    urls, url_origin = pick(
        url or None, "the URL argument", RELAY_ENV, _split_urls, file_relays, "relay", settings
    )
    if not urls:
        raise _fail(
            "no relay URL: give one (e2echat connect ws://HOST:PORT/), set $E2ECHAT_RELAY,"
            f" or set relay in {settings.path}"
        )
    chosen, name_origin = pick(name, "--name", NAME_ENV, str, file.name, "name", settings)
    if chosen is None:
        raise _fail(f"no name: give --name NAME, set $E2ECHAT_NAME, or set name in {settings.path}")
    store_path = _store_path(store, settings)
    loaded = _load_identity(_identity_path(identity, settings))
    try:
        # a person at the terminal is told at once that the relay is unreachable (one
        # try of each URL); once connected, the client reconnects on its own
        chat = Client(
            urls,
            identity=loaded,
            name=chosen,
            store=store_path,
            connect_timeout=0,
            registration_token=registration_token,
            read_receipts=file.read_receipts,
        )
    except InvalidName as exc:
        raise _fail(f"{name_origin}: {exc}") from None
    except E2EChatError as exc:
        raise _fail(f"{url_origin}: {exc}") from None
    try:
        asyncio.run(
            run_chat(
                chat,
                room=room or file.room,
                bell=_flag_or_file(bell, file.notifications.bell),
                toast=_flag_or_file(toast, file.notifications.toast),
                preferences=_preferences(settings),
            )
        )
    except E2EChatError as exc:
        raise _fail(str(exc)) from None


identity_app = typer.Typer(help="Manage your identity key.", no_args_is_help=True)
app.add_typer(identity_app, name="identity")


@identity_app.command("rotate")
def rotate(
    url: Annotated[
        list[str] | None,
        typer.Argument(
            help="Relay URL ($E2ECHAT_RELAY; default: relay in the config file).",
            show_default=False,
        ),
    ] = None,
    identity: IdentityOption = None,
    store: Annotated[
        Path | None,
        typer.Option(
            "--store",
            help="Message store of the current identity ($E2ECHAT_STORE; default: one per"
            " identity under the data dir).",
            show_default=False,
        ),
    ] = None,
    registration_token: RegistrationTokenOption = None,
    config_path: ConfigOption = None,
) -> None:
    """Move to a new identity key: the old key and the new one sign a successor statement,
    sent to every room the old key is in. Contacts who verified the old key carry the
    verification over after checking it; everyone else sees a new, unverified key of the
    same person. The new key then enters every room of the old one, with nothing asked
    again (admin where the old key is owner), and replaces the old key in the identity
    file (the old file is kept next to it, ending in .old)."""
    settings = _load_config(config_path)
    file = settings.settings
    file_relays = [file.relay] if isinstance(file.relay, str) else file.relay
    urls, url_origin = pick(
        url or None, "the URL argument", RELAY_ENV, _split_urls, file_relays, "relay", settings
    )
    if not urls:
        raise _fail(f"no relay URL: give one, set $E2ECHAT_RELAY, or set relay in {settings.path}")
    store_path = _store_path(store, settings)
    path = _identity_path(identity, settings)
    kept = path.with_name(path.name + ".old")
    if kept.exists():
        raise _fail(f"{kept} exists (an earlier rotation): move it away first")
    old = _load_identity(path)
    # named for the old key: an unfinished rotation's new key is only ever its successor
    fresh = path.with_name(f"{path.name}.new-{old.public_key.hex()[:16]}")
    new = _successor(fresh)
    try:
        rooms, followed = asyncio.run(_announce(urls, old, new, store_path, registration_token))
    except E2EChatError as exc:
        raise _fail(f"{url_origin}: {exc}; run it again to name the same new key") from None
    os.replace(path, kept)
    os.replace(fresh, path)
    typer.echo(f"Successor statement sent to {rooms} room{'s' if rooms != 1 else ''}")
    for line in followed:
        typer.echo(escape_controls(line))
    typer.echo(f"Old identity kept as {kept}")
    typer.echo(f"New fingerprint: {new.fingerprint}")
    if store_path is not None:
        typer.echo(
            f"The new key has a store of its own: {default_store_path(new)}; --store,"
            f" ${STORE_ENV} and store in the config file name the old key's: change them"
        )


def _successor(fresh: Path) -> Identity:
    """The new key: the one an earlier rotation that did not finish saved in ``fresh``
    (some rooms may have its statement, and an old key names one successor only), else
    a new one, saved there before anyone is told of it."""
    if fresh.exists():
        passphrase = os.environ.get(PASSPHRASE_ENV) or typer.prompt(
            f"Passphrase of {fresh} (the new key of a rotation that did not finish)",
            hide_input=True,
        )
        try:
            return Identity.load(fresh, passphrase)
        except E2EChatError as exc:
            raise _fail(
                f"{fresh} holds the new key of a rotation that did not finish: {exc}"
            ) from None
    passphrase = os.environ.get(PASSPHRASE_ENV) or typer.prompt(
        "Passphrase for the new key", hide_input=True, confirmation_prompt=True
    )
    new = Identity.generate()
    new.save(fresh, passphrase)
    return new


async def _announce(
    urls: list[str], old: Identity, new: Identity, store: Path | None, token: str | None
) -> tuple[int, list[str]]:
    """Connect as ``old``, name ``new`` its successor in every room, then enter them all
    as ``new`` (its own store); how many rooms, and a line for each room entered or not."""
    async with Client(urls, identity=old, store=store, connect_timeout=0) as chat:
        await chat.announce_successor(new)
        if await chat.flush():
            raise E2EChatError("the relay did not confirm the statement in every room; try again")
        try:  # the statement is out: the rotation stands whatever happens from here
            async with Client(
                urls, identity=new, name=chat.name, connect_timeout=0, registration_token=token
            ) as moved:
                followed = await moved.join_rooms_of(chat)
        except E2EChatError as exc:
            return len(chat.rooms), [f"No room entered with the new key ({exc}): join them by hand"]
        entered = sum(1 for each in followed if each.room is not None)
        summary = f"{entered} of {len(followed)} rooms entered with the new key"
        return len(chat.rooms), [*(_followed_line(f, new.public_key) for f in followed), summary]


def _followed_line(followed: FollowedRoom, key: bytes) -> str:
    """How the new key entered a room of the old one, or why not."""
    old = followed.old
    if old.peer is not None:
        peer = peer_of(old)
        what = f"direct conversation with {peer.display_name if peer else old.peer.hex()[:8]}"
    else:
        what = f"room {old.name}"
    if followed.room is None:
        return f"Not entered with the new key: {what}: {followed.problem}"
    if followed.problem is not None:
        return f"Entered with the new key: {what}, but not made its admin: {followed.problem}"
    admin = " (as its admin)" if old.roles.get(key) == "admin" else ""
    return f"Entered with the new key: {what}{admin}"


def _split_urls(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


@app.command()
def demo(
    bell: BellOption = None, toast: ToastOption = None, config_path: ConfigOption = None
) -> None:
    """Try e2echat now: a local relay, a greeter bot in `lobby`, and you. Nothing is kept.
    Keys, notifications and the theme come from the config file."""
    from e2echat_tui.demo import run_demo

    settings = _load_config(config_path)
    notifications = settings.settings.notifications
    try:
        asyncio.run(
            run_demo(
                bell=_flag_or_file(bell, notifications.bell),
                toast=_flag_or_file(toast, notifications.toast),
                preferences=_preferences(settings),
            )
        )
    except E2EChatError as exc:
        raise _fail(str(exc)) from None


def main() -> None:
    app()
