"""Files in the TUI without a relay: sizes, lines, pasted paths, progress, commands,
a hostile file name on screen, and the transfer bar's look."""

import os
import sys
import types
from collections.abc import Callable
from pathlib import Path

import pytest
from e2echat_tui import commands as cmd
from e2echat_tui import preview
from e2echat_tui.app import ChatApp
from e2echat_tui.files import file_line, human_size, pasted_file, transfer_detail, transfer_label
from e2echat_tui.header import Header
from e2echat_tui.preview import describe_image
from textual.pilot import Pilot

from e2echat import FileInfo, TransferProgress

from .conftest import SIZE, fixed_app, populated_chat
from .screen import screen_text
from .test_app import commands_done, last_line, started

SnapCompare = Callable[..., bool]
HOSTILE = "\x1b]0;owned\x07[bold red]x[/bold red]\u202egnp.exe"


def info(name: str, size: int = 1536, media_type: str = "image/png") -> FileInfo:
    return FileInfo(name, size, media_type, blob=bytes(16), key=bytes(32), hash=bytes(32))


def test_sizes() -> None:
    assert [human_size(n) for n in (0, 1023, 1536, 10 * 2**20, 3 * 2**30)] == [
        "0 B",
        "1023 B",
        "1.5 KiB",
        "10 MiB",
        "3.0 GiB",
    ]


def test_a_file_line_escapes_the_senders_labels() -> None:
    line = file_line(info(HOSTILE, media_type="image/\x1bpng"), "see\x1b[2J")
    assert "\x1b" not in line
    assert "\u202e" not in line
    assert line.startswith("📎 \\x1b]0;owned\\x07[bold red]x[/bold red]\\u202egnp.exe · 1.5 KiB")
    assert line.endswith("image/\\x1bpng — see\\x1b[2J")


def test_a_pasted_path_counts_only_when_it_names_a_regular_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spaced = tmp_path / "a b.png"
    spaced.write_bytes(b"x")
    monkeypatch.setenv("HOME", str(tmp_path))
    for pasted in (
        str(spaced),
        f"'{spaced}'",
        f'"{spaced}"',
        str(spaced).replace(" ", "\\ "),
        "file://" + str(spaced).replace(" ", "%20"),
        f"  {spaced}\n",
        "~/a b.png",
    ):
        assert pasted_file(pasted) == spaced, pasted
    os.mkfifo(tmp_path / "pipe")
    for text in (
        "a b.png",  # relative: a message, not a path
        str(tmp_path),  # a folder
        str(tmp_path / "pipe"),
        str(tmp_path / "missing.png"),
        f"{spaced}\n{spaced}",
        f"{spaced}\x1b",
        "file://elsewhere" + str(spaced),
        "/" + "x" * 5000,
        "hello world",
        "",
    ):
        assert pasted_file(text) is None, text


def test_progress_text() -> None:
    moving = TransferProgress("download", 3 * 2**20, 8 * 2**20, 2**20, 3.0)
    assert transfer_label("cat\x1b.png", "download") == "↓ cat\\x1b.png"
    assert transfer_detail(moving, "download") == "38% 3.0 MiB/8.0 MiB 1.0 MiB/s 5 s left"
    stalled = TransferProgress("upload", 0, 2**30, 0.0, 1.0)
    assert transfer_detail(stalled, "upload").endswith("0 B/s — left")
    assert transfer_detail(None, "upload") == "encrypting…"
    assert transfer_detail(None, "download") == "connecting…"
    assert transfer_label("n" * 40, "upload") == "↑ " + "n" * 23 + "…"


def test_file_commands_parse() -> None:
    assert cmd.parse("/upload ~/my notes.txt") == cmd.Upload("~/my notes.txt")
    assert cmd.parse("/upload '/tmp/a b'") == cmd.Upload("/tmp/a b")
    assert cmd.parse("/download") == cmd.Download()
    assert cmd.parse("/cancel") == cmd.Cancel()
    for bad in ("/upload", "/download now", "/cancel all"):
        with pytest.raises(cmd.CommandError, match="usage"):
            cmd.parse(bad)


