"""Pilot tests of the app against the in-package fake backend: every command and key."""

from typing import Any

from e2echat_tui.app import ChatApp
from e2echat_tui.composer import Composer
from e2echat_tui.dialogs import PasswordScreen, VerifyScreen
from e2echat_tui.fake import FakeBackend
from e2echat_tui.sidebar import RoomList
from textual.pilot import Pilot
from textual.screen import Screen

from .conftest import SIZE, fixed_app, populated_backend
from .screen import screen_text


async def commands_done(app: ChatApp) -> None:
    """Wait for the running commands (not for the endless event pump)."""
    running = [worker for worker in app.workers if worker.group == "commands"]
    if running:  # an empty list would mean "every worker" to wait_for_complete
        await app.workers.wait_for_complete(running)


async def submit(pilot: Pilot[None], line: str) -> None:
    """Type ``line`` into the composer, press enter, and let the command finish."""
    app = pilot.app
    app.query_one(Composer).value = line
    await pilot.press("enter")
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
    return app.logs[room or app.current or ""].entries[-1].body


async def started(app: ChatApp, backend: FakeBackend) -> None:
    await app.ready.wait()
    await backend.listening.wait()


async def test_startup_shows_rooms_history_members_and_identity(app: ChatApp) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await started(app, app.backend)  # type: ignore[arg-type]
        text = screen_text(app)
        assert app.current == "lobby"
        assert "ws://relay.example:8765" in text
        assert "● connected" in text
        assert app.backend.fingerprint in text
        assert "# lobby" in text
        assert "🔒 team" in text
        assert "open room: anyone the relay admits can read" in text
        assert "09:31 bob hi everyone" in text
        assert "✔ verified" in text
        assert "? unverified · lunch" in text
        assert "✗ no keys shared" in text
        assert app.focused is app.query_one(Composer)
        await pilot.press("f1")
        assert "Commands:" in last_line(app)


async def test_sending_text_shows_it_as_my_own_message(app: ChatApp, backend: FakeBackend) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await started(app, backend)
        await submit(pilot, "hello @bob")
        await submit(pilot, "//not a command")
        assert backend.sent == [("lobby", "hello @bob"), ("lobby", "/not a command")]
        assert "alice hello @bob" in screen_text(app)


async def test_markup_and_escape_sequences_arrive_as_literal_text(
    app: ChatApp, backend: FakeBackend
) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await started(app, backend)
        backend.arrive("lobby", backend.member("[b]mallory[/b]\x1b[2J"))
        backend.deliver("lobby", "bob", "[red]x[/red] and \x1b[31mred\x1b[0m")
        await pilot.pause()
        text = screen_text(app)
        assert "[red]x[/red] and \\x1b[31mred\\x1b[0m" in text
        assert "[b]mallory[/b]\\x1b[2J joined" in text
        assert "\x1b" not in "".join(e.body for e in app.logs["lobby"].entries)
        long = backend.deliver("lobby", "carol", "lorem ipsum " * 334)  # 4,008 characters
        await pilot.pause()
        width = app.timeline.scrollable_content_region.width
        lines = [app.logs["lobby"].line(y) for y in range(app.logs["lobby"].line_count)]
        assert all(line is not None and line.cell_length <= width for line in lines)
        assert app.logs["lobby"].line_count > len(long.text) // width
        assert "lorem ipsum" in screen_text(app)


async def test_a_mention_elsewhere_rings_toasts_and_marks_the_room(backend: FakeBackend) -> None:
    app = fixed_app(backend)
    rings: list[None] = []
    app.bell_on_mention = True
    app.bell = lambda: rings.append(None)  # type: ignore[method-assign]
    async with app.run_test(size=SIZE) as pilot:
        await started(app, backend)
        backend.deliver("team", "bob", "plain")
        backend.deliver("team", "bob", "ping @alice")
        await pilot.pause()
        assert (app.rows["team"].unread, app.rows["team"].mentions) == (2, 1)
        assert "🔒 team 2 @1" in screen_text(app)
        assert len(rings) == 1
        assert [n.title for n in app._notifications] == ["bob in team"]
        await pilot.press("ctrl+n")
        assert app.current == "team"
        assert (app.rows["team"].unread, app.rows["team"].mentions) == (0, 0)
        assert "ping @alice" in screen_text(app)


async def test_mentions_can_be_silenced(backend: FakeBackend) -> None:
    app = fixed_app(backend, toast=False)
    async with app.run_test(size=SIZE) as pilot:
        await started(app, backend)
        backend.deliver("lobby", "bob", "@alice quiet please")
        await pilot.pause()
        assert not app._notifications


async def test_room_keys_cycle_and_the_sidebar_selects(app: ChatApp, backend: FakeBackend) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await started(app, backend)
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


