"""Pilot tests of the app over the library double: every command and key."""

import asyncio
import itertools
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from e2echat_tui import commands as cmd
from e2echat_tui.app import ChatApp
from e2echat_tui.composer import CompletionMenu, Composer
from e2echat_tui.dialogs import PasswordScreen, ReadingScreen, VerifyScreen
from e2echat_tui.sidebar import RoomList
from e2echat_tui.timeline import Timeline
from textual import events
from textual.containers import Vertical, VerticalScroll
from textual.pilot import Pilot
from textual.screen import Screen
from textual.widgets import Static

from e2echat import (
    ClockSkewed,
    ConnectionState,
    MessageDeleted,
    Notice,
    RoomChanged,
    RoomJoined,
    RoomLeft,
    RoomLost,
    Undecryptable,
)

from .conftest import SIZE, fixed_app, populated_chat
from .fake import FakeChat, FakeRoom
from .screen import screen_text


async def commands_done(app: ChatApp) -> None:
    """Wait for the running commands (not for the endless event pump)."""
    running = [worker for worker in app.workers if worker.group == "commands"]
    if running:  # an empty list would mean "every worker" to wait_for_complete
        await app.workers.wait_for_complete(running)


async def submit(pilot: Pilot[None], line: str) -> None:
    """Type ``line`` into the composer, press enter, and let the command finish."""
    app = pilot.app
    app.query_one(Composer).text = line
    await pilot.press("enter")
    await commands_done(pilot.app)  # type: ignore[arg-type]
    await pilot.pause()


async def settle(pilot: Pilot[None]) -> None:
    """Let the app take and handle everything the double published (bounded, no sleeping):
    the pumps drain the subscriptions, then every widget works off its message queue."""
    chat: FakeChat = pilot.app.chat  # type: ignore[attr-defined]
    for _ in range(1_000):
        if not chat.pending():
            break
        await asyncio.sleep(0)
    assert not chat.pending(), "the app stopped taking messages and events"
    await pilot.pause()
    await commands_done(pilot.app)  # type: ignore[arg-type]
    await pilot.pause()


async def until_screen(pilot: Pilot[None], kind: type[Screen[Any]]) -> Screen[Any]:
    """Process messages until a screen of ``kind`` is on top (bounded, no sleeping)."""
    for _ in range(50):
        if isinstance(pilot.app.screen, kind):
            return pilot.app.screen
        await pilot.pause()
    raise AssertionError(f"{kind.__name__} never appeared")


def last_line(app: ChatApp, room: str | None = None) -> str:
    return app.tabs[room or app.current or ""].log.entries[-1].body


async def started(app: ChatApp, chat: FakeChat) -> None:
    await app.ready.wait()
    await chat.listening.wait()


async def test_startup_shows_rooms_history_members_and_identity(app: ChatApp) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await started(app, app.chat)  # type: ignore[arg-type]
        text = screen_text(app)
        assert app.current == "lobby"
        assert "ws://relay.example:8765" in text
        assert "● connected" in text
        assert " ".join(app.chat.fingerprint.split()[:4]) in text
        assert "# lobby" in text
        assert "🔒 team" in text
        assert "open room: anyone the relay admits can read" in text
        assert "09:31 ✔bob hi everyone" in text
        assert "✔ verified" in text
        assert "? unverified · lunch" in text
        assert "✗ no keys shared" in text
        assert app.focused is app.query_one(Composer)
        await pilot.press("f1")
        assert "Commands:" in last_line(app)


async def test_sending_text_shows_it_as_my_own_message(app: ChatApp, chat: FakeChat) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await started(app, chat)
        await submit(pilot, "hello @bob")
        await submit(pilot, "//not a command")
        assert chat.sent == [("lobby", "hello @bob"), ("lobby", "/not a command")]
        assert "alice hello @bob" in screen_text(app)


async def test_markup_and_escape_sequences_arrive_as_literal_text(
    app: ChatApp, chat: FakeChat
) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await started(app, chat)
        chat.arrive("lobby", chat.member("[b]mallory[/b]\x1b[2J"))
        chat.deliver("lobby", "bob", "[red]x[/red] and \x1b[31mred\x1b[0m")
        await settle(pilot)
        text = screen_text(app)
        assert "[red]x[/red] and \\x1b[31mred\\x1b[0m" in text
        assert "[b]mallory[/b]\\x1b[2J joined" in text
        log = app.tabs["lobby"].log
        assert "\x1b" not in "".join(e.body for e in log.entries)
        long = chat.deliver("lobby", "carol", "lorem ipsum " * 334)  # 4,008 characters
        await settle(pilot)
        width = app.timeline.scrollable_content_region.width
        lines = [log.line(y) for y in range(log.line_count)]
        assert all(line is not None and line.cell_length <= width for line in lines)
        assert log.line_count > len(long.text) // width
        assert "lorem ipsum" in screen_text(app)


async def test_a_mention_elsewhere_rings_toasts_and_marks_the_room(chat: FakeChat) -> None:
    app = fixed_app(chat)
    rings: list[None] = []
    app.bell_on_mention = True
    app.bell = lambda: rings.append(None)  # type: ignore[method-assign]
    async with app.run_test(size=SIZE) as pilot:
        await started(app, chat)
        chat.deliver("team", "bob", "plain")
        chat.deliver("team", "bob", "ping @alice")
        await settle(pilot)
        team = app.room_list.rows["team"]
        assert (team.unread, team.mentions) == (2, 1)
        assert "🔒 team 2 @1" in screen_text(app)
        assert len(rings) == 1
        assert [n.title for n in app._notifications] == ["✔bob in team"]
        await pilot.press("ctrl+n")
        assert app.current == "team"
        assert (team.unread, team.mentions) == (0, 0)
        await pilot.pause()
        assert "ping @alice" in screen_text(app)