def test_an_image_is_described_from_its_header_only(tmp_path: Path) -> None:
    from PIL import Image

    picture = tmp_path / "p.png"
    Image.new("RGB", (4, 3)).save(picture)
    assert describe_image(picture, "image/png").startswith("PNG image, 4x3 pixels, ")
    fake = tmp_path / "not.png"
    fake.write_bytes(b"\x89PNG but not really")
    assert describe_image(fake, "image/png") == "image/png, 19 B, not a readable image"


async def test_a_hostile_file_name_is_shown_as_text_and_download_needs_a_file() -> None:
    chat = populated_chat()
    lobby = chat.directory["lobby"]
    bob = next(m for m in lobby.member_list if m.name == "bob")
    chat.record_file(lobby, bob, HOSTILE, 4096, "image/png", "[i]caption[/i]")
    app = fixed_app(chat)
    async with app.run_test(size=SIZE) as pilot:
        await started(app, chat)
        await pilot.pause()
        shown = screen_text(app)
        assert "bob 📎 \\x1b]0;owned\\x07[bold red]x[/bold" in shown  # wrapped here
        assert "red]\\u202egnp.exe · 4.0 KiB · image/png —" in shown
        await pilot.press("f3")
        assert app.timeline.selected is not None
        assert app.timeline.selected.message is not None
        assert app.timeline.selected.message.file is not None
        await pilot.press("escape")
        assert app.focused is app.composer


async def test_a_refused_upload_stays_in_the_composer(tmp_path: Path) -> None:
    """The upload runs in a worker of its own: a refusal there (a path that is no file)
    gives the line back as any refused command does, not an empty composer."""
    app = fixed_app(populated_chat())
    line = f"/upload {tmp_path / 'missing.txt'}"
    async with app.run_test(size=SIZE) as pilot:
        await started(app, app.chat)  # type: ignore[arg-type]
        app.composer.text = line
        await pilot.press("enter")
        await commands_done(app)
        uploads = [worker for worker in app.workers if worker.group == "transfers"]
        if uploads:  # (an empty list would mean every worker)
            await app.workers.wait_for_complete(uploads)
        await pilot.pause()
        assert app.composer.text == line
        assert last_line(app).endswith("missing.txt is not a file that can be read")


class HeldTransfer:
    """A transfer that runs until cancelled: it only counts the cancels."""

    def __init__(self) -> None:
        self.cancels = 0

    def cancel(self) -> bool:
        self.cancels += 1
        return True


async def until_status(pilot: Pilot[None], rows: int) -> None:
    """Process messages until the status line has ``rows`` rows (bounded, no sleeping)."""
    for _ in range(50):
        if pilot.app.query_one(Header).size.height == rows:
            return
        await pilot.pause()
    raise AssertionError(f"the status line never had {rows} rows")


def test_file_message_and_transfers_in_the_status_line(snap_compare: SnapCompare) -> None:
    chat = populated_chat()
    lobby = chat.directory["lobby"]
    bob = next(m for m in lobby.member_list if m.name == "bob")
    chat.record_file(lobby, bob, "holiday [1].jpg", 3 * 2**20, "image/jpeg", "the beach")

    async def transfer(pilot: Pilot[None]) -> None:
        app: ChatApp = pilot.app  # type: ignore[assignment]
        await app.ready.wait()
        up = app.transfers.start(HeldTransfer(), "slides.pdf", "upload")  # type: ignore[arg-type]
        app.transfers.advance(
            up, TransferProgress("upload", 5 * 2**20, 20 * 2**20, 2.5 * 2**20, 2.0)
        )
        app.transfers.start(HeldTransfer(), "holiday [1].jpg", "download")  # type: ignore[arg-type]
        await pilot.press("f3")
        await until_status(pilot, 2)

    assert snap_compare(fixed_app(chat), terminal_size=SIZE, run_before=transfer)


