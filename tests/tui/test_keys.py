"""Pilot tests of the keys: rooms by number and by name, the newest message and its
marker, vi mode, remapping, links, and notifications (mute, modes, desktop)."""

import asyncio
from dataclasses import replace

import pytest
from e2echat_tui.app import ChatApp
from e2echat_tui.composer import Composer
from e2echat_tui.config import Preferences
from e2echat_tui.lines import Entry
from e2echat_tui.links import find_urls, links_in
from e2echat_tui.notify import DesktopNotifier
from e2echat_tui.progress import ProgressBoard
from rich.style import Style
from textual.command import CommandPalette

from .conftest import SIZE, fixed_app
from .fake import FakeChat
from .screen import screen_text
from .test_app import settle, started, submit, until_screen


async def test_alt_numbers_show_rooms_by_place(app: ChatApp, chat: FakeChat) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await started(app, chat)
        await pilot.press("alt+2")
        assert app.current == "team"
        await pilot.press("alt+9")  # no ninth room: nothing moves
        assert app.current == "team"
        await pilot.press("alt+1")
        assert app.current == "lobby"


async def test_the_room_switcher_finds_a_room_by_letters(app: ChatApp, chat: FakeChat) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await started(app, chat)
        await pilot.press("ctrl+g")
        await until_screen(pilot, CommandPalette)
        await pilot.press(*"tm")  # a subsequence of "team"
        for _ in range(100):
            await pilot.pause(0.01)
            if "team" in screen_text(app):
                break
        await pilot.press("down", "enter")
        for _ in range(100):
            if app.current == "team":
                break
            await pilot.pause(0.01)
        assert app.current == "team"
        assert isinstance(app.focused, Composer)


async def test_end_and_the_new_messages_marker(chat: FakeChat) -> None:
    lobby = chat.directory["lobby"]
    for number in range(60):
        chat.record(lobby, lobby.member_list[1], f"old {number}")
    app = fixed_app(chat)
    async with app.run_test(size=SIZE) as pilot:
        await started(app, chat)
        await pilot.pause()
        await pilot.press("pageup")
        await pilot.pause()
        chat.deliver("lobby", "bob", "fresh one")
        chat.deliver("lobby", "bob", "fresh two")
        await settle(pilot)
        assert app.timeline.unseen == 2
        assert "↓ 2 new messages below · End" in screen_text(app)
        assert "fresh two" not in screen_text(app)
        await pilot.press("end")  # the draft is empty: its end is where the cursor is
        await pilot.pause()
        await pilot.pause()
        assert app.timeline.unseen == 0
        assert "fresh two" in screen_text(app)
        assert "new messages below" not in screen_text(app)
        await pilot.press("pageup")
        chat.deliver("lobby", "bob", "third")
        await settle(pilot)
        app.composer.text = "draft"
        app.composer.move_cursor((0, 0))
        await pilot.press("end")  # first End: the end of the draft
        assert app.timeline.unseen == 1
        await pilot.press("ctrl+end")
        await pilot.pause()
        await pilot.pause()
        assert app.timeline.unseen == 0
        assert app.composer.text == "draft"


async def test_vi_mode(chat: FakeChat) -> None:
    app = fixed_app(chat, preferences=Preferences(vi=True))
    async with app.run_test(size=SIZE) as pilot:
        await started(app, chat)
        composer = app.composer
        await pilot.press(*"hello world")
        await pilot.press("escape")
        assert composer.normal_mode
        assert "NORMAL" in screen_text(app)
        await pilot.press("0", "x", "w", "D")  # delete "h"; on to "world", delete it
        assert composer.text == "ello "
        await pilot.press("q")  # not a command: nothing typed
        assert composer.text == "ello "
        await pilot.press("I", *"y")
        assert not composer.normal_mode
        assert composer.text == "yello "
        await pilot.press("escape", "d", "d")
        assert composer.text == ""
        await pilot.press("i", *"sent")
        await pilot.press("enter")
        await settle(pilot)
        assert chat.sent[-1] == ("lobby", "sent")


async def test_vi_counts_operators_registers_undo_and_history(chat: FakeChat) -> None:
    app = fixed_app(chat, preferences=Preferences(vi=True))
    async with app.run_test(size=SIZE) as pilot:
        await started(app, chat)
        composer = app.composer
        await pilot.press(*"one two three four", "escape", "0")
        await pilot.press("c", "w", *"ONE", "escape")
        assert composer.text == "ONE two three four"
        assert composer.cursor_location == (0, 2)  # back on the last letter typed
        await pilot.press("w", "2")
        await pilot.press("d")
        assert "NORMAL 2d" in screen_text(app)  # the command so far
        await pilot.press("w")
        assert composer.text == "ONE four"
        await pilot.press("u")
        assert composer.text == "ONE two three four"
        await pilot.press("ctrl+r")
        assert composer.text == "ONE four"
        await pilot.press("$", "p")  # what 2dw deleted, put after the cursor
        assert composer.text == "ONE fourtwo three "
        await pilot.press("0", "y", "y", "p")
        assert composer.text == "ONE fourtwo three \nONE fourtwo three "
        await pilot.press("k", "d", "d", "d", "d")
        assert composer.text == ""
        await pilot.press("i", *"sent", "enter")
        await settle(pilot)
        assert chat.sent[-1] == ("lobby", "sent")
        await pilot.press("escape", "k")  # on the first line: the history
        assert composer.text == "sent"
        assert composer.normal_mode


