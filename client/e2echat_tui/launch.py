"""Run the TUI over a real ``e2echat.Client`` (used by ``connect`` and ``demo``)."""

import asyncio
import contextlib
import gc
import signal
from collections.abc import Iterator
from typing import Any

from textual.app import App

from e2echat import Client
from e2echat_tui.app import ChatApp
from e2echat_tui.config import Preferences
from e2echat_tui.preview import detect_graphics

# SIGHUP does not exist on Windows, where the loop cannot take signal handlers anyway.
HANGUP_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGHUP", "SIGTERM") if hasattr(signal, name)
)


@contextlib.contextmanager
def exit_on_hangup(app: App[Any]) -> Iterator[None]:
    """End ``app`` like ``/quit`` on SIGHUP (its terminal was closed) or SIGTERM.

    By default those signals kill the process on the spot: the terminal keeps mouse
    tracking and the alternate screen, the client never closes its connection and
    store, and ``demo`` leaves its temporary identity on disk. Needs a running loop.
    """
    loop = asyncio.get_running_loop()
    installed = []
    for each in HANGUP_SIGNALS:
        with contextlib.suppress(NotImplementedError):  # a loop without signal support
            loop.add_signal_handler(each, app.exit)
            installed.append(each)
    try:
        yield
    finally:
        for each in installed:
            loop.remove_signal_handler(each)


async def run_app(app: ChatApp) -> None:
    """Run ``app`` until the user quits or the terminal goes away."""
    with exit_on_hangup(app):
        freezing = asyncio.create_task(freeze_when_loaded(app))
        try:
            await app.run_async()
        finally:
            freezing.cancel()


async def freeze_when_loaded(app: ChatApp) -> None:
    """Once the stored history is loaded, move everything then in memory out of the
    garbage collector's full passes (``gc.freeze``).

    That memory (up to 10,000 messages a room on screen, the library's state) lives as
    long as the program, yet each full pass walked all of it: about 90 ms at 10,000
    messages, a pause that fell on whatever key was being typed. Only the program's own
    process does this (a test process runs many apps, whose garbage would stay).
    """
    await app.backlog_loaded.wait()
    gc.freeze()


async def run_chat(
    chat: Client,
    *,
    room: str | None = None,
    bell: bool = True,
    toast: bool = True,
    preferences: Preferences | None = None,
) -> None:
    """Connect, run the app until the user quits, disconnect.

    The app is made first: it subscribes to the client's messages and events before
    the connection opens, so nothing of the session is missed. The terminal is asked
    for image support first, while it is still ours to ask.
    """
    app = ChatApp(
        chat,
        room=room,
        bell=bell,
        toast=toast,
        graphics=detect_graphics(),
        preferences=preferences,
    )
    async with chat:
        await run_app(app)
