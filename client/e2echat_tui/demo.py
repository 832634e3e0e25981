"""``e2echat demo``: a relay, a greeter bot and you, in one process, with no setup.

The relay runs embedded on a free local port with in-memory state; both identities
are fresh and their stores live in a temporary directory that is deleted on exit.
This is the only module of the TUI allowed to import the relay package.
"""

import asyncio
import contextlib
import functools
import logging
import tempfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from e2echat_server.config import RelayConfig
from e2echat_server.relay import Relay

from e2echat import AmbiguousMention, Client, Identity, Member, MemberJoined, Message, Room
from e2echat_tui.app import ChatApp
from e2echat_tui.config import Preferences
from e2echat_tui.launch import run_app
from e2echat_tui.preview import detect_graphics

LOBBY = "lobby"
GREETER = "greeter"
WELCOME = (
    "Welcome to e2echat, @{name}! This room is open: anyone the relay admits can read it. "
    "Mention me and I answer; /help lists the commands; try /verify greeter."
)


def greeter_reply(sender: str, text: str) -> str:
    """What the greeter answers to a message that mentions it."""
    lowered = text.casefold()
    if "help" in lowered:
        return f"@{sender} type /help for commands; /create NAME --secret makes a private room."
    if "verify" in lowered or "safety" in lowered:
        return f"@{sender} /verify {GREETER} shows our safety number: compare it out of band."
    return f"@{sender} hello! I read your message end-to-end encrypted: “{text}”"


async def _send_to(room: Room, member: Member, text_for: Callable[[str], str]) -> None:
    """Send ``text_for(name)``, which mentions ``member``; with a namesake about, by key
    (``name#tag``): a bare name of namesakes is refused, and anyone may take a name."""
    try:
        await room.send(text_for(member.name))
    except AmbiguousMention:
        await room.send(text_for(f"{member.name}#{member.tag}"))


async def run_greeter(bot: Client) -> None:
    """Welcome newcomers to the lobby and answer every mention, until cancelled."""
    events, messages = bot.events(), bot.messages()

    async def welcome() -> None:
        async for event in events:
            if isinstance(event, MemberJoined) and event.room.name == LOBBY:
                await _send_to(event.room, event.member, lambda name: WELCOME.format(name=name))

    async def answer() -> None:
        message: Message[Room]
        async for message in messages:
            if message.mentions_me:
                reply = functools.partial(greeter_reply, text=message.text)
                await _send_to(message.room, message.sender, reply)

    async with asyncio.TaskGroup() as group:
        group.create_task(welcome())
        group.create_task(answer())


@contextlib.asynccontextmanager
async def demo_session(workdir: Path, name: str = "guest") -> AsyncIterator[Client]:
    """A relay, a greeter in ``lobby``, and a connected client for ``name`` in ``lobby``."""
    async with Relay(RelayConfig(port=0, memory=True)) as relay:
        bot = Client(
            relay.url, identity=Identity.generate(), name=GREETER, store=workdir / "greeter.sqlite3"
        )
        async with bot:
            await bot.create(LOBBY, description="The demo room: say hi to @greeter")
            greeter = asyncio.create_task(run_greeter(bot), name="greeter")
            you = Client(
                relay.url, identity=Identity.generate(), name=name, store=workdir / "you.sqlite3"
            )
            try:
                async with you:
                    await you.join(LOBBY)
                    yield you
            finally:
                greeter.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await greeter


async def run_demo(
    *, bell: bool = True, toast: bool = True, preferences: Preferences | None = None
) -> None:
    """Run the whole demo until the user quits; nothing is left behind."""
    logging.getLogger().addHandler(logging.NullHandler())  # no relay logs over the TUI
    graphics = detect_graphics()  # before the app takes the terminal
    with tempfile.TemporaryDirectory(prefix="e2echat-demo-") as workdir:
        async with demo_session(Path(workdir)) as you:
            app = ChatApp(
                you,
                room=LOBBY,
                bell=bell,
                toast=toast,
                graphics=graphics,
                preferences=preferences,
            )
            await run_app(app)
