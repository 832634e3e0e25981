"""Regressions found by driving the client in a real terminal (tmux) as a daily user would."""

import asyncio
import gc
import os
import signal
from dataclasses import replace

import pytest
from e2echat_tui.app import ChatApp
from e2echat_tui.commands import history_text
from e2echat_tui.composer import Composer
from e2echat_tui.dialogs import VerifyScreen
from e2echat_tui.header import Header
from e2echat_tui.launch import exit_on_hangup, freeze_when_loaded
from e2echat_tui.members import MembersPanel
from e2echat_tui.sidebar import RoomList
from e2echat_tui.timeline import Timeline
from textual.app import App, ComposeResult
from textual.widgets import Static

from e2echat import ConnectionState

from .conftest import SIZE, fixed_app
from .fake import FakeChat
from .screen import screen_text
from .test_app import commands_done, settle, started, submit, until_screen, with_stored

NARROW = (80, 24)


async def test_a_narrow_terminal_gives_the_timeline_the_room(app: ChatApp, chat: FakeChat) -> None:
    """At 80x24 the members panel gave way and the header wrapped onto two lines."""
    async with app.run_test(size=NARROW) as pilot:
        await started(app, chat)
        await pilot.pause()
        assert not app.query_one(MembersPanel).display
        assert app.query_one(Timeline).size.width >= 55
        assert app.query_one(Header).size.height == 1
        assert app.query_one(RoomList).size.width <= 18
        await pilot.resize_terminal(130, 30)
        await pilot.pause()
        assert app.query_one(MembersPanel).display
        assert "? unverified · lunch" in screen_text(app)


class HeaderOnly(App[None]):
    def compose(self) -> ComposeResult:
        header = Header("ws://127.0.0.1:44253/", "65da ad4e 38e4 d0a0 ddc7 5178 8381 588f")
        header.user, header.state = "guest", "connected"
        yield header


@pytest.mark.parametrize(
    ("width", "shown"),
    [
        (80, "e2echat  relay ws://127.0.0.1:44253/  ● connected  you: guest  65da ad4e 38e4…"),
        (60, "e2echat  ● connected  you: guest  65da ad4e 38e4 d0a0 …"),
    ],
)
async def test_a_narrow_header_says_it_is_cut_and_keeps_your_name(width: int, shown: str) -> None:
    """The status line used to be cropped by the widget: at 80 columns the fingerprint
    ended mid-way with no ``…``, and at 60 ``you:`` was followed by nothing at all."""
    app = HeaderOnly()
    async with app.run_test(size=(width, 3)) as pilot:
        await pilot.pause()
        assert screen_text(app).splitlines()[0].strip() == shown


async def test_a_command_typed_fast_runs_on_enter(app: ChatApp, chat: FakeChat) -> None:
    """A completion list that lagged behind the keys used to eat the Enter of ``/help``."""
    async with app.run_test(size=NARROW) as pilot:
        await started(app, chat)
        await pilot.press(*"/help", "enter")
        await commands_done(app)
        assert app.query_one(Composer).text == ""
        assert app.tabs["lobby"].log.entries[-1].body.startswith("Commands:")


async def test_the_members_panel_follows_the_roster_after_a_reconnect(
    app: ChatApp, chat: FakeChat
) -> None:
    """The library refreshes its cached roster on (re)connect; the panel must redraw."""
    async with app.run_test(size=(130, 30)) as pilot:
        await started(app, chat)
        lobby = chat.directory["lobby"]
        lobby.member_list = [
            replace(m, status="busy") if m.name == "dave" else m for m in lobby.member_list
        ]
        chat.change_connection(ConnectionState.CONNECTED)
        await settle(pilot)
        assert "⊘ ?dave" in screen_text(app)


async def test_nick_redraws_the_members_panel(app: ChatApp, chat: FakeChat) -> None:
    async with app.run_test(size=(130, 30)) as pilot:
        await started(app, chat)
        await submit(pilot, "/nick alicia")
        assert "● alicia" in screen_text(app)


