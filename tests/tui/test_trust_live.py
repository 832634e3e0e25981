"""Trust by key in the TUI over the real library and a real relay: a namesake of a
verified contact, a signed rename, a petname."""

import asyncio
from pathlib import Path

from e2echat_tui.demo import GREETER
from e2echat_tui.dialogs import VerifyScreen
from textual.pilot import Pilot

from e2echat import Client, Identity

from .test_live import TIMEOUT, WatchedApp, bodies, session, type_line, until
from .test_trust import panel_text

__all__ = ["session"]  # the fixture, used by name


async def verify_greeter(app: WatchedApp, pilot: Pilot[None]) -> None:
    await type_line(pilot, f"/verify {GREETER}")
    async with asyncio.timeout(TIMEOUT):
        while not isinstance(app.screen, VerifyScreen):
            await pilot.pause()
    await pilot.click("#confirm")
    await until(app, lambda: bodies(app)[-1] == f"✔{GREETER} is verified")


async def test_a_namesake_of_a_verified_contact_renames_and_a_petname(
    session: tuple[WatchedApp, Pilot[None], str], tmp_path: Path
) -> None:
    app, pilot, url = session
    await verify_greeter(app, pilot)
    impostor = Client(
        url, identity=Identity.generate(), name=GREETER, store=tmp_path / "impostor.sqlite3"
    )
    async with impostor:
        await impostor.join("lobby")
        warned = f"joined: not the {GREETER} you verified (same name as {GREETER}#"
        await until(
            app, lambda: any(b.startswith(f"⚠{GREETER}#") and warned in b for b in bodies(app))
        )
        assert any(impostor.fingerprint in b for b in bodies(app))
        await app.tabs["lobby"].room.members()  # the roster the panel shows, refreshed
        app._sync_roster()
        await pilot.pause()
        assert f"not the {GREETER} you verified" in panel_text(app)
        await impostor.rename("mallory")
        await until(app, lambda: any(b.endswith(" is now ?mallory") for b in bodies(app)))
        await type_line(pilot, f"/petname {GREETER} Gus")
        await until(app, lambda: bodies(app)[-1].endswith(" is ✔Gus to you"))
        await pilot.pause()
        assert "✔Gus" in panel_text(app)
        assert "calls itself greeter" in panel_text(app)