async def test_create_open_and_invite_rooms(app: ChatApp, backend: FakeBackend) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await started(app, backend)
        await submit(pilot, "/create den")
        assert app.current == "den"
        assert not backend.directory["den"].secret
        await submit(pilot, "/invite")
        assert "den has no invite" in last_line(app)
        await submit(pilot, "/create vault --secret")
        assert app.current == "vault"
        assert backend.directory["vault"].secret
        assert "/invite prints the invite" in last_line(app)
        await submit(pilot, "/invite")
        invite = backend.directory["vault"].invite()
        assert last_line(app).endswith(invite)
        assert app.clipboard == invite
        assert "🔒 vault" in screen_text(app)


async def test_create_with_a_password_asks_hidden(app: ChatApp, backend: FakeBackend) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await started(app, backend)
        app.query_one(Composer).value = "/create safe --password"
        await pilot.press("enter")
        await until_screen(pilot, PasswordScreen)
        await pilot.press(*"s3cret", "enter")
        await commands_done(app)
        assert backend.directory["safe"].password == "s3cret"
        assert "s3cret" not in screen_text(app)


async def test_relay_refusals_are_readable_notices(app: ChatApp, backend: FakeBackend) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await started(app, backend)
        await submit(pilot, "/create lobby")
        assert last_line(app) == "the room name lobby is taken (name_taken)"
        await submit(pilot, "/frobnicate")
        assert last_line(app) == "unknown command /frobnicate; /help lists the commands"
        assert [n.severity for n in app._notifications] == ["error", "error"]
        assert "Traceback" not in screen_text(app)


async def test_join_by_name_password_prompt_and_invite(app: ChatApp, backend: FakeBackend) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await started(app, backend)
        await submit(pilot, "/join nowhere")
        assert "no room called nowhere" in last_line(app)
        await submit(pilot, "/join elsewhere")
        assert app.current == "elsewhere"
        assert "You joined elsewhere" in last_line(app)
        locked = backend.add_room("locked", password="pw", joined=False)
        await submit(pilot, "/join locked wrong")
        assert "wrong password or invite for locked" in last_line(app)
        app.query_one(Composer).value = "/join locked --password"
        await pilot.press("enter")
        await until_screen(pilot, PasswordScreen)
        await pilot.press("escape")
        await commands_done(app)
        assert app.current == "elsewhere"
        await submit(pilot, "/join locked pw")
        assert app.current == "locked"
        assert locked in backend.joined
        hidden = backend.add_room("hidden", secret=True, joined=False)
        await submit(pilot, f"/join hidden {hidden.invite()}")
        assert app.current == "hidden"
        assert app.query_one(Composer).history[-1] == "/join hidden"


async def test_leave(app: ChatApp, backend: FakeBackend) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await started(app, backend)
        await submit(pilot, "/leave")
        assert app.current == "team"
        assert "lobby" not in app.rows
        await submit(pilot, "/leave")
        assert app.current is None
        await submit(pilot, "/leave")
        assert any("you are in no room" in n.message for n in app._notifications)
        assert "No room: /join NAME" in screen_text(app)


async def test_status(app: ChatApp, backend: FakeBackend) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await started(app, backend)
        await submit(pilot, "/status busy deep work")
        assert backend.statuses == [("busy", "deep work")]
        assert last_line(app) == "Your status is now busy: deep work"
        await submit(pilot, "/status asleep")
        assert "status is one of" in last_line(app)


async def test_verify_marks_a_member_verified(app: ChatApp, backend: FakeBackend) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await started(app, backend)
        app.query_one(Composer).value = "/verify carol"
        await pilot.press("enter")
        screen = await until_screen(pilot, VerifyScreen)
        carol = backend.member("carol")
        number = backend.safety_number(carol).split()
        assert " ".join(number[:4]) in screen_text(app)
        await pilot.click("#confirm")
        await commands_done(app)
        assert backend.verified == ["carol"]
        assert last_line(app) == "carol is verified"
        assert screen is not app.screen
        await submit(pilot, "/verify nobody")
        assert last_line(app) == "no member named nobody in lobby"


async def test_the_verify_dialog_does_not_focus_the_granting_button(
    app: ChatApp, backend: FakeBackend
) -> None:
    """One stray Enter must not grant trust: focus starts on Close."""
    async with app.run_test(size=SIZE) as pilot:
        await started(app, backend)
        app.query_one(Composer).value = "/verify carol"
        await pilot.press("enter")
        screen = await until_screen(pilot, VerifyScreen)
        assert backend.member("carol").fingerprint in screen_text(app)
        assert screen.focused is not None
        assert screen.focused.id == "close"
        await pilot.press("enter")
        await commands_done(app)
        assert backend.verified == []


