"""The message timeline: a line-API scroll view over one room's ``RoomLog``.

One widget for the whole scrollback, rendering only the visible lines, so 10,000
messages cost a list of line counts, not 10,000 widgets. It follows the bottom
while the reader is there and stays put when they scrolled up to read history.

Focused, it selects messages (or only file messages, after ``f3``): Up and Down move
between them, and the keys below act on the selected one (the app does the work:
``Chosen`` names the action); Escape goes back to the composer.
"""

from typing import ClassVar

from rich.segment import Segment
from rich.style import Style
from textual.binding import Binding, BindingType
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from e2echat_tui.lines import Entry, RoomLog

SELECTED_STYLE = Style(bgcolor="#303a4a")
MARKER_STYLE = Style(color="#000000", bgcolor="#d7af00", bold=True)


class Timeline(ScrollView, can_focus=True):
    """Shows one ``RoomLog``; ``show`` switches rooms, ``appended`` follows new lines."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "select(-1)", "Previous", show=False),
        Binding("down", "select(1)", "Next", show=False),
        Binding("enter", "choose('open')", "Open"),
        Binding("r", "choose('reply')", "Reply"),
        Binding("e", "choose('edit')", "Edit"),
        Binding("d", "choose('delete')", "Delete"),
        Binding("plus,equals_sign", "choose('react')", "React"),
        Binding("v", "choose('versions')", "Versions"),
        Binding("p", "choose('preview')", "Preview"),
        Binding("escape", "leave", "Back", show=False),
    ]
    ACTIONS = ("open", "reply", "edit", "delete", "react", "versions", "preview")
    """What ``Chosen.action`` can be: "open" saves a file or jumps to a quoted original."""

    class Chosen(Message):
        """A key on the selected message: ``action`` (one of ``ACTIONS``) is what to do."""

        def __init__(self, entry: Entry, action: str) -> None:
            super().__init__()
            self.entry = entry
            self.action = action

    class Left(Message):
        """Escape: focus should go back to the composer."""

    DEFAULT_CSS = """
    Timeline {
        overflow-x: hidden;
        scrollbar-gutter: stable;
        height: 1fr;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.log_view = RoomLog()
        self._follow_pending = False
        self.following = True
        """The reader is at the end (or on the way there): new messages scroll it on.
        Only scrolling up stops it, not a layout that is not known yet."""
        self._base_style: Style | None = None  # self.rich_style walks the DOM: once per CSS
        self.selected: Entry | None = None
        self._selected_at = -1
        self.files_only = False
        """Up and Down move between file messages only (``f3``), else between messages."""
        self.unseen = 0
        """Entries appended while the reader was scrolled up: the marker counts them."""
        self._known = 0

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._base_style = None

    def show(self, log: RoomLog) -> None:
        """Display ``log``, scrolled to its end."""
        self.log_view = log
        self.following = True
        self.selected = None
        self.unseen, self._known = 0, len(log.entries)
        self._relayout()
        self._follow()

    def newest(self) -> None:
        """Back to the bottom (End): the marker goes."""
        self.unseen = 0
        self.following = True
        self.refresh()
        self._follow()

    @property
    def at_bottom(self) -> bool:
        return self.following

    def watch_scroll_y(self, old: float, new: float) -> None:
        super().watch_scroll_y(old, new)
        if new >= self.max_scroll_y:
            self.following = True
            if self.unseen:
                self.unseen = 0
                self.refresh()
        elif new < old:  # the reader scrolled up
            self.following = False

    def appended(self, log: RoomLog) -> None:
        """``log`` grew: update the scroll extent, and follow if we were at the bottom."""
        if log is not self.log_view:
            return
        at_bottom = self.at_bottom
        entries = len(log.entries)
        if not at_bottom:
            self.unseen += max(entries - self._known, 1)  # at the kept limit, len stays
        self._known = entries
        self._relayout()
        if at_bottom:
            self._follow()

    def changed(self, log: RoomLog) -> None:
        """Entries of ``log`` changed in place (an edit, a reaction): lay out again,
        staying at the bottom if we were there."""
        if log is not self.log_view:
            return
        at_bottom = self.at_bottom
        self._known = len(log.entries)
        self._relayout()
        if at_bottom:
            self._follow()

    def prepended(self, log: RoomLog) -> None:
        """Older entries were added above: keep the reader's place (or the bottom)."""
        if log is not self.log_view:
            return
        at_bottom = self.at_bottom
        before = self.virtual_size.height
        self._known = len(log.entries)
        self._relayout()
        if at_bottom:
            self._follow()
        else:
            shift = self.virtual_size.height - before
            self.scroll_to(y=self.scroll_offset.y + shift, animate=False, immediate=True)

    def _follow(self) -> None:
        """To the end now, so the next frame shows it, and again after the refresh, which
        settles a layout that is still pending. ``force``: before that layout Textual
        has not yet decided to show the scrollbar and would not scroll, yet the extent
        is known (the size, and the stable gutter keeps the width)."""
        if self.size.height:
            self.scroll_end(animate=False, immediate=True, force=True)
        if not self._follow_pending:
            self._follow_pending = True
            self.call_after_refresh(self._scroll_to_end)

    def _scroll_to_end(self) -> None:
        self._follow_pending = False
        self.scroll_end(animate=False, immediate=True)

    def on_resize(self) -> None:
        at_bottom = self.at_bottom
        self._relayout()
        if at_bottom:
            self._follow()

    def _relayout(self) -> None:
        width = self.scrollable_content_region.width
        self.log_view.set_width(width)
        size = Size(width, self.log_view.line_count)
        if (
            size.width == self.virtual_size.width
            and size.height >= self.virtual_size.height
            and self.show_vertical_scrollbar
        ):
            # The room only grew and the scrollbar stays: with a stable gutter no other
            # widget moves, so no layout of the screen (assigning the reactive asks for
            # one, which redraws every widget, each frame while messages come). A room
            # that got shorter goes the long way, which keeps the offset within it.
            self.set_reactive(Timeline.virtual_size, size)
            self.vertical_scrollbar.window_virtual_size = size.height
            self.vertical_scrollbar.refresh()
        else:
            self.virtual_size = size
        self.refresh()

    # ------------------------------------------------------------ selection

    def _selected_index(self) -> int | None:
        """Where the selected entry is now (entries shift as older ones load above)."""
        entries, cached = self.log_view.entries, self._selected_at
        if self.selected is None:
            return None
        if not (0 <= cached < len(entries) and entries[cached] is self.selected):
            try:
                self._selected_at = entries.index(self.selected)
            except ValueError:  # dropped from the kept history
                self.selected = None
                return None
        return self._selected_at

    def select_newest_file(self) -> Entry | None:
        """Select the newest file message (None if the room shows none)."""
        return self.select_newest(files_only=True)

    def select_newest(self, *, files_only: bool = False) -> Entry | None:
        """Select the newest message (or file message); None if the room shows none."""
        self.files_only = files_only
        self.selected = None
        self.action_select(-1)
        return self.selected

    def _selectable(self, entry: Entry) -> bool:
        message = entry.message
        return message is not None and (not self.files_only or message.file is not None)

    def action_select(self, step: int) -> None:
        """Move the selection ``step`` messages (from the bottom if none)."""
        entries = self.log_view.entries
        choices = [i for i, entry in enumerate(entries) if self._selectable(entry)]
        if not choices:
            return
        current = self._selected_index()
        if current is None:
            target = choices[-1]
        elif step < 0:
            target = next((i for i in reversed(choices) if i < current), choices[0])
        else:
            target = next((i for i in choices if i > current), choices[-1])
        self.select_at(target)

    def select_at(self, target: int) -> None:
        """Select entry ``target`` and scroll it into view."""
        entries = self.log_view.entries
        self.selected = entries[target]
        self._selected_at = target
        lines = self.log_view.span(target)
        if lines:
            top, height = self.scroll_offset.y, self.scrollable_content_region.height
            if lines.start < top or lines.stop > top + height:
                self.scroll_to(y=max(lines.stop - height, 0), animate=False, immediate=True)
        self.refresh()

    def action_choose(self, action: str) -> None:
        if self.selected is not None and self._selected_index() is not None:
            self.post_message(self.Chosen(self.selected, action))

    def action_leave(self) -> None:
        self.post_message(self.Left())

    def on_blur(self) -> None:
        self.refresh()  # the selection shows only while the timeline has focus

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        if self._base_style is None:
            self._base_style = self.rich_style
        style = self._base_style
        if self.unseen and y == self.scrollable_content_region.height - 1:
            return self._marker(width)
        line = self.scroll_offset.y + y
        strip = self.log_view.line(line)
        if strip is None:
            return Strip([Segment(" " * width, style)], width)
        strip = strip.apply_style(style).crop_extend(0, width, style)
        index = self._selected_index() if self.has_focus else None
        if index is not None and line in self.log_view.span(index):
            strip = strip.apply_style(SELECTED_STYLE)
        return strip

    def _marker(self, width: int) -> Strip:
        """The bottom line while new messages wait below the reader."""
        count = f"{self.unseen:,} new message{'s' if self.unseen != 1 else ''}"
        text = f" ↓ {count} below · End ".center(width, "─")[:width]
        return Strip([Segment(text, MARKER_STYLE)], width).crop_extend(0, width, MARKER_STYLE)