async def test_mentions_can_be_silenced(chat: FakeChat) -> None:
    app = fixed_app(chat, toast=False)
    async with app.run_test(size=SIZE) as pilot:
        await started(app, chat)
        chat.deliver("lobby", "bob", "@alice quiet please")
        await settle(pilot)
        assert not app._notifications


async def test_room_keys_cycle_and_the_sidebar_selects(app: ChatApp, chat: FakeChat) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await started(app, chat)
        await pilot.press("alt+down")
        assert app.current == "team"
        await pilot.press("alt+down")
        assert app.current == "lobby"
        await pilot.press("alt+up")
        assert app.current == "team"
        await pilot.press("ctrl+n")  # nothing is unread: stay
        assert app.current == "team"
        await pilot.click(RoomList, offset=(3, 0))
        await pilot.pause()
        assert app.current == "lobby"
        await pilot.click(RoomList, offset=(3, 1))
        await pilot.pause()
        assert app.current == "team"
        assert app.focused is app.query_one(Composer)


async def test_create_open_and_invite_rooms(app: ChatApp, chat: FakeChat) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await started(app, chat)
        await submit(pilot, "/create den")
        assert app.current == "den"
        assert not chat.directory["den"].secret
        assert [e.body for e in app.tabs["den"].log.entries] == ["You created den, an open room"]
        await submit(pilot, "/invite")
        assert "'den' is not an invite room" in last_line(app)
        await submit(pilot, "/create vault --secret")
        assert app.current == "vault"
        assert chat.directory["vault"].secret
        assert [e.body for e in app.tabs["vault"].log.entries] == [
            "You created vault, a secret room: /invite prints the invite string to share"
        ]
        await submit(pilot, "/invite")
        invite = chat.directory["vault"].invite()
        assert last_line(app).endswith(invite)
        assert app.clipboard == invite
        assert "🔒 vault" in screen_text(app)


async def enter_passwords(pilot: Pilot[None], *passwords: str) -> None:
    """Type each of ``passwords`` into the hidden prompt that asks for it."""
    for password in passwords:
        prompt = await until_screen(pilot, PasswordScreen)
        await pilot.press(*password, "enter")
        for _ in range(50):  # the next prompt is a new screen
            if pilot.app.screen is not prompt:
                break
            await pilot.pause()
    await commands_done(pilot.app)  # type: ignore[arg-type]
    await pilot.pause()


async def test_create_with_a_password_asks_hidden_twice(app: ChatApp, chat: FakeChat) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await started(app, chat)
        app.query_one(Composer).text = "/create safe --password"
        await pilot.press("enter")
        await enter_passwords(pilot, "s3cret", "s3cret")
        assert chat.directory["safe"].password == "s3cret"
        assert app.current == "safe"
        assert [e.body for e in app.tabs["safe"].log.entries] == [
            "You created safe, a secret room: its password lets others join"
        ]
        assert "s3cret" not in screen_text(app)


async def test_create_with_two_different_passwords_is_refused(app: ChatApp, chat: FakeChat) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await started(app, chat)
        app.query_one(Composer).text = "/create safe --password"
        await pilot.press("enter")
        await enter_passwords(pilot, "s3cret", "s3cert")
        assert "safe" not in chat.directory
        assert app.current == "lobby"
        assert last_line(app) == "the two passwords differ: nothing changed"
        assert app.composer.text == "/create safe --password"  # the line comes back
        assert "s3c" not in screen_text(app)


async def test_password_asks_twice_and_two_different_entries_change_nothing(
    app: ChatApp, chat: FakeChat
) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await started(app, chat)
        chat.add_room("safe", password="old", joined=False)
        await submit(pilot, "/join safe old")
        assert app.current == "safe"
        app.query_one(Composer).text = "/password"
        await pilot.press("enter")
        await enter_passwords(pilot, "new one", "new on")
        assert chat.directory["safe"].password == "old"
        assert last_line(app) == "the two passwords differ: nothing changed"
        assert app.composer.text == "/password"
        app.composer.text = "/password"
        await pilot.press("enter")
        await enter_passwords(pilot, "new one", "new one")
        assert chat.directory["safe"].password == "new one"


async def test_relay_refusals_are_readable_notices(app: ChatApp, chat: FakeChat) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await started(app, chat)
        await submit(pilot, "/create lobby")
        assert last_line(app) == "the room name lobby is taken (name_taken)"
        await submit(pilot, "/frobnicate")
        assert last_line(app) == "unknown command /frobnicate; /help lists the commands"
        assert [n.severity for n in app._notifications] == ["error", "error"]
        assert "Traceback" not in screen_text(app)


async def test_join_by_name_password_prompt_and_invite(app: ChatApp, chat: FakeChat) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await started(app, chat)
        await submit(pilot, "/join nowhere")
        assert "no room called nowhere" in last_line(app)
        await submit(pilot, "/join elsewhere")
        assert app.current == "elsewhere"
        assert "You joined elsewhere" in last_line(app)
        locked = chat.add_room("locked", password="pw", joined=False)
        await submit(pilot, "/join locked wrong")
        assert "wrong password or invite for locked" in last_line(app)
        app.query_one(Composer).text = "/join locked --password"
        await pilot.press("enter")
        await until_screen(pilot, PasswordScreen)
        await pilot.press("escape")
        await commands_done(app)
        assert app.current == "elsewhere"
        await submit(pilot, "/join locked pw")
        assert app.current == "locked"
        assert locked in chat.joined
        hidden = chat.add_room("hidden", secret=True, joined=False)
        await submit(pilot, f"/join hidden {hidden.invite()}")
        assert app.current == "hidden"
        assert app.tabs["locked"].history.entries[-1] == "/join hidden"