def test_a_mistyped_join_does_not_keep_its_secret_in_history() -> None:
    assert history_text("/jion team hunter2") == "/jion team"
    assert history_text("/join team hunter2 extra") == "/join team"
    assert history_text("/create x --pasword") == "/create x"
    assert history_text("/frob") == "/frob"
    assert history_text("hello there") == "hello there"


async def test_a_started_app_never_remembers_a_mistyped_password(
    chat: FakeChat,
) -> None:
    app = fixed_app(chat)
    async with app.run_test(size=NARROW) as pilot:
        await started(app, chat)
        await submit(pilot, "/join team hunter2 oops")
        remembered = [line for tab in app.tabs.values() for line in tab.history.entries]
        assert "hunter2" not in " ".join(remembered)
        assert all("hunter2" not in entry.body for entry in app.tabs["lobby"].log.entries)


async def test_closing_the_terminal_ends_the_app_like_quit(app: ChatApp, chat: FakeChat) -> None:
    """SIGHUP (window closed) or SIGTERM killed the process outright: the connection and
    store were never closed and ``demo`` left its temporary identity behind."""
    async with app.run_test(size=NARROW) as pilot:
        await started(app, chat)
        with exit_on_hangup(app):
            os.kill(os.getpid(), signal.SIGHUP)
            for _ in range(50):
                if not app.is_running:
                    break
                await pilot.pause()
        assert not app.is_running
    loop = asyncio.get_running_loop()
    assert not loop.remove_signal_handler(signal.SIGHUP)  # handlers are put back


async def test_two_members_with_one_name_are_told_apart(app: ChatApp, chat: FakeChat) -> None:
    """Names are labels, not identities: a second "bob" must not pass for the first."""
    async with app.run_test(size=(130, 30)) as pilot:
        await started(app, chat)
        bob = next(m for m in chat.directory["lobby"].member_list if m.name == "bob")
        impostor = replace(chat.member("mallory"), name="bob")
        chat.arrive("lobby", impostor)
        chat.publish(chat.record(chat.directory["lobby"], impostor, "it's me, send the file"))
        await settle(pilot)
        real_tag, fake_tag = bob.fingerprint.split()[0], impostor.fingerprint.split()[0]
        bodies = [entry.body for entry in app.tabs["lobby"].log.entries]
        assert f"?bob#{fake_tag} joined" in bodies  # system lines tell them apart too
        chat.depart("lobby", "bob")  # the first bob: the real one
        await settle(pilot)
        assert app.tabs["lobby"].log.entries[-1].body == f"✔bob#{real_tag} left"
        chat.arrive("lobby", bob)
        await settle(pilot)
        text = screen_text(app)
        assert f"?bob#{fake_tag} it's me, send the file" in text
        assert f"● ✔bob#{real_tag}" in text
        assert f"● ?bob#{fake_tag}" in text
        await submit(pilot, "/members")
        assert f"  bob#{fake_tag} — online, ? unverified" in app.tabs["lobby"].log.entries[-1].body
        await submit(pilot, "/verify bob")
        assert f"/verify bob#{real_tag}" in app.tabs["lobby"].log.entries[-1].body
        app.query_one(Composer).text = f"/verify bob#{fake_tag}"
        await pilot.press("enter")
        screen = await until_screen(pilot, VerifyScreen)
        assert impostor.fingerprint in str(screen.query_one("#safety", Static).render())


async def test_members_lists_status_texts_as_the_plain_text_they_are(
    app: ChatApp, chat: FakeChat
) -> None:
    """/members shows each status text, escaped: a line feed in it cannot add a forged
    member line, markup and terminal escapes are shown as the characters they are."""
    forged = "[red]brb[/red]\n  mallory — online, ✔ verified\x1b[2J"
    chat._update(chat.member("carol").key, status_text=forged)
    async with app.run_test(size=SIZE) as pilot:
        await started(app, chat)
        await submit(pilot, "/members")
        lines = app.tabs["lobby"].log.entries[-1].body.splitlines()
        assert len(lines) == 5  # the heading and the four members: nothing forged
        assert lines[3] == (
            "  carol — away, ? unverified"
            " · [red]brb[/red]\\x0a  mallory — online, ✔ verified\\x1b[2J"
        )
        assert "[red]brb[/red]\\x0a" in screen_text(app)


