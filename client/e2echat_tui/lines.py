"""Timeline entries and their layout into terminal lines, without any widget.

A room can hold 10,000 messages, so the timeline is virtual: each entry knows how
many lines it takes at a given width (one ``cell_len`` for the common short message)
and only the entries on screen are turned into ``Strip`` objects, cached per width.
Text arrives here already escaped (``safe.escape_controls``) and is placed into
``Segment`` objects as plain strings: nothing is ever parsed as markup.
"""

import re
from bisect import bisect_right
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from itertools import accumulate

from rich.cells import cell_len, get_character_cell_size
from rich.segment import Segment
from rich.style import Style
from textual.strip import Strip

from e2echat import Message, Room

_TOKEN = re.compile(r"\S+|\s+")
_MIN_BODY_WIDTH = 8


@dataclass(frozen=True, slots=True)
class Entry:
    """One timeline item: a message or a system line, already escaped and styled;
    ``message`` is the message it shows (to reply to, edit, react to, download...).

    ``quote`` (the message a reply answers) follows the prefix on the first line, the
    body then starting on the next; ``footer`` is a line below the body ("(edited)",
    reactions). Both are cut to the width, never wrapped."""

    prefix: tuple[Segment, ...]
    body: str
    body_style: Style
    background: Style | None = None
    message: Message[Room] | None = None
    quote: tuple[Segment, ...] = ()
    footer: tuple[Segment, ...] = ()

    @property
    def prefix_width(self) -> int:
        return sum(segment.cell_length for segment in self.prefix)

    @property
    def extra_lines(self) -> int:
        return bool(self.quote) + bool(self.footer)


def wrap_cells(text: str, first: int, rest: int) -> list[str]:
    """Word-wrap ``text`` into lines of at most ``first`` cells, then ``rest`` cells.

    Line feeds always break; spaces at a break are dropped; a word wider than a line
    is cut at character boundaries (a double-width character is never split).
    """
    first, rest = max(first, 1), max(rest, 1)
    lines: list[str] = []
    line: list[str] = []
    used = 0

    def flush() -> None:
        nonlocal used
        lines.append("".join(line).rstrip(" "))
        line.clear()
        used = 0

    for index, paragraph in enumerate(text.split("\n")):
        if index:
            flush()
        for token in _TOKEN.findall(paragraph):
            width = cell_len(token)
            avail = rest if lines else first
            if used + width <= avail:
                line.append(token)
                used += width
            elif token.isspace():
                if line:
                    flush()
            elif line and width <= rest:
                flush()
                line.append(token)
                used = width
            else:
                for char in token:
                    char_width = get_character_cell_size(char)
                    if line and used + char_width > (rest if lines else first):
                        flush()
                    line.append(char)
                    used += char_width
    flush()
    return lines


def _indent(entry: Entry, width: int) -> int:
    """Continuation lines hang under the body, unless that leaves too little room."""
    indent = entry.prefix_width
    return indent if width - indent >= _MIN_BODY_WIDTH else 0


def _wrap(entry: Entry, width: int) -> list[str]:
    """The body's lines (all indented under the prefix when a quote line comes first)."""
    first = width - (_indent(entry, width) if entry.quote else entry.prefix_width)
    if "\n" not in entry.body and cell_len(entry.body) <= first:
        return [entry.body]
    return wrap_cells(entry.body, first, width - _indent(entry, width))


def line_count(entry: Entry, width: int) -> int:
    """How many lines ``entry`` takes at ``width`` (cheap for one-line messages)."""
    return len(_wrap(entry, width)) + entry.extra_lines


def render_entry(entry: Entry, width: int) -> list[Strip]:
    """The strips of ``entry`` at ``width``, the background (if any) filling each line."""
    indent = _indent(entry, width)
    lines: list[list[Segment]] = []
    if entry.quote:
        lines.append([*entry.prefix, *entry.quote])
    for number, text in enumerate(_wrap(entry, width)):
        lead = list(entry.prefix) if number == 0 and not entry.quote else [Segment(" " * indent)]
        lines.append([*lead, Segment(text, entry.body_style)])
    if entry.footer:
        lines.append([Segment(" " * indent), *entry.footer])
    strips: list[Strip] = []
    for segments in lines:
        strip = Strip(segments).crop(0, width)
        if entry.background is not None:
            strip = strip.apply_style(entry.background).extend_cell_length(width, entry.background)
        strips.append(strip)
    return strips