async def test_join_by_name_alone_asks_a_password_rooms_password(
    app: ChatApp, chat: FakeChat
) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await started(app, chat)
        locked = chat.add_room("locked", password="pw", joined=False)
        chat.add_room("hidden", secret=True, joined=False)
        await submit(pilot, "/join hidden")
        assert "'hidden' opens with an invite only" in last_line(app)
        app.query_one(Composer).text = "/join locked"
        await pilot.press("enter")
        await until_screen(pilot, PasswordScreen)
        await pilot.press("escape")  # cancelled: nothing joined
        await commands_done(app)
        assert locked not in chat.joined
        assert app.current != "locked"
        app.query_one(Composer).text = "/join locked"
        await pilot.press("enter")
        await enter_passwords(pilot, "pw")
        await commands_done(app)
        assert app.current == "locked"
        assert locked in chat.joined
        assert "pw" not in screen_text(app)


async def test_leave(app: ChatApp, chat: FakeChat) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await started(app, chat)
        await submit(pilot, "/leave")
        assert app.current == "team"
        assert "lobby" not in app.tabs
        await submit(pilot, "/leave")
        assert app.current is None
        await submit(pilot, "/leave")
        assert any("you are in no room" in n.message for n in app._notifications)
        assert "No room: /join NAME" in screen_text(app)


async def test_status(app: ChatApp, chat: FakeChat) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await started(app, chat)
        await submit(pilot, "/status busy deep work")
        assert chat.statuses == [("busy", "deep work")]
        assert last_line(app) == "Your status is now busy: deep work"
        await submit(pilot, "/status asleep")
        assert "status is one of" in last_line(app)


async def test_verify_marks_a_member_verified(app: ChatApp, chat: FakeChat) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await started(app, chat)
        app.query_one(Composer).text = "/verify carol"
        await pilot.press("enter")
        screen = await until_screen(pilot, VerifyScreen)
        carol = chat.member("carol")
        number = chat.safety_number(carol).split()
        assert " ".join(number[:4]) in screen_text(app)
        await pilot.click("#confirm")
        await commands_done(app)
        assert chat.verified == ["carol"]
        assert last_line(app) == "✔carol is verified"
        assert screen is not app.screen
        await submit(pilot, "/verify nobody")
        assert last_line(app) == "no member named nobody in lobby"


async def test_the_verify_dialog_does_not_focus_the_granting_button(
    app: ChatApp, chat: FakeChat
) -> None:
    """One stray Enter must not grant trust: focus starts on Close."""
    async with app.run_test(size=SIZE) as pilot:
        await started(app, chat)
        app.query_one(Composer).text = "/verify carol"
        await pilot.press("enter")
        screen = await until_screen(pilot, VerifyScreen)
        first_groups = " ".join(chat.member("carol").fingerprint.split()[:8])
        assert first_groups in screen_text(app)
        assert screen.focused is not None
        assert screen.focused.id == "close"
        await pilot.press("enter")
        await commands_done(app)
        assert chat.verified == []


def entry_lines(app: ChatApp, room: str, body: str) -> list[str]:
    """The body and the line under it (its footer) of the newest entry showing ``body``."""
    entry = next(e for e in reversed(app.tabs[room].log.entries) if e.body == body)
    return [entry.body, "".join(segment.text for segment in entry.footer)]


async def test_the_header_names_the_node_in_use_after_a_failover(
    app: ChatApp, chat: FakeChat
) -> None:
    """With several nodes of one relay, the header follows the one the library moved to,
    not the one that died."""
    async with app.run_test(size=SIZE) as pilot:
        await started(app, chat)
        assert "ws://relay.example:8765" in screen_text(app)
        chat.change_connection(ConnectionState.RECONNECTING, "connection lost")
        chat.url = "ws://node-two.example:8765"
        chat.change_connection(ConnectionState.CONNECTED)
        await settle(pilot)
        assert "ws://node-two.example:8765" in screen_text(app)
        assert "ws://relay.example:8765" not in screen_text(app)


async def test_a_message_sent_offline_shows_pending_until_the_relay_confirms_it(
    app: ChatApp, chat: FakeChat
) -> None:
    """Offline, ``send`` returns the message with seq 0 from the outbox: it says
    "sending…" under it (not colour alone) until its ``MessageSent``, then looks like
    any sent message; one the library gives up on says "not sent" and why."""
    async with app.run_test(size=SIZE) as pilot:
        await started(app, chat)
        chat.change_connection(ConnectionState.RECONNECTING, "connection lost")
        await settle(pilot)
        await submit(pilot, "written on the train")
        await submit(pilot, "and this one is refused")
        assert entry_lines(app, "lobby", "written on the train") == [
            "written on the train",
            "◷ sending…",
        ]
        assert "◷ sending…" in screen_text(app)
        refused = chat.outbox[1]
        chat.give_up(refused, "Not a [b]member[/b]\x1b[31m.")
        chat.change_connection(ConnectionState.CONNECTED)
        (sent,) = chat.flush_outbox()
        await settle(pilot)
        entries = [e for e in app.tabs["lobby"].log.entries if e.body == "written on the train"]
        assert len(entries) == 1  # the pending entry became the sent one, in place
        assert entries[0].message == sent
        assert entry_lines(app, "lobby", "written on the train")[1] == ""
        assert entry_lines(app, "lobby", "and this one is refused")[1] == (
            "✗ not sent: Not a [b]member[/b]\\x1b[31m."
        )
        assert "◷ sending…" not in screen_text(app)
        assert any("could not be sent" in n.message for n in app._notifications)
        await submit(pilot, "online again")  # confirmed at once: never pending
        assert entry_lines(app, "lobby", "online again") == ["online again", ""]


