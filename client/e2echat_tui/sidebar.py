"""The rooms sidebar: one row per joined room with its open/secret marker and badges."""

from dataclasses import dataclass

from rich.style import Style
from rich.text import Text
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from e2echat_tui.safe import escape_controls


@dataclass(slots=True)
class RoomRow:
    """What the sidebar shows for a room (``unread``/``mentions`` since last viewed)."""

    name: str
    secret: bool
    unread: int = 0
    mentions: int = 0

    def prompt(self) -> Text:
        marker = "🔒" if self.secret else "#"
        text = Text.assemble(
            (marker + " ", Style(color="#87d787" if self.secret else "#d7af00")),
            (escape_controls(self.name), Style(bold=bool(self.unread))),
        )
        if self.unread:
            text.append(f" {self.unread}", Style(color="#5fafff"))
        if self.mentions:
            text.append(f" @{self.mentions}", Style(color="#000000", bgcolor="#d7af00", bold=True))
        return text


class RoomList(OptionList, can_focus=False):
    """Joined rooms in join order; the option id is the room name.

    It never takes focus (the composer keeps it; keys switch rooms), so a click selects
    a room without the list growing a focus border under the pointer.
    """

    DEFAULT_CSS = """
    RoomList {
        width: 24;
        height: 1fr;
        border: none;
        border-right: vkey $panel;
    }
    """

    def show_rows(self, rows: list[RoomRow], current: str | None) -> None:
        """Replace every row (rooms were added or removed)."""
        self.set_options(Option(row.prompt(), id=row.name) for row in rows)
        self.mark_current(current)

    def update_row(self, row: RoomRow) -> None:
        """Redraw one room's badges."""
        self.replace_option_prompt(row.name, row.prompt())

    def mark_current(self, current: str | None) -> None:
        self.highlighted = None if current is None else self.get_option_index(current)
