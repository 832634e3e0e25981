"""The composer: a one-line input with history, @name and /command completion."""

from collections.abc import Callable, Sequence
from typing import ClassVar

from textual import events
from textual.binding import Binding, BindingType
from textual.widgets import Input
from textual_autocomplete import AutoComplete, DropdownItem, TargetState

from e2echat_tui.commands import COMMANDS, history_text
from e2echat_tui.safe import escape_controls


class Composer(Input):
    """Enter sends; up/down walk the lines sent before (secrets are not remembered)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "history(-1)", "Previous line", show=False),
        Binding("down", "history(1)", "Next line", show=False),
    ]
    HISTORY_SIZE = 200

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(placeholder="Message, or /help", id=id)
        self.history: list[str] = []
        self._position = 0
        self._draft = ""

    def remember(self, line: str) -> None:
        """Add a sent line to the history (with any password or invite removed)."""
        entry = history_text(line)
        if not self.history or self.history[-1] != entry:
            self.history.append(entry)
            del self.history[: -self.HISTORY_SIZE]
        self._position = len(self.history)
        self._draft = ""

    def action_history(self, step: int) -> None:
        if not self.history:
            return
        if self._position == len(self.history):
            self._draft = self.value
        self._position = min(max(self._position + step, 0), len(self.history))
        self.value = (
            self._draft if self._position == len(self.history) else self.history[self._position]
        )
        self.cursor_position = len(self.value)


def completion_token(state: TargetState) -> str:
    """The word being completed: a leading ``/command`` or an ``@name`` before the cursor."""
    before = state.text[: state.cursor_position]
    if before.startswith("/") and " " not in before:
        return before
    word = before.rpartition(" ")[2]
    return word if word.startswith("@") else ""


class Completion(AutoComplete):
    """Completes ``/commands`` at the start of a line and ``@names`` anywhere."""

    def __init__(self, target: Input, names: Callable[[], Sequence[str]]) -> None:
        super().__init__(target)
        self._names = names

    def _listen_to_messages(self, event: events.Event) -> None:
        """Enter on a word that is already complete sends the line.

        The dropdown learns of a keystroke one message later than the input, so a fast
        ``/help`` + enter would otherwise hit the dropdown still offering ``/help`` for
        ``/hel`` and only complete it, leaving the line unsent.
        """
        if isinstance(event, events.Key) and event.key == "enter" and self._is_complete():
            self.action_hide()
            return
        super()._listen_to_messages(event)

    def _is_complete(self) -> bool:
        options = self.option_list
        if not self.display or options.highlighted is None:
            return False
        option = options.get_option_at_index(options.highlighted)
        value = option.value if isinstance(option, DropdownItem) else None
        return value == completion_token(self._get_target_state())

    def get_search_string(self, target_state: TargetState) -> str:
        return completion_token(target_state)

    def get_candidates(self, target_state: TargetState) -> list[DropdownItem]:
        token = completion_token(target_state)
        if token.startswith("/"):
            return [DropdownItem(f"/{spec.name}") for spec in COMMANDS]
        if token.startswith("@"):
            # A name that would need escaping cannot be typed back, so it is not offered.
            names = (n for n in self._names() if escape_controls(n) == n and " " not in n)
            return [DropdownItem(f"@{name}") for name in dict.fromkeys(names)]
        return []

    def apply_completion(self, value: str, state: TargetState) -> None:
        token = completion_token(state)
        start = state.cursor_position - len(token)
        rest = state.text[state.cursor_position :]
        new = state.text[:start] + value + " " + rest.lstrip(" ")
        self.target.value = new
        self.target.cursor_position = start + len(value) + 1