async def test_messages_queued_before_a_restart_show_pending_from_the_start(
    app: ChatApp, chat: FakeChat
) -> None:
    """Still in the outbox when the app last closed: shown as sending at once (before,
    they appeared only when the relay stored them), then in place once it did."""
    lobby = next(room for room in chat.joined if room.name == "lobby")
    chat.state = ConnectionState.RECONNECTING
    await lobby.send("typed before the restart")
    chat.state = ConnectionState.CONNECTED
    async with app.run_test(size=SIZE) as pilot:
        await started(app, chat)
        assert entry_lines(app, "lobby", "typed before the restart") == [
            "typed before the restart",
            "◷ sending…",
        ]
        (sent,) = chat.flush_outbox()
        await settle(pilot)
        log = app.tabs["lobby"].log
        entries = [e for e in log.entries if e.body == "typed before the restart"]
        assert [entry.message for entry in entries] == [sent]


async def test_members_rooms_help_and_nick(app: ChatApp, chat: FakeChat) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await started(app, chat)
        await submit(pilot, "/members")
        assert last_line(app).splitlines() == [
            "4 members of lobby:",
            "  alice — online, you",
            "  bob — online, ✔ verified",
            "  carol — away, ? unverified · lunch",
            "  dave — offline, ✗ no keys shared",
        ]
        await submit(pilot, "/rooms")
        assert last_line(app).splitlines() == [
            "3 listed rooms on the relay:",
            "  lobby (open, 4 members) — Say hello",
            "  team (secret, 2 members)",
            "  elsewhere (open, 0 members) — not joined yet",
        ]
        await submit(pilot, "/help")
        assert "/verify NAME" in last_line(app)
        assert "ctrl+n" in last_line(app)
        await submit(pilot, "/help status")
        assert last_line(app) == "/status online|away|busy [TEXT] — Set your presence."
        await submit(pilot, "/nick alicia")
        assert "you: alicia" in screen_text(app)
        assert last_line(app) == "You are now alicia"
        await submit(pilot, "/nick " + "x" * 40)
        assert "1 to 32" in last_line(app)


async def test_one_is_counted_in_the_singular(app: ChatApp, chat: FakeChat) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await started(app, chat)
        app.switch_to("team")
        await submit(pilot, "/members")
        assert last_line(app).splitlines()[0] == "2 members of team:"
        chat.directory["team"].member_list.pop()
        await submit(pilot, "/members")
        assert last_line(app).splitlines()[0] == "1 member of team:"
        await submit(pilot, "/rooms")
        assert "team (secret, 1 member)" in last_line(app)


async def test_me_names_topic_and_clear(app: ChatApp, chat: FakeChat) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await started(app, chat)
        await submit(pilot, "/me waves [b]hi[/b]")
        assert chat.sent[-1] == ("lobby", "/me waves [b]hi[/b]")
        chat.deliver("lobby", "bob", "/me waves back")
        await settle(pilot)
        text = screen_text(app)
        assert "* alice waves [b]hi[/b]" in text
        assert "* ✔bob waves back" in text
        await submit(pilot, "/names")
        assert last_line(app) == "4 members in lobby: alice, ✔bob, ?carol, ?dave"
        await submit(pilot, "/topic")
        assert last_line(app) == "Topic of lobby: Say hello"
        await submit(pilot, "/clear")
        assert app.tabs["lobby"].log.entries == []
        assert "waves back" not in screen_text(app)
        assert "hi everyone" not in screen_text(app)
        chat.deliver("lobby", "bob", "after the clear")
        await settle(pilot)
        assert "after the clear" in screen_text(app)


async def test_topic_sets_the_description_and_a_refusal_keeps_the_draft(
    app: ChatApp, chat: FakeChat
) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await started(app, chat)
        await submit(pilot, "/topic Plans for [b]Friday[/b]")
        assert chat.directory["lobby"].description == "Plans for [b]Friday[/b]"
        assert last_line(app) == "You set the topic of lobby: Plans for [b]Friday[/b]"
        assert "· Plans for [b]Friday[/b]" in screen_text(app)
        await submit(pilot, "/topic")
        assert last_line(app) == "Topic of lobby: Plans for [b]Friday[/b]"
        await submit(pilot, "/topic " + "é" * 300)
        assert last_line(app) == "A room description has at most 200 characters; this one has 300."
        assert app.composer.text == "/topic " + "é" * 300  # the draft comes back
        app.composer.text = ""
        chat.directory["lobby"].my_role = "member"
        await submit(pilot, "/topic mine now")
        assert last_line(app).startswith("You are not allowed to do that")
        assert chat.directory["lobby"].description == "Plans for [b]Friday[/b]"
        assert app.composer.text == "/topic mine now"