async def test_transfers_show_in_the_status_line_and_f4_cancels_the_newest() -> None:
    app = fixed_app(populated_chat())
    async with app.run_test(size=(200, 30)) as pilot:
        await app.ready.wait()
        footer = lambda: screen_text(app).splitlines()[-1]  # noqa: E731
        assert "Cancel transfer" not in footer()
        first, second = HeldTransfer(), HeldTransfer()
        up = app.transfers.start(first, "a.txt", "upload")  # type: ignore[arg-type]
        app.transfers.start(second, "b\x1b[31m.txt", "download")  # type: ignore[arg-type]
        app.transfers.advance(up, TransferProgress("upload", 2**20, 4 * 2**20, 2**20, 1.0))
        await pilot.press(*"typing on")  # nothing waits for the transfers
        await pilot.pause()
        assert app.composer.text == "typing on"
        status = screen_text(app).splitlines()[0]  # wide enough: one line
        assert "● connected" in status
        assert (
            "↑ a.txt 25% 1.0 MiB/4.0 MiB 1.0 MiB/s 3 s left · ↓ b\\x1b[31m.txt connecting…"
            in status
        )
        assert "f4 Cancel transfer" in footer()
        await pilot.press("f4")
        assert (first.cancels, second.cancels) == (0, 1)
        app.transfers.finish(app.transfers.running[-1])
        await pilot.press("f4")
        assert first.cancels == 1
        app.transfers.finish(up)
        await until_status(pilot, 1)
        await pilot.pause()
        assert "↑" not in screen_text(app).splitlines()[0]
        assert app.progress_text == ""
        assert "Cancel transfer" not in footer()
        await pilot.press("f4")  # nothing runs: nothing to cancel, nothing fails


def test_graphics_are_asked_of_a_real_terminal_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(preview.IMAGES_ENV, "off")
    assert preview._detect() is None
    monkeypatch.delenv(preview.IMAGES_ENV)
    assert preview._detect() is None  # pytest's stdin is no terminal: nothing is asked


class _Asked(types.ModuleType):
    """Stands for textual_image, whose import asks the terminal: records that it was."""

    def __init__(self, asked: list[str]) -> None:
        super().__init__("textual_image")
        self.asked = asked

    def __getattr__(self, name: str) -> object:
        self.asked.append(name)
        raise AttributeError(name)


def test_graphics_are_not_asked_inside_tmux(monkeypatch: pytest.MonkeyPatch) -> None:
    """tmux takes the kitty query for a title: every pane running e2echat was renamed
    ``Gi=...;AAAA``. Inside tmux (or screen) nothing is asked; previews are text."""
    asked: list[str] = []
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True)
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    monkeypatch.setitem(sys.modules, "textual_image", _Asked(asked))
    monkeypatch.delenv("TMUX", raising=False)
    monkeypatch.delenv("STY", raising=False)
    assert preview._detect() is None
    assert asked  # outside tmux it is asked (and, here, fails)
    asked.clear()
    monkeypatch.setenv("TMUX", "/tmp/tmux-0/default,1234,0")
    assert preview._detect() is None
    assert asked == []


async def test_an_image_previews_with_a_graphics_protocol_and_a_huge_one_is_refused(
    tmp_path: Path,
) -> None:
    from PIL import Image

    small, huge = tmp_path / "small.png", tmp_path / "huge.png"
    Image.new("RGB", (8, 6), "teal").save(small)
    Image.new("1", (7000, 6000)).save(huge)  # 42 million pixels in a few KiB
    with pytest.raises(ValueError, match="too large"):
        preview.image_widget(huge, "kitty")
    (tmp_path / "junk.png").write_bytes(b"junk")
    with pytest.raises(ValueError, match="not a readable image"):
        preview.image_widget(tmp_path / "junk.png", "sixel")
    app = fixed_app(populated_chat())
    async with app.run_test(size=SIZE) as pilot:
        await app.ready.wait()
        for graphics in ("kitty", "sixel"):
            screen = preview.PreviewScreen(preview.image_widget(small, graphics), "small.png")
            await app.push_screen(screen)
            await pilot.pause()
            assert app.screen is screen
            assert "small.png" in screen_text(app)
            await pilot.press("escape")
            await pilot.pause()
            assert app.screen is not screen