class RoomLog:
    """A room's scrollback: entries, their line counts at one width, a strip cache.

    At most ``limit`` entries are kept; the oldest are dropped in batches so an
    append stays O(1) amortised even at the limit.
    """

    CACHE_SIZE = 512

    def __init__(self, limit: int = 10_000) -> None:
        self.limit = limit
        self.entries: list[Entry] = []
        self._width = 0
        self._counts: list[int] = []
        self._starts: list[int] = []
        self._total = 0
        self._dropped = 0  # entries dropped so far: cache keys are absolute numbers
        self._cache: OrderedDict[int, list[Strip]] = OrderedDict()

    @property
    def line_count(self) -> int:
        return self._total

    def set_width(self, width: int) -> None:
        """Lay everything out again for a new width (no-op if unchanged)."""
        if width == self._width:
            return
        self._width = width
        self._cache.clear()
        self._counts = [line_count(entry, width) for entry in self.entries] if width else []
        self._reindex()

    def _reindex(self) -> None:
        self._starts = [0, *accumulate(self._counts)]
        self._total = self._starts.pop()

    def append(self, entry: Entry) -> None:
        """Add one entry at the bottom."""
        self.entries.append(entry)
        if self._width:
            count = line_count(entry, self._width)
            self._counts.append(count)
            self._starts.append(self._total)
            self._total += count
        if len(self.entries) > self.limit + max(self.limit // 10, 1):
            self._trim()

    def extend(self, entries: list[Entry]) -> None:
        for entry in entries:
            self.append(entry)

    def prepend(self, entries: list[Entry]) -> None:
        """Add older entries at the top (as many as the limit leaves room for)."""
        entries = entries[max(len(entries) - (self.limit - len(self.entries)), 0) :]
        if not entries:
            return
        self.entries[:0] = entries
        if self._width:
            self._counts[:0] = [line_count(entry, self._width) for entry in entries]
            self._reindex()
        self._dropped -= len(entries)  # keeps the cache keys of the newer entries valid

    def _trim(self) -> None:
        excess = len(self.entries) - self.limit
        del self.entries[:excess]
        if self._width:
            del self._counts[:excess]
            self._reindex()
        self._dropped += excess
        self._cache.clear()

    def replace(self, index: int, entry: Entry) -> None:
        """Put ``entry`` in place of entry ``index`` (an edit, a delete, a reaction)."""
        self.entries[index] = entry
        self._cache.pop(self._dropped + index, None)
        if self._width:
            self._counts[index] = line_count(entry, self._width)
            self._reindex()

    def insert(self, index: int, entry: Entry) -> None:
        """Put ``entry`` before entry ``index`` (the "new messages" line)."""
        self.entries.insert(index, entry)
        self._cache.clear()
        if self._width:
            self._counts.insert(index, line_count(entry, self._width))
            self._reindex()

    def remove(self, index: int) -> None:
        """Take entry ``index`` out."""
        del self.entries[index]
        self._cache.clear()
        if self._width:
            del self._counts[index]
            self._reindex()

    def find(self, message_id: bytes) -> int | None:
        """The index of the entry showing the message ``message_id`` (newest first)."""
        if not message_id:
            return None
        return self._newest(lambda message: message.id == message_id)

    def find_sent(self, send_id: int) -> int | None:
        """The index of the entry showing our message ``send_id`` (``Message.send_id``:
        pending or confirmed), newest first."""
        if not send_id:
            return None
        return self._newest(lambda message: message.send_id == send_id)

    def _newest(self, matches: Callable[[Message[Room]], bool]) -> int | None:
        for index in range(len(self.entries) - 1, -1, -1):
            message = self.entries[index].message
            if message is not None and matches(message):
                return index
        return None

    def span(self, index: int) -> range:
        """The lines entry ``index`` takes (empty before the first layout)."""
        if not self._width or not 0 <= index < len(self.entries):
            return range(0)
        start = self._starts[index]
        return range(start, start + self._counts[index])

    def line(self, y: int) -> Strip | None:
        """Line ``y`` of the laid-out log, or None below the end."""
        if not 0 <= y < self._total:
            return None
        index = bisect_right(self._starts, y) - 1
        return self._strips(index)[y - self._starts[index]]

    def _strips(self, index: int) -> list[Strip]:
        key = self._dropped + index
        strips = self._cache.get(key)
        if strips is None:
            strips = render_entry(self.entries[index], self._width)
            self._cache[key] = strips
            if len(self._cache) > self.CACHE_SIZE:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(key)
        return strips
