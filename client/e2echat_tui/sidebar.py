"""The rooms sidebar: one row per joined room with its marker and badges.

Each row is a widget whose unread and mention counts are reactive: bumping a count
redraws that row alone.
"""

from rich.style import Style
from rich.text import Text
from textual import events
from textual.containers import VerticalScroll
from textual.message import Message
from textual.reactive import reactive
from textual.widget import Widget

from e2echat_tui.safe import escape_controls


class RoomRow(Widget):
    """A room in the sidebar (``unread``/``mentions`` since it was last shown)."""

    DEFAULT_CSS = """
    RoomRow { height: 1; padding: 0 1; }
    RoomRow.-current { background: $accent 40%; }
    RoomRow:hover { background: $boost; }
    """

    unread: reactive[int] = reactive(0)
    mentions: reactive[int] = reactive(0)
    muted: reactive[bool] = reactive(False)
    peer: reactive[str | None] = reactive(None)
    """A direct conversation's other person (shown instead of the room's name), with
    the trust marker its key has now."""

    def __init__(self, room: str, secret: bool, peer: str | None = None) -> None:
        super().__init__()
        self.room = room
        self.secret = secret
        self.peer = peer

    def render(self) -> Text:
        marker = "@" if self.peer is not None else "🔒" if self.secret else "#"
        colour = "#5fd7ff" if self.peer is not None else "#87d787" if self.secret else "#d7af00"
        text = Text.assemble(
            (marker + " ", Style(color=colour)),
            (escape_controls(self.peer or self.room), Style(bold=bool(self.unread))),
            no_wrap=True,
            overflow="ellipsis",
        )
        if self.unread:
            text.append(f" {self.unread}", Style(color="#5fafff"))
        if self.mentions:
            text.append(f" @{self.mentions}", Style(color="#000000", bgcolor="#d7af00", bold=True))
        if self.muted:
            text.append(" muted", Style(color="#6c6c6c", italic=True))
        return text

    def on_click(self, event: events.Click) -> None:
        event.stop()
        self.post_message(RoomList.Picked(self.room))


class RoomList(VerticalScroll, can_focus=False):
    """Joined rooms in join order, the shown one (``current``) highlighted.

    It never takes focus (the composer keeps it; keys switch rooms), so a click picks
    a room without a focus border growing under the pointer.
    """

    DEFAULT_CSS = """
    RoomList {
        width: 24;
        height: 1fr;
        border-right: vkey $panel;
        scrollbar-size-vertical: 1;
    }
    """

    class Picked(Message):
        """The user clicked a room."""

        def __init__(self, room: str) -> None:
            super().__init__()
            self.room = room

    current: reactive[str | None] = reactive(None)

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.rows: dict[str, RoomRow] = {}

    def add(self, room: str, secret: bool, peer: str | None = None) -> RoomRow:
        """A row for ``room``; ``peer`` (a direct conversation's other person) is shown
        with an ``@`` marker instead of the room's name."""
        row = self.rows[room] = RoomRow(room, secret, peer)
        row.set_class(room == self.current, "-current")
        self.mount(row)
        return row

    def discard(self, room: str) -> None:
        row = self.rows.pop(room, None)
        if row is not None:
            row.remove()

    def watch_current(self, old: str | None, new: str | None) -> None:
        if old in self.rows:
            self.rows[old].remove_class("-current")
        if new in self.rows:
            self.rows[new].add_class("-current")
            self.rows[new].unread = self.rows[new].mentions = 0
            self.rows[new].scroll_visible(animate=False)