async def test_members_rooms_help_and_nick(app: ChatApp, backend: FakeBackend) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await started(app, backend)
        await submit(pilot, "/members")
        assert last_line(app).splitlines() == [
            "4 members of lobby:",
            "  alice — online, you",
            "  bob — online, verified",
            "  carol — away, unverified",
            "  dave — offline, no keys shared",
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
        await submit(pilot, "/nick alicia")
        assert "you: alicia" in screen_text(app)
        assert last_line(app) == "You are now alicia"
        await submit(pilot, "/nick " + "x" * 40)
        assert "1 to 32" in last_line(app)


async def test_quit(app: ChatApp, backend: FakeBackend) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await started(app, backend)
        await submit(pilot, "/quit")
        assert app._exit_renderables == []
        assert not app.is_running


async def test_events_become_system_lines(app: ChatApp, backend: FakeBackend) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await started(app, backend)
        backend.arrive("lobby", backend.member("erin"))
        assert last_line(app) == "erin joined"
        backend.depart("lobby", "erin")
        assert last_line(app) == "erin left"
        backend.arrive("team", backend.member("frank", validated=False))
        backend.validate("team", "frank")
        assert last_line(app, "team") == "frank proved the room secret: keys shared"
        backend.change_presence("dave", "online")
        backend.listener.undecryptable(backend.directory["lobby"], None, 7, "no key yet")
        assert last_line(app) == "Could not decrypt message #7 from an unknown sender: no key yet"
        backend.change_connection("reconnecting", "connection lost")
        assert last_line(app) == "Connection reconnecting: connection lost"
        backend.change_connection("connected")
        assert last_line(app) == "Connected again"
        backend.change_connection("reconnecting")
        backend.listener.notice("relay going down for maintenance")
        await pilot.pause()
        text = screen_text(app)
        assert "● reconnecting" in text
        assert "● dave" in text
        backend.listener.room_left(backend.directory["team"])
        backend.listener.room_joined(backend.directory["elsewhere"])
        await commands_done(app)
        assert list(app.rows) == ["lobby", "elsewhere"]


async def test_composer_history_skips_secrets(app: ChatApp, backend: FakeBackend) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await started(app, backend)
        composer = app.query_one(Composer)
        await submit(pilot, "first")
        await submit(pilot, "/join team hunter2")
        composer.value = "draft"
        await pilot.press("up")
        assert composer.value == "/join team"
        await pilot.press("up", "up")
        assert composer.value == "first"
        await pilot.press("down", "down")
        assert composer.value == "draft"


async def test_completion_of_names_and_commands(app: ChatApp, backend: FakeBackend) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await started(app, backend)
        composer = app.query_one(Composer)
        await pilot.press(*"hey @ca")
        await pilot.press("tab")
        assert composer.value == "hey @carol "
        composer.value = ""
        await pilot.press(*"/ver")
        await pilot.press("enter")
        assert composer.value == "/verify "


async def test_ten_thousand_messages_of_scrollback(backend: FakeBackend) -> None:
    lobby = backend.directory["lobby"]
    bob = lobby.member_list[1]
    for number in range(10_000):
        backend.record(lobby, bob, f"message {number}")
    app = fixed_app(backend)
    async with app.run_test(size=SIZE) as pilot:
        await started(app, backend)
        await app.backlog_loaded.wait()
        await pilot.pause()
        assert len(app.logs["lobby"].entries) == 10_000
        assert app.logs["lobby"].entries[0].body == "message 0"  # the 4 oldest: over the limit
        timeline = app.timeline
        assert timeline.max_scroll_y > 9_000
        assert timeline.scroll_offset.y == timeline.max_scroll_y
        assert "message 9999" in screen_text(app)
        await pilot.press("pageup")
        assert timeline.scroll_offset.y < timeline.max_scroll_y
        backend.deliver("lobby", "bob", "new while reading history")
        await pilot.pause()
        assert timeline.scroll_offset.y < timeline.max_scroll_y  # did not jump
        timeline.scroll_home(animate=False, immediate=True)
        await pilot.pause()
        assert "bob message 0 " in screen_text(app)


async def test_older_history_arrives_above_without_moving_the_reader(
    backend: FakeBackend,
) -> None:
    lobby = backend.directory["lobby"]
    for number in range(500):
        backend.record(lobby, lobby.member_list[1], f"message {number}")
    app = fixed_app(backend)
    async with app.run_test(size=SIZE) as pilot:
        await app.ready.wait()
        timeline = app.timeline
        await pilot.pause()
        timeline.scroll_to(y=timeline.max_scroll_y - 50, animate=False, immediate=True)
        await pilot.pause()
        shown = screen_text(app).splitlines()[10]
        await app.backlog_loaded.wait()
        await pilot.pause()
        assert len(app.logs["lobby"].entries) == 504
        assert screen_text(app).splitlines()[10] == shown


def test_populated_backend_is_deterministic() -> None:
    one, two = populated_backend(), populated_backend()
    assert one.fingerprint == two.fingerprint
    assert [m.sent_at for m in one.directory["lobby"].stored] == [
        m.sent_at for m in two.directory["lobby"].stored
    ]
