"""The message timeline: a line-API scroll view over one room's ``RoomLog``.

One widget for the whole scrollback, rendering only the visible lines, so 10,000
messages cost a list of line counts, not 10,000 widgets. It follows the bottom
while the reader is there and stays put when they scrolled up to read history.
"""

from rich.segment import Segment
from rich.style import Style
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

from e2echat_tui.lines import RoomLog


class Timeline(ScrollView, can_focus=True):
    """Shows one ``RoomLog``; ``show`` switches rooms, ``appended`` follows new lines."""

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
        self._base_style: Style | None = None  # self.rich_style walks the DOM: once per CSS

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._base_style = None

    def show(self, log: RoomLog) -> None:
        """Display ``log``, scrolled to its end."""
        self.log_view = log
        self._relayout()
        self._follow()

    def appended(self, log: RoomLog) -> None:
        """``log`` grew: update the scroll extent, and follow if we were at the bottom."""
        if log is not self.log_view:
            return
        at_bottom = self.scroll_offset.y >= self.max_scroll_y
        self._relayout()
        if at_bottom:
            self._follow()

    def prepended(self, log: RoomLog) -> None:
        """Older entries were added above: keep the reader's place (or the bottom)."""
        if log is not self.log_view:
            return
        at_bottom = self.scroll_offset.y >= self.max_scroll_y
        before = self.virtual_size.height
        self._relayout()
        if at_bottom:
            self._follow()
        else:
            shift = self.virtual_size.height - before
            self.scroll_to(y=self.scroll_offset.y + shift, animate=False, immediate=True)

    def _follow(self) -> None:
        if not self._follow_pending:
            self._follow_pending = True
            self.call_after_refresh(self._scroll_to_end)

    def _scroll_to_end(self) -> None:
        self._follow_pending = False
        self.scroll_end(animate=False, immediate=True)

    def on_resize(self) -> None:
        at_bottom = self.scroll_offset.y >= self.max_scroll_y
        self._relayout()
        if at_bottom:
            self._follow()

    def _relayout(self) -> None:
        width = self.scrollable_content_region.width
        self.log_view.set_width(width)
        self.virtual_size = Size(width, self.log_view.line_count)
        self.refresh()

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        if self._base_style is None:
            self._base_style = self.rich_style
        style = self._base_style
        strip = self.log_view.line(self.scroll_offset.y + y)
        if strip is None:
            return Strip([Segment(" " * width, style)], width)
        return strip.apply_style(style).crop_extend(0, width, style)
