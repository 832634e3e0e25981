"""The members panel: presence and trust markers for the current room."""

from collections.abc import Sequence

from rich.text import Text
from textual.reactive import reactive
from textual.widgets import Static

from e2echat import Member
from e2echat_tui.format import member_line
from e2echat_tui.trust import labels

_PRESENCE_ORDER = {"online": 0, "busy": 1, "away": 2}


def sorted_members(members: Sequence[Member]) -> list[Member]:
    """Me first, then by presence, then by name (case-insensitive)."""
    return sorted(
        members,
        key=lambda m: (not m.is_me, _PRESENCE_ORDER.get(m.status, 3), m.display_name.casefold()),
    )


class MembersPanel(Static):
    """The shown room's roster; redrawn whenever ``members`` changes."""

    DEFAULT_CSS = """
    MembersPanel {
        width: 28;
        height: 1fr;
        padding: 0 1;
        border-left: vkey $panel;
        overflow-y: auto;
    }
    """

    members: reactive[tuple[Member, ...]] = reactive(())

    def watch_members(self, members: tuple[Member, ...]) -> None:
        shown = labels(members)
        lines = [member_line(member, shown) for member in sorted_members(members)]
        header = Text(f"Members ({len(lines)})\n", style="bold")
        self.update(Text("\n").join([header, *lines]) if lines else header)
