"""Files in the TUI over the real library and relay: /upload, a pasted path, the
progress in the status line and its cancel key, a received file shown safely, f3 + Enter to save it,
p to preview it."""

import asyncio
import io
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from e2echat_server.blobs import BlobStore
from e2echat_tui.demo import LOBBY, demo_session
from e2echat_tui.dialogs import ConfirmScreen
from e2echat_tui.timeline import Timeline
from PIL import Image
from textual import events
from textual.pilot import Pilot

from e2echat import Client, Identity, Message, Room

from .screen import screen_text
from .test_live import SIZE, TIMEOUT, WatchedApp, bodies, first_message, type_line, until


class FileApp(WatchedApp):
    """Also signals when a transfer ends."""

    async def _follow(self, *args: Any) -> Any:
        try:
            return await super()._follow(*args)
        finally:
            self.changed.set()


Session = tuple[FileApp, Pilot[None], Client, Path]


async def settle(pilot: Pilot[None], predicate: Callable[[], bool]) -> None:
    """Let the app process and paint until ``predicate`` holds (bounded): a screen just
    pushed or a line just added is on the screen only after a refresh."""
    async with asyncio.timeout(TIMEOUT):
        while not predicate():
            await pilot.pause()


async def shown_with(pilot: Pilot[None], text: str) -> str:
    """The screen, once it shows ``text``."""
    await settle(pilot, lambda: text in screen_text(pilot.app))
    return screen_text(pilot.app)


@pytest.fixture
async def files_session(tmp_path: Path) -> AsyncIterator[Session]:
    """tess in the demo's TUI (saving into ``downloads``) and bob, a library client."""
    async with demo_session(tmp_path, name="tess") as chat:
        app = FileApp(chat, room=LOBBY, bell=False, downloads=tmp_path / "downloads")
        async with app.run_test(size=SIZE) as pilot:
            await app.ready.wait()
            bob = Client(
                chat.url, identity=Identity.generate(), name="bob", store=tmp_path / "bob.sqlite3"
            )
            async with bob:
                await bob.join(LOBBY)
                await until(app, lambda: "?bob joined" in bodies(app))
                # The greeter welcomes bob: let that line come before the test's own.
                await until(app, lambda: any("Welcome to e2echat, @bob" in b for b in bodies(app)))
                yield app, pilot, bob, tmp_path


def png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (3, 2), "teal").save(buffer, "PNG")
    return buffer.getvalue()


async def next_file(inbox: AsyncIterator[Message[Room]]) -> Message[Room]:
    return await first_message(inbox, lambda message: message.file is not None)


async def test_upload_and_save_a_file_both_ways(files_session: Session) -> None:
    app, pilot, bob, tmp_path = files_session
    source = tmp_path / "the report.pdf"
    source.write_bytes(b"%PDF-1.4 " + bytes(range(256)) * 1200)
    inbox = bob.messages()
    await type_line(pilot, f"/upload {source}")
    await until(app, lambda: any(b.startswith("📎 the report.pdf ·") for b in bodies(app)))
    got = await next_file(inbox)
    assert got.file is not None
    assert got.file.name == "the report.pdf"
    assert (await got.download(tmp_path / "bob")).read_bytes() == source.read_bytes()

    # bob sends an image whose name tries markup and a terminal escape (his library
    # already makes such a name safe; a hostile client's is escaped: test_files.py).
    hostile = tmp_path / "\x1b[31m[bold red]cat.png"
    hostile.write_bytes(png_bytes())
    await bob.get_room(LOBBY).send_file(hostile, caption="[i]look[/i]")  # type: ignore[union-attr]
    await until(app, lambda: any("cat.png" in b for b in bodies(app)))
    shown = await shown_with(pilot, "cat.png")
    assert "?bob 📎 _[31m[bold red]cat.png · 78 B · image/png" in shown
    assert "[i]look[/i]" in shown

    await pilot.press("f3")
    assert app.focused is app.query_one(Timeline)
    assert app.timeline.selected is not None
    assert app.timeline.selected.message is not None
    assert app.timeline.selected.message.sender.name == "bob"
    await pilot.press("enter")
    await until(app, lambda: any(b.startswith("Saved ") for b in bodies(app)))
    (saved,) = (tmp_path / "downloads").iterdir()
    assert saved.name == "_[31m[bold red]cat.png"
    assert saved.read_bytes() == hostile.read_bytes()
    await pilot.press("p")  # no image protocol in a test terminal: a description
    await until(app, lambda: any("PNG image, 3x2 pixels" in b for b in bodies(app)))
    await pilot.press("escape")
    assert app.focused is app.composer