async def test_topic_shows_a_description_on_one_line_with_its_controls_escaped(
    app: ChatApp, chat: FakeChat
) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await started(app, chat)
        chat.directory["lobby"].description = "a\nb [b]c[/b]\x1b[31m\u202ez"
        await submit(pilot, "/topic")
        shown = r"Topic of lobby: a\x0ab [b]c[/b]\x1b[31m\u202ez"
        assert last_line(app) == shown
        assert any(shown in line for line in screen_text(app).splitlines())  # not wrapped
        await submit(pilot, "/rooms")
        assert r"lobby (open, 4 members) — a\x0ab [b]c[/b]" in last_line(app).splitlines()[1]
        await submit(pilot, "/topic two\nlines")  # refused, as at creation: not printable
        assert chat.directory["lobby"].description == "a\nb [b]c[/b]\x1b[31m\u202ez"
        assert "non-printable character U+000A" in last_line(app)


async def test_a_description_changed_by_someone_else_shows_in_the_topic_line(
    app: ChatApp, chat: FakeChat
) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await started(app, chat)
        lobby = chat.directory["lobby"]
        lobby.description = "Release on Friday"
        bob = lobby.member_list[1]
        chat.emit(RoomChanged(lobby, "describe", bob, None, None, 0, lobby.description, 3, 0))  # type: ignore[arg-type]
        await settle(pilot)
        assert "Release on Friday" in screen_text(app)


async def test_a_screenshot_makes_its_missing_folder(chat: FakeChat, tmp_path: Path) -> None:
    folder = tmp_path / "no" / "Downloads"
    app = fixed_app(chat)
    app.downloads = folder
    async with app.run_test(size=SIZE) as pilot:
        await started(app, chat)
        app.action_screenshot("shot.svg")
        shot = folder / "shot.svg"
        for _ in range(1000):  # a writer thread creates the file, then fills it
            if shot.exists() and shot.read_text().rstrip().endswith("</svg>"):
                break
            await pilot.pause(0.01)
        assert shot.read_text().startswith("<svg")


async def test_quit(app: ChatApp, chat: FakeChat) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await started(app, chat)
        await submit(pilot, "/quit")
        assert app._exit_renderables == []
        assert not app.is_running


async def test_events_become_system_lines(app: ChatApp, chat: FakeChat) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await started(app, chat)
        chat.arrive("lobby", chat.member("erin"))
        await settle(pilot)
        assert last_line(app) == "?erin joined"
        chat.depart("lobby", "erin")
        await settle(pilot)
        assert last_line(app) == "?erin left"
        chat.arrive("team", chat.member("frank", validated=False))
        chat.validate("team", "frank")
        await settle(pilot)
        assert last_line(app, "team") == "?frank proved the room secret: keys shared"
        chat.change_presence("dave", "online")
        chat.emit(Undecryptable(chat.directory["lobby"], None, 7, "no key yet"))  # type: ignore[arg-type]
        await settle(pilot)
        assert last_line(app) == "Could not decrypt message #7 from an unknown sender: no key yet"
        chat.emit(Undecryptable(chat.directory["lobby"], None, 8, "no key yet", waiting=True))  # type: ignore[arg-type]
        await settle(pilot)
        assert last_line(app).endswith("no key yet (it is kept, and shown when its key arrives)")
        chat.change_connection(ConnectionState.RECONNECTING, "connection lost")
        await settle(pilot)
        assert last_line(app) == "Connection reconnecting: connection lost"
        chat.change_connection(ConnectionState.CONNECTED)
        await settle(pilot)
        assert last_line(app) == "Connected again"
        chat.change_connection(ConnectionState.RECONNECTING)
        chat.emit(Notice("relay going down for maintenance"))
        await settle(pilot)
        assert last_line(app) == "relay going down for maintenance"
        chat.emit(ClockSkewed(-8 * 24 * 3600 * 1000))
        await settle(pilot)
        assert last_line(app).startswith("This computer's clock is 8 days behind the relay's")
        text = screen_text(app)
        assert "● reconnecting" in text
        assert "● ?dave" in text
        chat.emit(RoomLeft(chat.directory["team"]))  # type: ignore[arg-type]
        chat.emit(RoomJoined(chat.directory["elsewhere"]))  # type: ignore[arg-type]
        await settle(pilot)
        assert list(app.tabs) == ["lobby", "elsewhere"]
        assert list(app.room_list.rows) == ["lobby", "elsewhere"]
        chat.emit(RoomLost(chat.directory["elsewhere"]))  # type: ignore[arg-type]
        await settle(pilot)
        assert list(app.tabs) == ["lobby"]
        assert last_line(app).startswith("The relay no longer lists you in elsewhere")


async def test_composer_history_skips_secrets(app: ChatApp, chat: FakeChat) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await started(app, chat)
        composer = app.query_one(Composer)
        await submit(pilot, "first")
        await submit(pilot, "/join nowhere hunter2")
        assert composer.text == "/join nowhere"  # the failed line is back, its secret not
        composer.text = "draft"
        await pilot.press("up")
        assert composer.text == "/join nowhere"
        await pilot.press("up", "up")
        assert composer.text == "first"
        await pilot.press("down", "down")
        assert composer.text == "draft"


