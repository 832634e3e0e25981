"""The lines above the timeline, as reactive state: the header (relay, connection state,
my name and fingerprint, progress) and the shown room's topic."""

from rich.style import Style
from rich.text import Text
from textual.geometry import Size
from textual.reactive import reactive
from textual.widget import Widget

from e2echat import Member, Room
from e2echat_tui.format import short_fingerprint, topic
from e2echat_tui.safe import escape_controls

STATE_STYLES = {
    "connected": Style(color="#5fd75f", bold=True),
    "connecting": Style(color="#d7af00"),
    "reconnecting": Style(color="#d7af00", bold=True),
    "closed": Style(color="#ff5f5f", bold=True),
}
PROGRESS_STYLE = Style(color="#d7af00", italic=True)


class Header(Widget):
    """The status line: one line, the whole fingerprint when it fits, else its first
    groups and ``…`` (narrower still, cut with ``…``, and without the relay's URL where
    your name would not fit whole);
    long work under way at its end, or on a second line when the
    first has no room for it (it is never cut off for the identity's sake)."""

    DEFAULT_CSS = """
    Header { height: auto; max-height: 2; background: $panel; padding: 0 1; }
    """

    url: reactive[str] = reactive("")
    state: reactive[str] = reactive("connecting")
    user: reactive[str] = reactive("")
    fingerprint: reactive[str] = reactive("")
    progress: reactive[str] = reactive("")
    """Long work under way (connecting, catching up, transfers), or empty."""

    def __init__(self, url: str, fingerprint: str, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.set_reactive(Header.url, url)
        self.set_reactive(Header.fingerprint, fingerprint)
        self._rows = 1

    def _line(self, fingerprint: str, relay: bool = True) -> Text:
        return Text.assemble(
            ("e2echat", Style(bold=True)),
            ("  relay ", Style()) if relay else "",
            (escape_controls(self.url), Style(color="#5fafff")) if relay else "",
            "  ",
            (f"● {self.state}", STATE_STYLES.get(self.state, Style())),
            "  you: ",
            (escape_controls(self.user), Style(bold=True)),
            "  ",
            (escape_controls(fingerprint), Style(color="#8a8a8a")),
            no_wrap=True,
            overflow="ellipsis",
        )

    def _lines(self, width: int) -> list[Text]:
        work = Text(
            escape_controls(self.progress), PROGRESS_STYLE, no_wrap=True, overflow="ellipsis"
        )
        for fingerprint in (self.fingerprint, short_fingerprint(self.fingerprint)):
            line = self._line(fingerprint)
            if self.progress:
                line.append_text(Text("  ").append_text(work))
            if line.cell_len <= width:
                return [line]
        identity = self._line(short_fingerprint(self.fingerprint))
        if self._line("…").cell_len > width:  # your whole name before the relay's URL
            identity = self._line(short_fingerprint(self.fingerprint), relay=False)
        lines = [identity, work] if self.progress else [identity]
        for line in lines:  # what is cut says so (the widget itself would crop silently)
            line.truncate(width, overflow="ellipsis")
        return lines

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        self._rows = len(self._lines(width))
        return self._rows

    def render(self) -> Text:
        lines = self._lines(self.content_region.width)
        if len(lines) != self._rows:  # work began or ended that takes a line of its own
            self.call_after_refresh(self.refresh, layout=True)
        return Text("\n", no_wrap=True, overflow="ellipsis").join(lines)


class Topic(Widget):
    """The shown room, what its kind means for who can read it, and its description."""

    DEFAULT_CSS = """
    Topic { height: auto; max-height: 3; padding: 0 1; color: $text-muted; }
    """

    room: reactive[Room | None] = reactive(None, layout=True)
    known: reactive[tuple[Member, ...]] = reactive((), layout=True)
    """Members of every room: a direct conversation's peer may not be in its own yet."""

    def render(self) -> Text:
        if self.room is None:
            return Text("No room: /join NAME or /create NAME")
        return topic(self.room, self.known)
