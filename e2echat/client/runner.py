"""``e2echat.run``: the synchronous entry point of a bot, with clean signal handling.

A bot is an ``async def setup(chat)`` that registers handlers and joins rooms; ``run``
makes the identity (``Identity.load_or_create``), connects, calls it, and serves the
handlers until the process is told to stop. SIGINT (Ctrl-C) and SIGTERM (a service
manager) cancel the bot, which closes the client cleanly (the relay sees a going-away
close, queued messages stay in the outbox for the next start), and the process exits
with status 0 and no traceback; a second signal while closing exits at once (130 or
143). A refusal at start (relay unreachable, identity refused, store in use) is one
line on stderr and exit status 1, not a traceback.

``run`` also takes a coroutine (``e2echat.run(main())``) for programs that open their
own ``Client``: the same signal handling applies.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

from e2echat.client.client import Client
from e2echat.client.errors import E2EChatError
from e2echat.client.identity import Identity
from e2echat.client.paths import bot_identity_path

log = logging.getLogger("e2echat")
Setup = Callable[[Client], Awaitable[None]]
BOT_OPTIONS: dict[str, Any] = {"rejoin": True, "skip_backlog": True}
"""What ``run`` changes of ``Client``'s defaults: a bot joins again the rooms a relay
lost, and answers only what comes live (not the commands of the hours it was down)."""
_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def run(
    main: Setup | Coroutine[Any, Any, None],
    url: str | None = None,
    *,
    name: str | None = None,
    identity: Identity | Path | str | None = None,
    allow_unencrypted: bool = False,
    log_level: int | str | None = logging.INFO,
    **client_options: Any,
) -> None:
    """Run a bot until SIGINT or SIGTERM, then close cleanly and return.

    ``main`` is ``async def setup(chat: Client)``: it runs once connected; when it
    returns, handlers are served until a signal (a script that registered no handler,
    a one-shot notifier, is done: the client flushes its outbox and closes). ``identity``
    is an ``Identity`` or the path of one (default ``bot_identity_path(name)``, one per
    bot name), made on the first run under ``$E2ECHAT_PASSPHRASE`` or
    ``$E2ECHAT_PASSPHRASE_FILE``.
    ``client_options`` go to ``Client``, over ``BOT_OPTIONS`` (``rejoin=True``,
    ``skip_backlog=True``). ``log_level`` sets up logging to stderr at
    that level unless the application configured logging itself (None: leave it).
    """
    if log_level is not None and not logging.getLogger().handlers:
        logging.basicConfig(level=log_level, format="%(asctime)s %(levelname)s %(message)s")
    if asyncio.iscoroutine(main):
        if url is not None or name is not None or identity is not None or client_options:
            main.close()
            raise TypeError("run(coroutine) takes no client options: the coroutine has its own")
        coroutine = main
        prepare: Callable[[], Coroutine[Any, Any, None]] = lambda: coroutine  # noqa: E731
    elif not callable(main):
        raise TypeError(f"run() takes an async setup function or a coroutine, not {main!r}")
    elif url is None or name is None:
        raise TypeError("run(setup, url, name=...) needs the relay URL and the bot's name")
    else:
        prepare = functools.partial(
            _bot, main, url, name, identity, allow_unencrypted, client_options
        )
    try:
        asyncio.run(_until_signalled(prepare()))
    except E2EChatError as exc:
        raise SystemExit(f"e2echat: {exc}") from None
    except KeyboardInterrupt:  # a platform without loop signal handlers (Windows)
        return


def _bot(
    setup: Setup,
    url: str,
    name: str,
    identity: Identity | Path | str | None,
    allow_unencrypted: bool,
    client_options: dict[str, Any],
) -> Coroutine[Any, Any, None]:
    """The bot's coroutine, its identity loaded (or made) first, before the event loop:
    a wrong passphrase is refused before any connection, and a warning about a clear
    key file points at the line that called ``run``."""
    if not isinstance(identity, Identity):
        path = bot_identity_path(name) if identity is None else identity
        identity = Identity.load_or_create(path, allow_unencrypted=allow_unencrypted)
    return _serve(setup, url, name, identity, client_options)


async def _serve(
    setup: Setup, url: str, name: str, identity: Identity, client_options: dict[str, Any]
) -> None:
    options = {**BOT_OPTIONS, **client_options}
    async with Client(url, identity=identity, name=name, **options) as chat:
        await setup(chat)
        log.info("%s is ready in %d room(s)", name, len(chat.rooms))
        if chat.has_handlers:
            await chat.run_forever()
        else:
            await chat.flush()


async def _until_signalled(work: Coroutine[Any, Any, None]) -> None:
    """Run ``work``; the first SIGINT/SIGTERM cancels it, a second one exits at once."""
    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(work)
    received: list[int] = []

    def on_signal(signum: int) -> None:
        if received:
            log.warning("second %s while closing: exiting now", signal.Signals(signum).name)
            sys.exit(128 + signum)
        received.append(signum)
        log.info("%s received: closing", signal.Signals(signum).name)
        task.cancel()

    installed = []
    for signum in _SIGNALS:
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signum, on_signal, signum)
            installed.append(signum)
    try:
        await task
    except asyncio.CancelledError:
        if not received:
            raise
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)
