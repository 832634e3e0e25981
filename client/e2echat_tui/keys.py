"""Every key of the app in one table: the bindings, ``/help``, the config's ``[keymap]``
and docs/tui.md all come from it.

A key's ``id`` is its name in ``[keymap]``; remapping goes through Textual's keymap
(``App.set_keymap``), so a remapped key works wherever the default did. The composer's
own keys (send, line break, completion, history) are remapped by the composer itself.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from textual.binding import Binding


@dataclass(frozen=True, slots=True)
class KeySpec:
    """One remappable key: ``label`` set means it shows in the footer."""

    id: str
    keys: str
    action: str
    summary: str
    label: str = ""
    priority: bool = False

    def binding(self) -> Binding:
        return Binding(
            self.keys,
            self.action,
            self.label or self.summary,
            show=bool(self.label),
            priority=self.priority,
            id=self.id,
        )


ROOM_KEYS: Final = 9
"""Alt+1 to Alt+9 show the first nine rooms of the sidebar."""

APP_KEYS: Final[tuple[KeySpec, ...]] = (
    KeySpec(
        "next_active",
        "ctrl+n",
        "next_active",
        "the next room with mentions, else with unread messages",
        "Next active",
    ),
    KeySpec(  # priority: remapped to ctrl+k (the composer's delete-to-end) it still wins
        "switch_room",
        "ctrl+g",
        "switch_room",
        "find a room by a few letters",
        "Rooms",
        priority=True,
    ),
    KeySpec("next_room", "alt+down", "cycle_room(1)", "next room"),
    KeySpec("previous_room", "alt+up", "cycle_room(-1)", "previous room"),
    *(
        KeySpec(f"room_{n}", f"alt+{n}", f"show_room({n})", f"room {n} of the sidebar")
        for n in range(1, ROOM_KEYS + 1)
    ),
    KeySpec("scroll_up", "pageup", "scroll_timeline(-1)", "scroll the timeline up", priority=True),
    KeySpec(
        "scroll_down", "pagedown", "scroll_timeline(1)", "scroll the timeline down", priority=True
    ),
    KeySpec(
        "newest",
        "ctrl+end",
        "newest",
        "back to the newest message (End does it too at the end of the draft)",
        priority=True,
    ),
    KeySpec("open_link", "ctrl+o", "open_link", "open a link of the room (asks first)"),
    KeySpec("help", "f1", "help", "help", "Help"),
    KeySpec("members", "f2", "toggle_members", "show / hide the members panel"),
    KeySpec(
        "files",
        "f3",
        "select_files",
        "select the newest file; then up / down, enter saves, p previews, escape",
    ),
    KeySpec(  # in the footer while a transfer runs (ChatApp.check_action)
        "cancel_transfer",
        "f4",
        "cancel_transfer",
        "cancel the newest upload or download",
        "Cancel transfer",
    ),
    KeySpec(
        "select_message",
        "ctrl+up,f5",
        "select_message",
        "select the newest message; then up / down, r replies, e edits, d deletes,"
        " + reacts, v shows versions, enter jumps to a quoted original, escape",
    ),
    KeySpec("quit", "ctrl+q", "quit", "quit", "Quit", priority=True),
)

COMPOSER_KEYS: Final[tuple[tuple[str, str, str], ...]] = (
    ("send", "enter", "send the draft"),
    ("newline", "shift+enter,alt+enter,ctrl+j", "a line break in the draft"),
    ("complete", "tab", "complete a name, command or room; again for the next one"),
    ("complete_previous", "shift+tab", "the previous completion"),
    ("history_previous", "up", "the room's input history, older (or up the completion list)"),
    ("history_next", "down", "the room's input history, newer (or down the completion list)"),
)
"""``(id, default keys, summary)`` of the composer's remappable keys."""

FIXED_KEYS: Final[tuple[tuple[str, str], ...]] = (
    ("end", "end of the line; at the end of the draft, the newest message"),
    ("escape", "accept the shown completion; close a dialog; vi mode: normal mode"),
)
"""Keys of the composer that are not remapped."""

ACTIONS: Final[dict[str, str]] = {
    **{spec.id: spec.summary for spec in APP_KEYS},
    **{id_: summary for id_, _keys, summary in COMPOSER_KEYS},
}
"""What ``[keymap]`` may name: each id and what it does."""


def split_keys(keys: str) -> tuple[str, ...]:
    return tuple(key.strip() for key in keys.split(",") if key.strip())


def composer_keys(keymap: Mapping[str, str]) -> dict[str, frozenset[str]]:
    """The keys of each of the composer's actions, as ``keymap`` remaps them."""
    return {
        id_: frozenset(split_keys(keymap.get(id_, default)))
        for id_, default, _summary in COMPOSER_KEYS
    }


def help_lines(keymap: Mapping[str, str]) -> list[tuple[str, str]]:
    """``(keys, what)`` for ``/help``, as remapped by ``keymap``; Alt+1..9 as one line."""
    lines = []
    for spec in APP_KEYS:
        keys = keymap.get(spec.id, spec.keys).replace(",", " / ")
        if spec.id == "room_1":
            last = keymap.get(f"room_{ROOM_KEYS}", f"alt+{ROOM_KEYS}")
            lines.append((f"{keys} … {last}", f"rooms 1 to {ROOM_KEYS} of the sidebar"))
        elif not spec.id.startswith("room_"):
            lines.append((keys, spec.summary))
    for id_, default, summary in COMPOSER_KEYS:
        lines.append((keymap.get(id_, default).replace(",", " / "), summary))
    lines += FIXED_KEYS
    return lines
