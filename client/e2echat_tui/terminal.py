"""Reading the terminal: two fixes to how Textual's parser reads what the keyboard sends.

- **ESC inside a paste.** A bracketed paste is ``ESC [200~ text ESC [201~``. Textual's
  parser treats an ESC inside the text as the start of a key sequence: the rest of the
  paste arrives as key presses *before* the paste event with its first part, so the
  message is scrambled (and a pasted escape sequence could act as keys). Here every ESC
  between the brackets is carried through the parser as a private-use stand-in and
  turned back into ESC in the ``Paste`` event, where the composer shows it escaped.
- **Alt+Enter, Alt+digit.** Terminals send ESC then the key. Textual reports ESC CR as
  a plain Enter (so Alt+Enter would send instead of breaking the line) and ESC 1 as the
  character a Mac keyboard's Option+1 types (``¡``). Here they are ``alt+enter`` and
  ``alt+1`` ... ``alt+9``.
"""

import sys
from collections.abc import Iterable

from textual import events
from textual._xterm_parser import XTermParser
from textual.driver import Driver
from textual.message import Message

PASTE_START = "\x1b[200~"
PASTE_END = "\x1b[201~"
ESC = "\x1b"
STAND_IN = "\U000f1b1b"  # private use (plane 15): what an ESC in a paste travels as


class TerminalParser(XTermParser):
    """``XTermParser`` with pastes kept whole and Alt+Enter reported as such."""

    def __init__(self, debug: bool = False) -> None:
        super().__init__(debug)
        self._in_paste = False
        self._held = ""  # the start of a possible paste end, split across two reads

    def shield(self, data: str) -> str:
        """``data`` with each ESC inside a bracketed paste replaced by ``STAND_IN``."""
        data, self._held = self._held + data, ""
        out: list[str] = []
        index = 0
        while index < len(data):
            if not self._in_paste:
                start = data.find(PASTE_START, index)
                if start == -1:
                    out.append(data[index:])
                    break
                out.append(data[index : start + len(PASTE_START)])
                index = start + len(PASTE_START)
                self._in_paste = True
                continue
            escape = data.find(ESC, index)
            if escape == -1:
                out.append(data[index:])
                break
            out.append(data[index:escape])
            rest = data[escape:]
            if rest.startswith(PASTE_END):
                out.append(PASTE_END)
                index = escape + len(PASTE_END)
                self._in_paste = False
            elif PASTE_END.startswith(rest):  # cut off mid-way: wait for the next read
                self._held = rest
                break
            else:
                out.append(STAND_IN)
                index = escape + 1
        return "".join(out)

    def feed(self, data: str) -> Iterable[Message]:
        if not data:  # the end of input
            yield from super().feed("")
            return
        for token in super().feed(self.shield(data)):
            if isinstance(token, events.Paste) and STAND_IN in token.text:
                yield events.Paste(token.text.replace(STAND_IN, ESC))
            else:
                yield token

    def _sequence_to_key_events(self, sequence: str, alt: bool = False) -> Iterable[events.Key]:
        if alt and sequence == "\r":
            yield events.Key("alt+enter", None)
            return
        if len(sequence) == 2 and sequence[0] == ESC and sequence[1] in "0123456789":
            yield events.Key(f"alt+{sequence[1]}", None)
            return
        yield from super()._sequence_to_key_events(sequence, alt)


def driver_class() -> type[Driver] | None:
    """The POSIX terminal driver reading input through ``TerminalParser`` (None on
    Windows, whose driver reads keys another way)."""
    if sys.platform == "win32":
        return None
    from textual.drivers import linux_driver

    class ChatDriver(linux_driver.LinuxDriver):
        def run_input_thread(self) -> None:
            # LinuxDriver builds its parser from its module's global name; this driver
            # is the only one reading the terminal, so the name is pointed at ours.
            linux_driver.XTermParser = TerminalParser  # type: ignore[attr-defined]
            super().run_input_thread()

    return ChatDriver