async def test_completion_and_history_keys_are_remapped_from_the_config(chat: FakeChat) -> None:
    keymap = {
        "complete": "ctrl+t",
        "complete_previous": "ctrl+b",
        "history_previous": "ctrl+up",
        "history_next": "ctrl+down",
    }
    app = fixed_app(chat, preferences=Preferences(keymap=keymap))
    async with app.run_test(size=SIZE) as pilot:
        await started(app, chat)
        composer = app.composer
        await pilot.press(*"hi @", "ctrl+t")  # the first of bob, carol, dave
        assert composer.text == "hi @bob "
        await pilot.press("ctrl+down")  # moves in the list, as down did
        assert composer.text == "hi @carol "
        await pilot.press("ctrl+b", "ctrl+b")  # back past the first: the last
        assert composer.text == "hi @dave "
        await pilot.press("escape", "enter")
        await settle(pilot)
        assert chat.sent[-1] == ("lobby", "hi @dave ")
        await pilot.press("up")  # up is no longer the history
        assert composer.text == ""
        await pilot.press("ctrl+up")
        assert composer.text == "hi @dave "
        await pilot.press("ctrl+down")
        assert composer.text == ""


async def test_keys_are_remapped_from_the_config(chat: FakeChat) -> None:
    keymap = {"switch_room": "ctrl+k", "room_2": "f9", "send": "ctrl+s", "newline": "enter"}
    app = fixed_app(chat, preferences=Preferences(keymap=keymap))
    async with app.run_test(size=SIZE) as pilot:
        await started(app, chat)
        await pilot.press("f9")
        assert app.current == "team"
        await pilot.press("alt+2", "alt+1")  # alt+2 is no longer bound; alt+1 still is
        assert app.current == "lobby"
        await pilot.press(*"one", "enter", *"two", "ctrl+s")
        await settle(pilot)
        assert chat.sent[-1] == ("lobby", "one\ntwo")
        await pilot.press("ctrl+k")
        await until_screen(pilot, CommandPalette)
        await pilot.press("escape")
        app.composer.text = "/help"
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert "ctrl+k — find a room by a few letters" in app.tabs["lobby"].log.entries[-1].body


def _entry(text: str) -> Entry:
    return Entry(prefix=(), body=text, body_style=Style())


def test_links_are_found_without_their_punctuation() -> None:
    assert find_urls("\u201chttps://example.org/x.\u201d") == ["https://example.org/x"]
    text = "see https://example.org/a_(b), http://x.test/p?q=1. and ftp://no.pe"
    assert find_urls(text) == ["https://example.org/a_(b)", "http://x.test/p?q=1"]
    assert find_urls("https://evil.test/\\x1b[31m") == ["https://evil.test/"]
    found = links_in([_entry("https://a.test/1"), _entry("https://b.test/ and https://a.test/1")])
    assert [link.url for link in found] == ["https://a.test/1", "https://b.test/"]
    (lookalike,) = links_in([_entry("https://p\u0430ypal.com/login")])
    assert lookalike.about == "host xn--pypal-4ve.com"