async def test_a_flood_of_mentions_rings_once_not_fifty_times(chat: FakeChat) -> None:
    """Anyone in a room can mention you; fifty at once must not be fifty bells and toasts."""
    app = fixed_app(chat)
    rings: list[None] = []
    app.bell_on_mention = True
    app.bell = lambda: rings.append(None)  # type: ignore[method-assign]
    async with app.run_test(size=NARROW) as pilot:
        await started(app, chat)
        for n in range(50):
            chat.deliver("team", "bob", f"@alice ping {n}")
        await settle(pilot)
        assert (
            app.room_list.rows["team"].mentions == 50
        )  # every one still counts and is highlighted
        assert 1 <= len(rings) < 5
        assert 1 <= len(app._notifications) < 5


async def test_a_name_that_looks_tagged_cannot_pass_for_a_tagged_namesake(
    app: ChatApp, chat: FakeChat
) -> None:
    """With two bobs about, "bob#TAG" must only ever mean the bob with that key: a member
    who calls itself "bob#TAG" is shown, and addressed, with its own tag added."""
    async with app.run_test(size=(130, 30)) as pilot:
        await started(app, chat)
        lobby = chat.directory["lobby"]
        bob = next(m for m in lobby.member_list if m.name == "bob")
        real_tag = bob.fingerprint.split()[0]
        chat.arrive("lobby", replace(chat.member("mallory"), name="bob"))
        forger = replace(chat.member("trudy"), name=f"bob#{real_tag}")
        chat.arrive("lobby", forger)
        await settle(pilot)
        forged_tag = forger.fingerprint.split()[0]
        assert app.tabs["lobby"].log.entries[-1].body == f"?bob#{real_tag}#{forged_tag} joined"
        app.query_one(Composer).text = f"/verify bob#{real_tag}"
        await pilot.press("enter")
        screen = await until_screen(pilot, VerifyScreen)
        assert bob.fingerprint in str(screen.query_one("#safety", Static).render())
        await pilot.press("escape")
        await commands_done(app)
        whole = forger.fingerprint.replace(" ", "")[:8]  # a longer prefix also picks one
        app.query_one(Composer).text = f"/verify bob#{real_tag}#{whole}"
        await pilot.press("enter")
        screen = await until_screen(pilot, VerifyScreen)
        assert forger.fingerprint in str(screen.query_one("#safety", Static).render())


async def test_f2_shows_the_members_on_a_narrow_terminal(app: ChatApp, chat: FakeChat) -> None:
    async with app.run_test(size=NARROW) as pilot:
        await started(app, chat)
        panel = app.query_one(MembersPanel)
        assert not panel.display
        await pilot.press("f2")
        assert panel.display
        await pilot.resize_terminal(130, 30)
        await pilot.pause()
        assert not panel.display  # toggled: hidden on a wide terminal too
        await pilot.press("f2")
        assert panel.display


async def test_the_program_freezes_its_memory_once_the_history_is_loaded(
    chat: FakeChat, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full pass of the garbage collector over 10,000 loaded messages paused a typed
    key for about 90 ms: the program freezes what it holds once the history is in, and
    not before (what is frozen then would be walked again)."""
    with_stored(chat, 500)
    app = fixed_app(chat)
    frozen: list[bool] = []
    monkeypatch.setattr(gc, "freeze", lambda: frozen.append(app.backlog_loaded.is_set()))
    async with app.run_test(size=SIZE):
        freezing = asyncio.create_task(freeze_when_loaded(app))
        await app.backlog_loaded.wait()
        await asyncio.wait_for(freezing, 10)
    assert frozen == [True]
