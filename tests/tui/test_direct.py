"""/msg over the real library and relay: a direct conversation is started by key (a
name that fits two keys is refused), listed with an @ in the sidebar, and one started
by someone else appears there too."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from e2echat_tui.app import ChatApp
from e2echat_tui.demo import LOBBY
from e2echat_tui.dialogs import VerifyScreen
from e2echat_tui.sidebar import RoomList
from e2echat_tui.trust import tag
from textual.command import CommandPalette
from textual.pilot import Pilot

from e2echat import Client, DirectStarted, Identity, Message, Room

from .screen import screen_text
from .test_app import until_screen
from .test_live import TIMEOUT, WatchedApp, bodies, first_message, session, type_line, until

__all__ = ["session"]  # the fixture, shared with test_live


def sidebar_peers(app: ChatApp) -> dict[str, str | None]:
    return {room: row.peer for room, row in app.query_one(RoomList).rows.items()}


async def next_of(source: object, kind: type, in_direct: bool = False) -> object:
    async with asyncio.timeout(TIMEOUT):
        async for item in source:  # type: ignore[attr-defined]
            if isinstance(item, kind) and (not in_direct or item.room.peer is not None):
                return item
    raise AssertionError("unreachable")


async def test_msg_starts_a_direct_conversation_by_key_and_refuses_namesakes(
    session: tuple[WatchedApp, Pilot[None], str], tmp_path: Path
) -> None:
    app, pilot, url = session
    bob = Client(url, identity=Identity.generate(), name="bob", store=tmp_path / "bob.sqlite3")
    fake = Client(url, identity=Identity.generate(), name="bob", store=tmp_path / "fake.sqlite3")
    async with bob, fake:
        bob_events, bob_inbox, fake_events = bob.events(), bob.messages(), fake.events()
        await bob.join(LOBBY)
        await fake.join(LOBBY)
        await until(
            app,
            lambda: (
                sum(b.startswith(("?bob joined", "⚠bob#")) and "joined" in b for b in bodies(app))
                >= 2
            ),
        )
        await app.tabs[LOBBY].room.members()
        await type_line(pilot, "/msg bob hi")
        await until(app, lambda: any("2 members are named bob" in b for b in bodies(app)))
        assert app.chat.directs == []
        real = next(m for m in app.tabs[LOBBY].room.member_list if m.key == bob.key)
        await type_line(pilot, f"/msg @bob#{tag(real)} only for you")
        started = await next_of(bob_events, DirectStarted)
        assert isinstance(started, DirectStarted)
        got = await next_of(bob_inbox, Message, in_direct=True)
        assert isinstance(got, Message)
        assert (got.text, got.room.id) == ("only for you", started.room.id)
        (dm,) = app.chat.directs
        await until(app, lambda: app.current == dm.name)
        assert sidebar_peers(app)[dm.name] == f"⚠bob#{tag(real)}"
        assert sidebar_peers(app)[LOBBY] is None
        await pilot.pause()
        assert f"@ ⚠bob#{tag(real)}" in screen_text(app)
        assert "only for you" in bodies(app, dm.name)
        await fake.get_room(LOBBY).members()  # type: ignore[union-attr]  # barrier
        assert fake.directs == []
        assert fake_events.dropped == 0


@asynccontextmanager
async def carol_writes_first(
    app: WatchedApp, url: str, tmp_path: Path
) -> AsyncIterator[tuple[Client, Room]]:
    """carol starts a direct conversation with tess and writes in it; it is on tess's
    screen: carol's client and the conversation."""
    carol = Client(url, identity=Identity.generate(), name="carol", store=tmp_path / "c.sqlite3")
    async with carol:
        lobby = await carol.join(LOBBY)
        tess = next(m for m in await lobby.members() if m.name == "tess")
        dm = await carol.direct(tess)
        await dm.send("psst")
        await until(app, lambda: dm.name in app.tabs and "psst" in bodies(app, dm.name))
        yield carol, dm


async def test_a_conversation_someone_else_starts_appears_in_the_sidebar(
    session: tuple[WatchedApp, Pilot[None], str], tmp_path: Path
) -> None:
    app, pilot, url = session
    async with carol_writes_first(app, url, tmp_path) as (carol, dm):
        assert sidebar_peers(app)[dm.name] is not None
        assert sidebar_peers(app)[dm.name].startswith("?carol#")  # type: ignore[union-attr]
        inbox = carol.messages()
        await type_line(pilot, "/msg carol and back")
        message = await first_message(inbox, lambda m: m.text == "and back")
        assert message.room.id == dm.id
        assert len(app.chat.directs) == 1


async def test_the_room_switcher_finds_a_direct_conversation_by_the_persons_name(
    session: tuple[WatchedApp, Pilot[None], str], tmp_path: Path
) -> None:
    """ctrl+g lists a direct conversation as the sidebar does (``@ ?carol#TAG``), so
    typing "carol" finds it; its random room name is never shown."""
    app, pilot, url = session
    async with carol_writes_first(app, url, tmp_path) as (_carol, dm):
        app.switch_to(LOBBY)
        await pilot.press("ctrl+g")
        await until_screen(pilot, CommandPalette)
        await pilot.press(*"carol")
        async with asyncio.timeout(TIMEOUT):  # the palette searches in a worker of its own
            while "@ ?carol#" not in screen_text(app):
                await pilot.pause()
        assert "@ ?carol#" in screen_text(app)
        assert dm.name not in screen_text(app)
        await pilot.press("down", "enter")
        async with asyncio.timeout(TIMEOUT):  # the palette calls the choice after it closes
            while app.current != dm.name:
                await pilot.pause()


async def test_the_sidebar_follows_the_trust_of_the_peers_key(
    session: tuple[WatchedApp, Pilot[None], str], tmp_path: Path
) -> None:
    """Verifying the other person marks the conversation's sidebar row (and the room
    switcher, which names it as the row does) ✔ at once, as the header; unverifying
    takes it back."""
    app, pilot, url = session
    async with carol_writes_first(app, url, tmp_path) as (_carol, dm):
        app.switch_to(dm.name)
        await type_line(pilot, "/verify carol")
        await until_screen(pilot, VerifyScreen)
        await pilot.click("#confirm")
        await until(app, lambda: bodies(app, dm.name)[-1].endswith(" is verified"))
        await until(app, lambda: (sidebar_peers(app)[dm.name] or "").startswith("✔carol#"))
        await pilot.pause()
        assert "@ ✔carol#" in screen_text(app)
        await type_line(pilot, "/unverify carol")
        await until(app, lambda: (sidebar_peers(app)[dm.name] or "").startswith("?carol#"))