async def test_a_link_opens_only_when_chosen(
    app: ChatApp, chat: FakeChat, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[str] = []
    monkeypatch.setattr("webbrowser.open", opened.append)
    async with app.run_test(size=SIZE) as pilot:
        await started(app, chat)
        chat.deliver("lobby", "bob", "[link=https://evil.test]x[/link] https://safe.test/[b]d")
        await settle(pilot)
        assert "[link=https://evil.test]x[/link]" in screen_text(app)  # shown as typed
        assert opened == []
        await pilot.press("ctrl+o")
        await until_screen(pilot, CommandPalette)
        for _ in range(100):
            await pilot.pause(0.01)
            if "host safe.test" in screen_text(app):
                break
        assert "https://safe.test/[b]d" in screen_text(app)  # the list shows no markup
        await pilot.press("down", "enter")
        for _ in range(200):
            if opened:
                break
            await pilot.pause(0.01)
        assert opened == ["https://safe.test/[b]d"]


async def test_mute_and_notification_modes(chat: FakeChat) -> None:
    app = fixed_app(chat, preferences=Preferences(notify_on="messages", muted=frozenset({"team"})))
    async with app.run_test(size=SIZE) as pilot:
        await started(app, chat)
        assert "team muted" in screen_text(app)
        chat.deliver("team", "bob", "@alice in a muted room")
        await settle(pilot)
        assert not app._notifications
        assert app.room_list.rows["team"].mentions == 1  # still counted
        await submit(pilot, "/mute")
        chat.deliver("lobby", "bob", "lobby is muted now")
        await settle(pilot)
        assert not app._notifications
        await submit(pilot, "/unmute")
        assert app.tabs["lobby"].log.entries[-1].body == "lobby notifies again"
        app.switch_to("team")
        await submit(pilot, "/unmute")
        chat.deliver("lobby", "bob", "no mention, another room")
        await settle(pilot)
        assert [n.title for n in app._notifications] == ["✔bob in lobby"]


async def test_mentions_only_by_default(app: ChatApp, chat: FakeChat) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await started(app, chat)
        chat.deliver("team", "bob", "no mention")
        await settle(pilot)
        assert not app._notifications


def test_desktop_notifications_pass_text_as_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("shutil.which", lambda name: f"/usr/bin/{name}")
    command = DesktopNotifier().command("bob in lobby", "<b>hi</b> & $(rm -rf ~)")
    assert command == [
        "/usr/bin/notify-send",
        "--app-name=e2echat",
        "--",
        "bob in lobby",
        "&lt;b&gt;hi&lt;/b&gt; &amp; $(rm -rf ~)",
    ]
    monkeypatch.setattr("shutil.which", lambda name: None)
    nothing = DesktopNotifier()
    assert nothing.command("t", "b") is None
    told = [asyncio.run(nothing.send("t", "b")) for _ in range(2)]
    assert told == ["Desktop notifications need notify-send or osascript on the PATH.", None]


def test_the_progress_board() -> None:
    shown: list[str] = []
    board = ProgressBoard(shown.append)
    sync = board.start("syncing #lobby")
    sync.advance(3000, 10_000)
    connecting = board.start("reconnecting")
    assert board.text == "syncing #lobby: 3,000 of 10,000 · reconnecting…"
    sync.finish()
    sync.finish()
    assert shown[-1] == "reconnecting…"
    connecting.finish()
    assert shown[-1] == ""


async def test_connecting_shows_in_the_status_line(app: ChatApp, chat: FakeChat) -> None:
    from e2echat import ConnectionState

    async with app.run_test(size=SIZE) as pilot:
        await started(app, chat)
        chat.change_connection(ConnectionState.RECONNECTING, "relay restarting")
        await settle(pilot)
        assert "reconnecting…" in screen_text(app).splitlines()[0]
        chat.change_connection(ConnectionState.CONNECTED)
        await settle(pilot)
        assert "reconnecting…" not in screen_text(app).splitlines()[0]


async def test_a_catch_up_shows_in_the_status_line_as_its_messages_are_shown(
    app: ChatApp, chat: FakeChat
) -> None:
    from e2echat import CatchingUp, ConnectionState

    def status_line() -> str:
        return screen_text(app).splitlines()[0]

    def arrives(room: str, seq: int) -> None:
        """A message of the catch-up, with its seq, reaches the app."""
        chat.publish(replace(chat.record(chat.directory[room], chat.member("bob"), "x"), seq=seq))

    async with app.run_test(size=(160, 30)) as pilot:
        await started(app, chat)
        lobby, team = chat.directory["lobby"], chat.directory["team"]
        chat.emit(CatchingUp(lobby, 0, 9_800, seq=10_000))  # type: ignore[arg-type]
        chat.emit(CatchingUp(team, 0, 40, seq=40))  # type: ignore[arg-type]
        chat.emit(CatchingUp(lobby, 5_000, 9_800, seq=10_000))  # type: ignore[arg-type]
        await settle(pilot)
        # counted by what is on screen, not by how far the library is
        assert "syncing #lobby: 0 of 9,800 · syncing #team: 0 of 40" in status_line()
        arrives("lobby", 3_200)
        await settle(pilot)
        assert "syncing #lobby: 3,000 of 9,800" in status_line()
        chat.emit(CatchingUp(team, 40, 40, seq=40))  # type: ignore[arg-type]
        await settle(pilot)
        assert "syncing #team" not in status_line()  # its end, after what it brought
        chat.change_connection(ConnectionState.RECONNECTING, "relay restarting")
        await settle(pilot)
        assert "syncing" not in status_line()  # it starts again at the next connect
        chat.change_connection(ConnectionState.CONNECTED)
        chat.emit(CatchingUp(lobby, 0, 6_800, seq=10_000))  # type: ignore[arg-type]
        await settle(pilot)
        assert "syncing #lobby: 0 of 6,800" in status_line()
        arrives("lobby", 10_000)  # the last one: shown whole, before the library says so
        await settle(pilot)
        assert "syncing" not in status_line()
        assert app.progress_text == ""
