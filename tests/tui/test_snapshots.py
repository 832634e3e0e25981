"""Screenshots of the main screen, a mention, the verify dialog and an error notice.

Everything on screen is fixed (keys, fingerprints, times, size), so the SVGs under
``__snapshots__`` only change when the look changes; update them with
``uv run pytest tests/tui/test_snapshots.py --snapshot-update`` after checking the diff.
"""

from collections.abc import Callable

from e2echat_tui.composer import Composer
from e2echat_tui.dialogs import VerifyScreen
from textual.pilot import Pilot

from .conftest import SIZE, fixed_app, populated_backend

SnapCompare = Callable[..., bool]


def test_main_screen(snap_compare: SnapCompare) -> None:
    assert snap_compare(fixed_app(populated_backend()), terminal_size=SIZE)


def test_mention_in_another_room(snap_compare: SnapCompare) -> None:
    backend = populated_backend()

    async def mention(pilot: Pilot[None]) -> None:
        await backend.listening.wait()
        backend.deliver("team", "bob", "@alice can you review the invite flow?")
        backend.deliver("lobby", "carol", "@alice lunch at noon? [b]not bold[/b]")
        await pilot.pause()

    assert snap_compare(fixed_app(backend), terminal_size=SIZE, run_before=mention)


def test_verify_dialog(snap_compare: SnapCompare) -> None:
    backend = populated_backend()

    async def verify(pilot: Pilot[None]) -> None:
        pilot.app.query_one(Composer).value = "/verify carol"
        await pilot.press("enter")
        for _ in range(50):
            if isinstance(pilot.app.screen, VerifyScreen):
                break
            await pilot.pause()
        await pilot.pause()

    assert snap_compare(fixed_app(backend), terminal_size=SIZE, run_before=verify)


def test_error_notice(snap_compare: SnapCompare) -> None:
    backend = populated_backend()

    async def refuse(pilot: Pilot[None]) -> None:
        pilot.app.query_one(Composer).value = "/create lobby"
        await pilot.press("enter")
        running = [w for w in pilot.app.workers if w.group == "commands"]
        if running:  # an empty list would mean "every worker", the event pump included
            await pilot.app.workers.wait_for_complete(running)
        await pilot.pause()

    assert snap_compare(fixed_app(backend), terminal_size=SIZE, run_before=refuse)