async def test_history_and_drafts_are_per_room(app: ChatApp, chat: FakeChat) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await started(app, chat)
        composer = app.query_one(Composer)
        await submit(pilot, "said in the lobby")
        await pilot.press(*"half a thought")
        await pilot.press("alt+down")
        assert (app.current, composer.text) == ("team", "")
        await pilot.press("up")
        assert composer.text == ""  # team has no history yet
        await pilot.press(*"for the team")
        await pilot.press("alt+up")
        assert (app.current, composer.text) == ("lobby", "half a thought")
        composer.text = ""
        await pilot.press("up")
        assert composer.text == "said in the lobby"
        await pilot.press("alt+down")
        assert composer.text == "for the team"


async def test_a_draft_survives_errors_and_having_no_room(app: ChatApp, chat: FakeChat) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await started(app, chat)
        composer = app.query_one(Composer)
        await submit(pilot, "/create lobby")
        assert last_line(app) == "the room name lobby is taken (name_taken)"
        assert composer.text == "/create lobby"
        await submit(pilot, "/frobnicate now")
        assert composer.text == "/frobnicate now"
        await submit(pilot, "/leave")
        await submit(pilot, "/leave")
        assert app.current is None
        await submit(pilot, "hello, anyone?")
        assert composer.text == "hello, anyone?"
        assert chat.sent == []
        assert any("you are in no room" in n.message for n in app._notifications)


def roomless_chat() -> FakeChat:
    """alice with no room yet; ``lobby`` exists on the relay."""
    chat = FakeChat("alice")
    chat.add_room("lobby", joined=False, members=[chat.member("bob")])
    return chat


async def test_with_no_room_a_reply_toasts_with_its_lines_and_an_error_once() -> None:
    """Before the first room there is no timeline: a reply of several lines is a toast
    with its line breaks (not ``\\x0a``), and an error is one error toast."""
    app = fixed_app(roomless_chat())
    async with app.run_test(size=SIZE) as pilot:
        await started(app, app.chat)  # type: ignore[arg-type]
        await submit(pilot, "/rooms")
        (listed,) = app._notifications
        assert listed.message.splitlines() == [
            "1 listed room on the relay:",
            "  lobby (open, 1 member)",
        ]
        app.clear_notifications()
        await submit(pilot, "/frobnicate")
        (error,) = app._notifications
        assert error.severity == "error"
        assert "frobnicate" in error.message


async def test_with_no_room_help_opens_in_a_dialog_that_scrolls() -> None:
    """A toast of sixty lines is cut off and gone in seconds: with no timeline to hold
    it, /help is a dialog whose text scrolls with the page keys (not the timeline behind
    it) and whose Close button stays on an 80x24 screen."""
    app = fixed_app(roomless_chat())
    async with app.run_test(size=(80, 24)) as pilot:
        await started(app, app.chat)  # type: ignore[arg-type]
        await submit(pilot, "/help")
        screen = await until_screen(pilot, ReadingScreen)
        help_text = str(screen.query_one("#reading", Static).render())
        assert help_text.startswith("Commands:\n  /create NAME")
        assert "\nKeys:\n" in help_text
        dialog = screen.query_one(Vertical).content_region
        assert dialog.contains_region(screen.query_one("#close").region)
        text = screen.query_one(VerticalScroll)
        await pilot.press("pagedown")
        await pilot.pause()
        assert text.scroll_y > 0
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, ReadingScreen)


async def test_a_draft_typed_while_the_first_join_runs_survives_it() -> None:
    chat = roomless_chat()
    app = fixed_app(chat)
    gate = asyncio.Event()
    join = chat.join

    async def slow_join(name: str, password: str | None = None, invite: str | None = None) -> Any:
        await gate.wait()
        return await join(name, password, invite)

    chat.join = slow_join  # type: ignore[method-assign]
    async with app.run_test(size=SIZE) as pilot:
        await started(app, chat)
        composer = app.query_one(Composer)
        composer.text = "/join lobby"
        await pilot.press("enter")
        await pilot.press(*"hello bob")
        await pilot.press("enter")  # no room yet: nothing is sent, the draft stays
        assert composer.text == "hello bob"
        assert any("you are in no room" in n.message for n in app._notifications)
        gate.set()
        await commands_done(app)
        await pilot.pause()
        assert app.current == "lobby"
        assert composer.text == "hello bob"
        assert chat.sent == []
        await pilot.press("enter")
        await commands_done(app)
        assert chat.sent == [("lobby", "hello bob")]


async def test_a_draft_written_in_no_room_stays_when_a_room_arrives() -> None:
    chat = roomless_chat()
    app = fixed_app(chat)
    async with app.run_test(size=SIZE) as pilot:
        await started(app, chat)
        composer = app.query_one(Composer)
        await pilot.press(*"hi all")
        assert app.current is None
        lobby = await chat.join("lobby")  # joined elsewhere: the library tells the app
        chat.emit(RoomJoined(lobby))  # type: ignore[arg-type]
        await settle(pilot)
        assert app.current == "lobby"  # the first room to arrive is shown
        assert composer.text == "hi all"
        assert composer.cursor_location == (0, len("hi all"))
        assert chat.sent == []


async def test_multi_line_messages_and_pastes(app: ChatApp, chat: FakeChat) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await started(app, chat)
        composer = app.query_one(Composer)
        await pilot.press("o", "n", "e", "alt+enter", "t", "w", "o", "shift+enter", "3")
        await pilot.press("ctrl+j", "4", "enter")
        await commands_done(app)
        assert chat.sent == [("lobby", "one\ntwo\n3\n4")]
        composer.post_message(events.Paste("first line\r\nsecond\tline\nthird"))
        await pilot.pause()
        assert composer.text == "first line\nsecond  line\nthird"
        assert "paste" not in last_line(app)
        await pilot.press("enter")
        await commands_done(app)
        assert chat.sent[-1] == ("lobby", "first line\nsecond  line\nthird")
        composer.post_message(events.Paste("ls\x1b[2J\x1b]0;owned\x07 \u202etxt"))
        await pilot.pause()
        assert composer.text == "ls\\x1b[2J\\x1b]0;owned\\x07 \\u202etxt"
        assert "The paste held 4 control character(s)" in last_line(app)
        await pilot.press("enter")
        await settle(pilot)
        assert "\x1b" not in chat.sent[-1][1]
        assert "ls\\x1b[2J" in screen_text(app)


