"""The lines above the timeline, as reactive state: the header (relay, connection state,
my name and fingerprint, progress) and the shown room's topic."""

from rich.style import Style
from rich.text import Text
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


class Header(Widget):
    """One line; the whole fingerprint when it fits, else its first groups and ``…``."""

    DEFAULT_CSS = """
    Header { height: 1; background: $panel; padding: 0 1; }
    """

    url: reactive[str] = reactive("")
    state: reactive[str] = reactive("connecting")
    user: reactive[str] = reactive("")
    fingerprint: reactive[str] = reactive("")
    progress: reactive[str] = reactive("")
    """Long work under way (connecting, catching up), or empty."""

    def __init__(self, url: str, fingerprint: str, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.set_reactive(Header.url, url)
        self.set_reactive(Header.fingerprint, fingerprint)

    def _line(self, fingerprint: str) -> Text:
        line = Text.assemble(
            ("e2echat", Style(bold=True)),
            "  relay ",
            (escape_controls(self.url), Style(color="#5fafff")),
            "  ",
            (f"● {self.state}", STATE_STYLES.get(self.state, Style())),
            "  you: ",
            (escape_controls(self.user), Style(bold=True)),
            "  ",
            (escape_controls(fingerprint), Style(color="#8a8a8a")),
            no_wrap=True,
            overflow="ellipsis",
        )
        if self.progress:
            line.append("  " + escape_controls(self.progress), Style(color="#d7af00", italic=True))
        return line

    def render(self) -> Text:
        full = self._line(self.fingerprint)
        if full.cell_len <= self.content_region.width:
            return full
        return self._line(short_fingerprint(self.fingerprint))


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
