"""Screenshots: the main screen, a mention, the verify dialog, an error notice, the
composer, the completion menu, the narrow layout and the trust markers.

Everything on screen is fixed (keys, fingerprints, times, size), so the SVGs under
``__snapshots__`` only change when the look changes; update them with
``uv run pytest tests/tui/test_snapshots.py --snapshot-update`` after checking the diff.
"""

from collections.abc import Callable
from dataclasses import replace

from e2echat_tui.composer import Composer
from e2echat_tui.dialogs import VerifyScreen
from textual.pilot import Pilot

from e2echat import Lookalike, Predecessor

from .conftest import SIZE, fixed_app, populated_chat
from .test_app import settle

SnapCompare = Callable[..., bool]
NARROW = (80, 24)


def test_main_screen(snap_compare: SnapCompare) -> None:
    assert snap_compare(fixed_app(populated_chat()), terminal_size=SIZE)


def test_mention_in_another_room(snap_compare: SnapCompare) -> None:
    chat = populated_chat()

    async def mention(pilot: Pilot[None]) -> None:
        await chat.listening.wait()
        chat.deliver("team", "bob", "@alice can you review the invite flow?")
        chat.deliver("lobby", "carol", "@alice lunch at noon? [b]not bold[/b]")
        await settle(pilot)

    assert snap_compare(fixed_app(chat), terminal_size=SIZE, run_before=mention)


def test_verify_dialog(snap_compare: SnapCompare) -> None:
    chat = populated_chat()

    async def verify(pilot: Pilot[None]) -> None:
        pilot.app.query_one(Composer).text = "/verify carol"
        await pilot.press("enter")
        for _ in range(50):
            if isinstance(pilot.app.screen, VerifyScreen):
                break
            await pilot.pause()
        await pilot.pause()

    assert snap_compare(fixed_app(chat), terminal_size=SIZE, run_before=verify)


def test_error_notice(snap_compare: SnapCompare) -> None:
    chat = populated_chat()

    async def refuse(pilot: Pilot[None]) -> None:
        pilot.app.query_one(Composer).text = "/create lobby"
        await pilot.press("enter")
        await settle(pilot)

    assert snap_compare(fixed_app(chat), terminal_size=SIZE, run_before=refuse)


def test_composer_with_a_multi_line_draft(snap_compare: SnapCompare) -> None:
    async def draft(pilot: Pilot[None]) -> None:
        await pilot.press(*"first line", "alt+enter", *"second line", "ctrl+j", *"third")
        await settle(pilot)

    assert snap_compare(fixed_app(populated_chat()), terminal_size=SIZE, run_before=draft)


def test_completion_menu_at_80x24(snap_compare: SnapCompare) -> None:
    async def menu(pilot: Pilot[None]) -> None:
        await pilot.press("/", "tab", "tab")
        await settle(pilot)

    assert snap_compare(fixed_app(populated_chat()), terminal_size=NARROW, run_before=menu)


def test_narrow_layout(snap_compare: SnapCompare) -> None:
    chat = populated_chat()

    async def mention(pilot: Pilot[None]) -> None:
        chat.deliver("team", "bob", "@alice ping")
        await settle(pilot)

    assert snap_compare(fixed_app(chat), terminal_size=NARROW, run_before=mention)


def test_room_switcher(snap_compare: SnapCompare) -> None:
    async def switcher(pilot: Pilot[None]) -> None:
        await pilot.press("ctrl+g", *"te")
        for _ in range(100):  # the palette searches in a worker
            await pilot.pause(0.01)
            if "team" in "".join(str(pilot.app.screen.render_line(y)) for y in range(10)):
                break
        await settle(pilot)

    assert snap_compare(fixed_app(populated_chat()), terminal_size=SIZE, run_before=switcher)


def test_new_messages_marker(snap_compare: SnapCompare) -> None:
    chat = populated_chat()
    lobby = chat.directory["lobby"]
    for number in range(40):
        chat.record(lobby, lobby.member_list[1], f"older message {number}")

    async def scrolled_up(pilot: Pilot[None]) -> None:
        await settle(pilot)
        await pilot.press("pageup")
        chat.deliver("lobby", "carol", "a new one")
        await settle(pilot)

    assert snap_compare(fixed_app(chat), terminal_size=SIZE, run_before=scrolled_up)


def test_trust_markers(snap_compare: SnapCompare) -> None:
    """Verified, unverified, a namesake of a verified contact, a petname, a new key."""
    chat = populated_chat()
    lobby = chat.directory["lobby"]
    bob = next(m for m in lobby.member_list if m.name == "bob")
    flag = Lookalike(bob.key, bob.name, bob.fingerprint, same_name=True, verified=True)
    mallory = replace(chat.member("mallory"), name="bob", lookalikes=(flag,))
    old = chat.member("erin-old")
    erin = chat.member("erin", predecessor=Predecessor(old.key, "erin", old.fingerprint, False))
    lobby.member_list = [
        replace(m, petname="Carol W") if m.name == "carol" else m for m in lobby.member_list
    ]

    async def arrive(pilot: Pilot[None]) -> None:
        await chat.listening.wait()
        chat.arrive("lobby", mallory)
        chat.arrive("lobby", erin)
        chat.publish(chat.record(lobby, mallory, "it's me, send the keys"))
        await settle(pilot)

    assert snap_compare(fixed_app(chat), terminal_size=(110, 36), run_before=arrive)