async def test_tab_completes_names_cycling_and_never_moves_focus(
    app: ChatApp, chat: FakeChat
) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await started(app, chat)
        composer = app.query_one(Composer)
        menu = app.query_one(CompletionMenu)
        await pilot.press(*"hey @ca", "tab")
        assert composer.text == "hey @carol "
        assert not menu.display  # one candidate: no list
        await pilot.press(*"and c", "tab")
        assert composer.text == "hey @carol and @carol "
        composer.text = ""
        await pilot.press("@", "tab")
        assert composer.text == "@bob "
        assert menu.display
        await pilot.press("tab")
        assert composer.text == "@carol "
        await pilot.press("tab", "tab")
        assert composer.text == "@bob "  # bob, carol, dave, and round again
        await pilot.press("shift+tab")
        assert composer.text == "@dave "
        await pilot.press(*"hi")
        assert composer.text == "@dave hi"
        assert not menu.display
        assert app.focused is composer
        composer.text = "nobody"
        await pilot.press("end", "tab")
        assert composer.text == "nobody"
        assert app.focused is composer


async def test_tab_completes_namesakes_by_key(app: ChatApp, chat: FakeChat) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await started(app, chat)
        bob = next(m for m in chat.directory["lobby"].member_list if m.name == "bob")
        other = replace(chat.member("mallory"), name="bob")
        chat.arrive("lobby", other)
        await settle(pilot)
        composer = app.query_one(Composer)
        await pilot.press(*"@bo", "tab")
        tags = {bob.fingerprint.split()[0], other.fingerprint.split()[0]}
        first = composer.text
        await pilot.press("tab")
        second = composer.text
        assert {first, second} == {f"@bob#{tag} " for tag in tags}
        await pilot.press("escape")
        assert not app.query_one(CompletionMenu).display
        composer.text = "/verify b"
        await pilot.press("end", "tab")
        assert composer.text.startswith("/verify bob#")


async def test_tab_completes_commands_and_rooms(app: ChatApp, chat: FakeChat) -> None:
    async with app.run_test(size=(80, 24)) as pilot:
        await started(app, chat)
        await commands_done(app)
        composer = app.query_one(Composer)
        menu = app.query_one(CompletionMenu)
        await pilot.press(*"/ver", "tab")
        assert composer.text == "/verify "
        composer.text = ""
        await pilot.press("/", "tab")
        await pilot.pause()
        assert menu.display
        assert menu.option_count == len(cmd.COMMANDS)
        screen = app.screen.region
        assert screen.contains_region(menu.region)
        assert menu.size.height == min(len(cmd.COMMANDS), 15)  # as many as fit at 80x24
        await pilot.press("up")  # to the last command: scrolled into view
        assert menu.highlighted == len(cmd.COMMANDS) - 1
        top = round(menu.scroll_offset.y)
        assert top <= menu.highlighted < top + menu.size.height
        await pilot.press("down")
        await pilot.press("enter")  # accepts the shown candidate, sends nothing
        assert composer.text == "/create "
        assert not menu.display
        composer.text = "/join el"
        await pilot.press("end", "tab")
        assert composer.text == "/join elsewhere "
        composer.text = "/join  el"  # two spaces (a "/jo" Tab leaves one, then one typed)
        await pilot.press("end", "tab")
        assert composer.text == "/join  elsewhere "
        composer.text = "see #te"
        await pilot.press("end", "tab")
        assert composer.text == "see #team "


def with_stored(chat: FakeChat, count: int) -> FakeRoom:
    """The lobby, holding ``count`` messages from bob (``message 0`` first)."""
    lobby = chat.directory["lobby"]
    for number in range(count):
        chat.record(lobby, lobby.member_list[1], f"message {number}")
    return lobby


async def test_ten_thousand_messages_of_scrollback(chat: FakeChat) -> None:
    with_stored(chat, 10_000)
    app = fixed_app(chat)
    async with app.run_test(size=SIZE) as pilot:
        await started(app, chat)
        await app.backlog_loaded.wait()
        await pilot.pause()
        assert len(app.tabs["lobby"].log.entries) == 10_000
        assert app.tabs["lobby"].log.entries[0].body == "message 0"  # the 4 oldest: over the limit
        timeline = app.timeline
        assert timeline.max_scroll_y > 9_000
        assert timeline.scroll_offset.y == timeline.max_scroll_y
        assert "message 9999" in screen_text(app)
        await pilot.press("pageup")
        assert timeline.scroll_offset.y < timeline.max_scroll_y
        chat.deliver("lobby", "bob", "new while reading history")
        await settle(pilot)
        assert timeline.scroll_offset.y < timeline.max_scroll_y  # did not jump
        timeline.scroll_home(animate=False, immediate=True)
        await pilot.pause()
        assert "bob message 0 " in screen_text(app)