async def test_an_upload_shows_in_the_status_line_and_f4_cancels_it(
    files_session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    app, pilot, bob, tmp_path = files_session
    release = threading.Event()  # the relay stores one piece, then waits: mid-upload
    store_piece = BlobStore.append

    def held(self: BlobStore, blob: bytes, data: bytes, meta: Any = None) -> int:
        length = store_piece(self, blob, data, meta)
        release.wait(TIMEOUT)
        return length

    monkeypatch.setattr(BlobStore, "append", held)
    source = tmp_path / "big.bin"
    source.write_bytes(b"\0" * (8 * 1024 * 1024))
    try:
        await type_line(pilot, f"/upload {source}")
        await settle(
            pilot, lambda: bool(app.transfers.running and app.transfers.running[0].progress)
        )
        # in the status line, beside the connection, while the composer takes keys
        shown = await shown_with(pilot, "/8.0 MiB")
        status = "\n".join(shown.splitlines()[:2])
        assert "↑ big.bin " in status
        assert "% " in status
        assert "/8.0 MiB" in status
        assert " left" in status
        assert "f4 Cancel transfer" in shown.splitlines()[-1]
        await pilot.press(*"still typing")
        assert app.composer.text == "still typing"
        await pilot.press("f4")
        await until(
            app, lambda: any(b.startswith("Upload of big.bin cancelled") for b in bodies(app))
        )
    finally:
        release.set()
    await settle(pilot, lambda: not app.transfers.running)
    await settle(pilot, lambda: "↑ big.bin" not in screen_text(app))
    # the footer recomposes after its bindings change, a paint later than the status line
    await settle(pilot, lambda: "Cancel transfer" not in screen_text(app).splitlines()[-1])
    assert not any(b.startswith("📎") for b in bodies(app))
    assert not [m for m in await bob.get_room(LOBBY).history() if m.file]  # type: ignore[union-attr]


async def test_a_pasted_path_asks_before_it_uploads(files_session: Session) -> None:
    app, pilot, bob, tmp_path = files_session
    source = tmp_path / "notes one.txt"
    source.write_text("pasted")
    pasted = str(source).replace(" ", "\\ ")  # as a terminal pastes a dragged file
    app.composer.post_message(events.Paste(pasted))
    await settle(pilot, lambda: isinstance(app.screen, ConfirmScreen))
    await shown_with(pilot, "Upload notes one.txt (6 B) to lobby?")
    await pilot.press("enter")  # focus starts on Cancel: the paste becomes text
    await settle(pilot, lambda: not isinstance(app.screen, ConfirmScreen))
    await settle(pilot, lambda: app.composer.text == pasted)
    assert not any(b.startswith("📎") for b in bodies(app))
    app.composer.text = ""
    inbox = bob.messages()
    app.composer.post_message(events.Paste(pasted))
    await settle(pilot, lambda: isinstance(app.screen, ConfirmScreen))
    await shown_with(pilot, "Upload notes one.txt (6 B) to lobby?")
    await pilot.click("#confirm")
    got = await next_file(inbox)
    assert got.file is not None
    assert got.file.name == "notes one.txt"
    assert app.composer.text == ""
