"""/kick, /ban, /unban, /op, /deop, /password, /rotate and the /info view.

Over the real library and relay (the library decides every rule, from the signed log)
and, for the screenshot, over the fake with a fixed log.
"""

import asyncio
import io
from collections.abc import Callable
from pathlib import Path

from e2echat_tui.composer import Composer
from e2echat_tui.demo import LOBBY
from e2echat_tui.dialogs import PasswordScreen, ReadingScreen
from e2echat_tui.format import Hanging
from rich.console import Console
from rich.text import Text
from textual.pilot import Pilot

from e2echat import Client, Identity, Room, RoomLeft

from .conftest import SIZE, fixed_app, populated_chat
from .screen import screen_text
from .test_app import settle
from .test_live import TIMEOUT, WatchedApp, bodies, session, type_line, until

__all__ = ["session"]  # the fixture, shared with test_live
SnapCompare = Callable[..., bool]


def ops_chat() -> object:
    """alice owns "ops"; bob is an admin, carol was kicked, the description changed."""
    chat = populated_chat()
    bob, carol = chat.member("bob"), chat.member("carol")
    ops = chat.add_room("ops", secret=True, members=[bob])
    ops.change("create", chat.me, description="")
    ops.change("join", bob)
    ops.change("join", carol)
    ops.change("role", chat.me, bob, role="admin")
    ops.change("kick", chat.me, carol)
    ops.change("describe", chat.me, description="ops, after the [b]incident[/b]")
    return chat


async def wait_for_screen(pilot: Pilot[None], kind: type) -> None:
    async with asyncio.timeout(TIMEOUT):
        while not isinstance(pilot.app.screen, kind):
            await pilot.pause()


def test_the_info_view(snap_compare: SnapCompare) -> None:
    async def info(pilot: Pilot[None]) -> None:
        await settle(pilot)
        pilot.app.switch_to("ops")  # type: ignore[attr-defined]
        pilot.app.query_one(Composer).text = "/info"
        await pilot.press("enter")
        await wait_for_screen(pilot, ReadingScreen)
        await pilot.pause()

    assert snap_compare(fixed_app(ops_chat()), terminal_size=SIZE, run_before=info)  # type: ignore[arg-type]


async def test_the_info_view_lists_roles_epoch_and_changes() -> None:
    app = fixed_app(ops_chat())  # type: ignore[arg-type]
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        app.switch_to("ops")
        app.query_one(Composer).text = "/info"
        await pilot.press("enter")
        await wait_for_screen(pilot, ReadingScreen)
        await pilot.pause()
        text = screen_text(app)
        assert "ops — invite room, epoch 1" in text
        assert "alice  owner" in text
        assert "bob  admin" in text
        assert "carol  member" not in text  # kicked
        assert "alice kicked ?carol (epoch 1)" in text
        assert "ops, after the [b]incident[/b]" in text  # literal, never markup
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, ReadingScreen)


async def test_the_info_view_wraps_a_long_line_under_its_own_text() -> None:
    chat = ops_chat()
    ops = chat.directory["ops"]  # type: ignore[attr-defined]
    words = " ".join(f"w{n:02}" for n in range(40))
    ops.change("describe", chat.me, description=words)  # type: ignore[attr-defined]
    app = fixed_app(chat)  # type: ignore[arg-type]
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        app.switch_to("ops")
        app.query_one(Composer).text = "/info"
        await pilot.press("enter")
        await wait_for_screen(pilot, ReadingScreen)
        await pilot.pause()
        lines = screen_text(app).splitlines()
        first = next(i for i, line in enumerate(lines) if "set the description: w00" in line)
        column = lines[first].index("alice set the description")
        rest = [line for line in lines[first + 1 :] if "w" in line[column:]][:2]
        assert len(rest) == 2  # 40 words take three lines of the view
        for line in rest:
            assert line[column] == "w"  # under the change's text, not under its date
            assert line[column - 20 : column].strip(" █") == ""
        assert lines[first + 1 : first + 3] == rest  # continuation lines, right below it


def test_a_hanging_line_wraps_under_its_value_and_as_one_text_when_narrow() -> None:
    def shown(width: int) -> list[str]:
        console = Console(width=width, file=io.StringIO(), color_system=None)
        with console.capture() as capture:
            console.print(Hanging(Text("  12  "), Text("one two three four five six")))
        return [line.rstrip() for line in capture.get().splitlines()]

    assert shown(24) == ["  12  one two three four", "      five six"]
    assert shown(20) == ["  12  one two three", "four five six"]  # no room to indent


async def until_body(app: WatchedApp, room: str, wanted: str) -> None:
    await until(app, lambda: any(wanted in body for body in bodies(app, room)))


