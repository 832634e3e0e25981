"""docs/tui.md lists every command, every remappable key and every config setting."""

from pathlib import Path

import msgspec
from e2echat_tui.commands import COMMANDS
from e2echat_tui.config import FileConfig, Notifications
from e2echat_tui.keys import ACTIONS

DOC = (Path(__file__).parents[2] / "docs" / "tui.md").read_text()


def test_every_command_is_documented() -> None:
    missing = [spec.name for spec in COMMANDS if f"`/{spec.name}" not in DOC]
    assert missing == []


def test_every_remappable_key_is_documented() -> None:
    assert "`room_1` … `room_9`" in DOC
    missing = [a for a in ACTIONS if not a.startswith("room_") and f"`{a}`" not in DOC]
    assert missing == []


def test_every_setting_is_documented() -> None:
    tables = {"notifications", "keymap"}
    top = [f.name for f in msgspec.structs.fields(FileConfig) if f.name not in tables]
    nested = [f"notifications.{f.name}" for f in msgspec.structs.fields(Notifications)]
    missing = [name for name in [*top, *nested, "keymap.ACTION"] if f"| `{name}` |" not in DOC]
    assert missing == []