async def test_new_lines_in_a_long_room_need_no_layout_of_the_screen(
    chat: FakeChat, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A room that already scrolls grows without asking Textual for a layout: a layout
    redraws every widget, and a busy room asked for one every frame."""
    with_stored(chat, 100)
    app = fixed_app(chat)
    async with app.run_test(size=SIZE) as pilot:
        await started(app, chat)
        await pilot.pause()
        timeline = app.timeline
        assert timeline.show_vertical_scrollbar
        layouts: list[bool] = []
        refresh = Timeline.refresh

        def spy(self: Timeline, *regions: Any, layout: bool = False, **kwargs: Any) -> Any:
            layouts.append(layout)
            return refresh(self, *regions, layout=layout, **kwargs)

        monkeypatch.setattr(Timeline, "refresh", spy)
        for number in range(20):
            chat.deliver("lobby", "bob", f"new {number}")
        await settle(pilot)
        assert layouts
        assert not any(layouts)
        lines = app.tabs["lobby"].log.line_count
        assert timeline.virtual_size.height == lines
        assert timeline.vertical_scrollbar.window_virtual_size == lines
        assert timeline.scroll_offset.y == timeline.max_scroll_y  # it follows the newest
        assert "bob new 19" in screen_text(app)


async def test_a_long_room_that_gets_shorter_keeps_the_reader_within_it(
    chat: FakeChat,
) -> None:
    """A message deleted at the bottom takes lines away: the view stays on the last line,
    not below the end."""
    lobby = with_stored(chat, 100)
    app = fixed_app(chat)
    async with app.run_test(size=SIZE) as pilot:
        await started(app, chat)
        long = chat.deliver("lobby", "bob", " ".join(["a long message that wraps"] * 40))
        await settle(pilot)
        timeline = app.timeline
        before = timeline.virtual_size.height
        assert timeline.scroll_offset.y == timeline.max_scroll_y
        chat.emit(MessageDeleted(lobby, long.id, long.seq))  # type: ignore[arg-type]
        await settle(pilot)
        assert timeline.virtual_size.height < before
        assert timeline.virtual_size.height == app.tabs["lobby"].log.line_count
        assert timeline.scroll_offset.y == timeline.max_scroll_y
        assert "message deleted" in screen_text(app)


async def test_older_history_arrives_above_without_moving_the_reader(
    chat: FakeChat,
) -> None:
    with_stored(chat, 500)
    app = fixed_app(chat)
    async with app.run_test(size=SIZE) as pilot:
        await app.ready.wait()
        timeline = app.timeline
        await pilot.pause()
        timeline.scroll_to(y=timeline.max_scroll_y - 50, animate=False, immediate=True)
        await pilot.pause()
        shown = screen_text(app).splitlines()[10]
        await app.backlog_loaded.wait()
        await pilot.pause()
        assert len(app.tabs["lobby"].log.entries) == 504
        assert screen_text(app).splitlines()[10] == shown


def test_populated_chat_is_deterministic() -> None:
    one, two = populated_chat(), populated_chat()
    assert one.fingerprint == two.fingerprint
    assert [m.sent_at for m in one.directory["lobby"].stored] == [
        m.sent_at for m in two.directory["lobby"].stored
    ]


async def test_a_long_room_is_at_its_end_when_the_app_is_ready(chat: FakeChat) -> None:
    """The first frame shows the newest messages: the timeline scrolls to its end as it
    is shown, not one frame later (which drew the top of the first page first)."""
    with_stored(chat, 300)
    app = fixed_app(chat)
    async with app.run_test(size=SIZE):
        await app.ready.wait()
        timeline = app.timeline
        assert timeline.max_scroll_y > 0
        assert timeline.scroll_offset.y == timeline.max_scroll_y


async def test_older_history_loads_with_a_frame_between_its_chunks(
    chat: FakeChat, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The screen paints between chunks of older history, so what is typed meanwhile is
    drawn (the chunks once ran back to back, with no frame until the last)."""
    with_stored(chat, 500)
    monkeypatch.setattr(ChatApp, "BACKLOG_CHUNK", 50)
    drawn = 0
    render_line = Timeline.render_line

    def counting(self: Timeline, y: int) -> Any:
        nonlocal drawn
        drawn += 1
        return render_line(self, y)

    monkeypatch.setattr(Timeline, "render_line", counting)
    drawn_at: list[int] = []
    prepended = Timeline.prepended

    def spy(self: Timeline, log: Any) -> None:
        drawn_at.append(drawn)
        prepended(self, log)

    monkeypatch.setattr(Timeline, "prepended", spy)
    app = fixed_app(chat)
    async with app.run_test(size=SIZE):
        await app.backlog_loaded.wait()
    assert len(drawn_at) == 7  # 304 older than the first page of 200 (4 are the double's)
    assert all(before < after for before, after in itertools.pairwise(drawn_at))


async def test_lines_typed_fast_are_each_sent_whole(app: ChatApp, chat: FakeChat) -> None:
    """A terminal hands over keys as fast as they are typed (or pasted by a tool), so
    the next line can be in the composer before the app has taken the last one: that
    must not wipe it. The keys go in as the driver posts them, all at once."""
    async with app.run_test(size=SIZE) as pilot:
        await started(app, chat)
        for line in ("first", "second", "third"):
            for char in line:
                app.post_message(events.Key(char, char))
            app.post_message(events.Key("enter", None))
        await settle(pilot)
        await commands_done(app)
        assert chat.sent[-3:] == [("lobby", "first"), ("lobby", "second"), ("lobby", "third")]
        assert app.query_one(Composer).text == ""