async def test_moderation_commands_over_the_real_relay(
    session: tuple[WatchedApp, Pilot[None], str], tmp_path: Path
) -> None:
    app, pilot, url = session
    await type_line(pilot, "/create ops --secret")
    await until(app, lambda: "ops" in app.tabs)
    room: Room = app.tabs["ops"].room
    invite = room.invite()
    people = {
        name: Client(url, identity=Identity.generate(), name=name, store=tmp_path / f"{name}.db")
        for name in ("bob", "carol")
    }
    async with people["bob"] as bob, people["carol"] as carol:
        bob_room = await bob.join("ops", invite=invite)
        carol_events = carol.events()
        await carol.join("ops", invite=invite)
        await until(app, lambda: {bob.key, carol.key} <= set(room.roles))
        await room.members()

        await type_line(pilot, "/kick nobody")
        await until_body(app, "ops", "no member named nobody in ops")
        await type_line(pilot, "/op bob")
        await until_body(app, "ops", "tess made ?bob an admin")
        assert room.roles[bob.key] == "admin"
        await type_line(pilot, "/deop @bob")
        await until_body(app, "ops", "tess made ?bob a member")
        await type_line(pilot, "/kick carol")
        await until_body(app, "ops", "tess kicked ?carol")
        async with asyncio.timeout(TIMEOUT):
            async for event in carol_events:
                if isinstance(event, RoomLeft):
                    break
        assert carol.key not in room.roles
        assert room.epoch == 1

        await type_line(pilot, "/ban bob")
        await until_body(app, "ops", "tess banned ?bob")
        assert bob.key in room.banned
        await type_line(pilot, "/unban carol")
        await until_body(app, "ops", "nobody named carol is banned from ops")
        await type_line(pilot, "/unban bob")
        await until_body(app, "ops", "tess let ?bob in (ban lifted)")
        assert bob.key not in room.banned
        assert not bob_room.joined

        old_invite = room.invite()
        await type_line(pilot, "/rotate")
        await until_body(app, "ops", "/invite prints the new one")
        assert room.invite() != old_invite
        await type_line(pilot, "/password")
        await until_body(app, "ops", "ops has no password: /rotate")

        changes = [c.kind for c in await room.changes()]
        assert changes == [
            "create",
            "join",
            "join",
            "role",
            "role",
            "kick",
            "ban",
            "admit",
            "rotate",
        ]


async def test_a_member_without_the_role_is_told_and_nothing_changes(
    session: tuple[WatchedApp, Pilot[None], str], tmp_path: Path
) -> None:
    """tess is a plain member of bob's password room: every command is refused with the
    role it needs; /password asks nothing of a member who may not change it."""
    app, pilot, url = session
    bob = Client(url, identity=Identity.generate(), name="bob", store=tmp_path / "bob.db")
    async with bob:
        bob_room = await bob.create("vault", password="hunter2")
        await type_line(pilot, "/join vault hunter2")
        await until(app, lambda: "vault" in app.tabs)
        room: Room = app.tabs["vault"].room
        await until(app, lambda: app.chat.key in room.roles)
        await room.members()
        before = len(await room.changes())
        await type_line(pilot, "/kick bob")
        await until_body(app, "vault", "You are not allowed to do that")
        await type_line(pilot, "/op bob")
        await until_body(app, "vault", "only an owner")
        await type_line(pilot, "/password")  # refused at once: no prompt comes first
        refusal = (
            "You are not allowed to do that: only an admin or owner can change the room secret."
        )
        await until(app, lambda: refusal in bodies(app, "vault"))
        assert not isinstance(app.screen, PasswordScreen)
        assert len(await room.changes()) == before
        assert len(await bob_room.changes()) == before


async def test_the_member_kicked_is_told_why_and_it_stays_on_screen(
    session: tuple[WatchedApp, Pilot[None], str], tmp_path: Path
) -> None:
    """bob kicks tess from his invite room: its tab goes, and the room she is shown
    next keeps a line saying who removed her from where (a toast alone is gone in
    seconds, and used to say "You left", as if she had)."""
    app, pilot, url = session
    bob = Client(url, identity=Identity.generate(), name="bob", store=tmp_path / "bob.db")
    async with bob:
        bob_room = await bob.create("ops", secret=True)
        bob_events = bob.events()
        await type_line(pilot, f"/join ops {bob_room.invite()}")
        async with asyncio.timeout(TIMEOUT):  # bob's client has her join in its log
            while app.chat.key not in bob_room.roles:
                await anext(bob_events)
        await until(app, lambda: "ops" in app.tabs)
        tess = next(m for m in await bob_room.members() if m.key == app.chat.key)
        await bob_room.kick(tess)
        said = "You are no longer in ops: ?bob kicked tess. Nothing sent there reaches you now"
        await until_body(app, LOBBY, said)
        assert "ops" not in app.tabs
        assert app.current == LOBBY
        async with asyncio.timeout(TIMEOUT):  # a toast is a message, handled after the line
            while not any("ops" in n.message for n in app._notifications):
                await pilot.pause()
        toasts = [n for n in app._notifications if "ops" in n.message]
        assert [n.severity for n in toasts] == ["warning"]
        assert toasts[0].message.startswith(said)
