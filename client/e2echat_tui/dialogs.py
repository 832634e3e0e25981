"""Modal dialogs: the safety-number check, the hidden password prompt, a confirmation, and
a long text to read (the room info view; help while no room is shown)."""

from typing import ClassVar

from rich.console import RenderableType
from rich.style import Style
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from e2echat import Member
from e2echat_tui.safe import escape_controls
from e2echat_tui.trust import about, trust_label

DIALOG_CSS = """
{name} {{
    align: center middle;
}}
{name} > Vertical {{
    width: 72;
    height: auto;
    padding: 1 2;
    border: thick $primary;
    background: $surface;
}}
{name} Horizontal {{
    height: auto;
    margin-top: 1;
    align-horizontal: right;
}}
{name} Button {{
    margin-left: 2;
}}
"""


def _rows(number: str, per_row: int = 4) -> str:
    """Lay a grouped number out as rows of ``per_row`` groups, like Signal does."""
    groups = number.split()
    return "\n".join(" ".join(groups[i : i + per_row]) for i in range(0, len(groups), per_row))


def safety_text(member: Member, safety_number: str) -> Text:
    """What the verify dialog says: who, the fingerprint being trusted, the number to
    compare, and the key's trust now (with whose name it resembles)."""
    label, label_style = trust_label(member)
    note = about(member)
    text = Text.assemble(
        ("Verify ", Style(bold=True)),
        (escape_controls(member.display_name), Style(bold=True, color="#5fafff")),
        "\n\nCompare this safety number with them in person or on a call you trust.\n"
        "If it matches on both screens, nobody is in the middle.\n\n",
        (_rows(safety_number), Style(bold=True)),
        "\n\nTheir key fingerprint: ",
        escape_controls(member.fingerprint),
        "\nNow: ",
        (label, label_style),
    )
    if note is not None:
        text.append("\n" + note, Style(color="#8a8a8a"))
    return text


class VerifyScreen(ModalScreen[bool]):
    """Shows a safety number; dismisses True when the user confirms that it matches.

    Focus starts on Close, never on the granting button: trust takes a deliberate
    choice, not one stray Enter.
    """

    DEFAULT_CSS = DIALOG_CSS.format(name="VerifyScreen")
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss(False)", "Close")]
    AUTO_FOCUS = "#close"

    def __init__(self, member: Member, safety_number: str) -> None:
        super().__init__()
        self._text = safety_text(member, safety_number)
        self._confirm = "It matches: mark verified"
        self._can_confirm = not member.is_me and not member.verified

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(self._text, id="safety")
            with Horizontal():
                if self._can_confirm:
                    yield Button(self._confirm, id="confirm", variant="success")
                yield Button("Close", id="close")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "confirm")


class PasswordScreen(ModalScreen[str | None]):
    """Asks for a room password without echoing it; dismisses None on escape."""

    DEFAULT_CSS = DIALOG_CSS.format(name="PasswordScreen")
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss(None)", "Cancel")]

    def __init__(self, prompt: str) -> None:
        super().__init__()
        self._prompt = prompt

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(Text(self._prompt))
            yield Input(password=True, id="password")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if event.value:
            self.dismiss(event.value)


class ConfirmScreen(ModalScreen[bool]):
    """A yes-or-no question; dismisses True only for the confirming button.

    Focus starts on Cancel, so a stray Enter (say, the end of a paste) confirms nothing.
    """

    DEFAULT_CSS = DIALOG_CSS.format(name="ConfirmScreen")
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss(False)", "Cancel")]
    AUTO_FOCUS = "#cancel"

    def __init__(self, question: str, confirm: str) -> None:
        super().__init__()
        self._question = question
        self._confirm = confirm

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(Text(self._question))
            with Horizontal():
                yield Button(self._confirm, id="confirm", variant="primary")
                yield Button("Cancel", id="cancel")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "confirm")


class ReadingScreen(ModalScreen[None]):
    """A text to read that may be longer than the screen: it scrolls (the arrows and
    page keys, or the mouse wheel) and closes with Escape or its button, which stays in
    view at any terminal size (docked, below a text that takes what is left)."""

    DEFAULT_CSS = (
        DIALOG_CSS.format(name="ReadingScreen")
        + """
    ReadingScreen > Vertical { width: 90; max-width: 100%; max-height: 90%; }
    ReadingScreen VerticalScroll { height: auto; max-height: 1fr; }
    ReadingScreen Horizontal { dock: bottom; }
    """
    )
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss", "Close"),
        Binding("up", "scroll('scroll_up')", show=False),
        Binding("down", "scroll('scroll_down')", show=False),
        Binding("pageup", "scroll('scroll_page_up')", show=False),
        Binding("pagedown", "scroll('scroll_page_down')", show=False),
    ]
    AUTO_FOCUS = "#close"

    def __init__(self, text: RenderableType) -> None:
        super().__init__()
        self._text = text

    def compose(self) -> ComposeResult:
        with Vertical():
            with VerticalScroll():
                yield Static(self._text, markup=False, id="reading")
            with Horizontal():
                yield Button("Close", id="close")

    def action_scroll(self, how: str) -> None:
        getattr(self.query_one(VerticalScroll), how)(animate=False)

    def on_button_pressed(self, _event: Button.Pressed) -> None:
        self.dismiss()
