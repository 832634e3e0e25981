"""Turn messages, members and rooms into styled, escaped terminal text.

Every user-controlled string (names, bodies, room descriptions, notices) goes
through ``escape_controls`` and lands in a ``Segment`` or ``Text`` as plain text.
"""

import functools
import zlib
from collections.abc import Iterable, Mapping
from datetime import datetime, tzinfo
from enum import Enum

from rich.segment import Segment
from rich.style import Style
from rich.text import Text

from e2echat import Member, Message, Room
from e2echat_tui.commands import action_of
from e2echat_tui.files import file_line
from e2echat_tui.lines import Entry
from e2echat_tui.safe import escape_controls

NAME_COLOURS = (
    "#5fafff",
    "#87d787",
    "#d7af5f",
    "#d787d7",
    "#5fd7d7",
    "#ff8787",
    "#afaf5f",
    "#af87ff",
    "#87afaf",
    "#ffaf87",
)
TIME_STYLE = Style(color="#808080")
OWN_NAME_STYLE = Style(color="#c0c0c0", bold=True)
OWN_BODY_STYLE = Style(color="#b0b0b0")
BODY_STYLE = Style()
MENTION_BACKGROUND = Style(bgcolor="#3d3200")
MENTION_BODY_STYLE = Style(bold=True)
ACTION_MARK = Segment("* ", Style(color="#8a8a8a"))
"""Before the sender of a ``/me`` action: ``* alice waves``."""


class Level(Enum):
    """How loud a system line is."""

    INFO = Style(color="#8a8a8a", italic=True)
    WARNING = Style(color="#e0b000")
    ERROR = Style(color="#ff5f5f", bold=True)


STATUS_MARKS = {
    "online": ("●", Style(color="#5fd75f")),
    "away": ("◐", Style(color="#d7af00")),
    "busy": ("⊘", Style(color="#ff5f5f")),
}
OFFLINE_MARK = ("○", Style(color="#6c6c6c"))


@functools.lru_cache(maxsize=4096)
def name_style(key: bytes) -> Style:
    """A stable colour per key, so two people who pick the same name still differ."""
    return Style(color=NAME_COLOURS[zlib.crc32(key) % len(NAME_COLOURS)], bold=True)


Namesakes = Mapping[str, frozenset[bytes]]
"""The keys that go by each name in a room: more than one means a name is shared."""


def namesakes(members: Iterable[Member]) -> Namesakes:
    keys: dict[str, set[bytes]] = {}
    for member in members:
        keys.setdefault(member.name, set()).add(member.key)
    return {name: frozenset(each) for name, each in keys.items()}


def name_tag(member: Member) -> str:
    """A short suffix from the key (the first fingerprint group) that tells namesakes apart."""
    return member.fingerprint.split()[0] if member.fingerprint.strip() else member.key.hex()[:4]


def display_name(member: Member, names: Namesakes) -> str:
    """The escaped name; ``name#tag`` when someone else in the room has the same name.

    Names are labels, not identities: without the tag a newcomer calling itself "bob"
    would read exactly like the bob you know (the colour alone is not enough). A name
    that contains ``#`` is always tagged, so that nobody can call itself "bob#TAG" and
    read like a tagged bob. The tag is a hint (16 bits can be ground out); the safety
    number of ``/verify`` is the proof.
    """
    shown = escape_controls(member.name)
    keys = names.get(member.name)
    if "#" in member.name or (keys is not None and (len(keys) > 1 or member.key not in keys)):
        shown += "#" + escape_controls(name_tag(member))
    return shown


def short_fingerprint(fingerprint: str, groups: int = 4) -> str:
    """The first groups of a fingerprint, enough to recognise oneself at a glance."""
    parts = fingerprint.split()
    return " ".join(parts[:groups]) + (" …" if len(parts) > groups else "")


def counted(count: int, noun: str) -> str:
    """``1 member``, ``2 members``: a count with its noun in the right number."""
    return f"{count:,} {noun}" if count == 1 else f"{count:,} {noun}s"


def clock(moment: datetime, timezone: tzinfo | None) -> str:
    return moment.astimezone(timezone).strftime("%H:%M")


def message_entry(message: Message[Room], timezone: tzinfo | None, names: Namesakes) -> Entry:
    """The timeline entry of a message: own messages muted, mentions of me highlighted;
    ``names`` are the room's namesakes (see ``display_name``)."""
    sender = message.sender
    own = message.own or sender.is_me
    author = Segment(display_name(sender, names), OWN_NAME_STYLE if own else name_style(sender.key))
    mentioned = message.mentions_me and not own
    action = action_of(message.text) if message.file is None else None
    if message.file is not None:
        body = file_line(message.file, message.text)
    else:
        body = escape_controls(message.text if action is None else action, keep_newlines=True)
    time = Segment(clock(message.sent_at, timezone) + " ", TIME_STYLE)
    prefix = (time, author) if action is None else (time, ACTION_MARK, author)
    return Entry(
        prefix=(*prefix, Segment(" ")),
        body=body,
        body_style=OWN_BODY_STYLE if own else MENTION_BODY_STYLE if mentioned else BODY_STYLE,
        background=MENTION_BACKGROUND if mentioned else None,
        message=message if message.file is not None else None,
    )


def system_entry(text: str, moment: datetime, timezone: tzinfo | None, level: Level) -> Entry:
    """A line from the client itself: joins, leaves, key changes, errors, command output."""
    return Entry(
        prefix=(Segment(clock(moment, timezone) + " ", TIME_STYLE), Segment("* ", level.value)),
        body=escape_controls(text, keep_newlines=True),
        body_style=level.value,
    )


def trust_label(member: Member) -> tuple[str, Style]:
    """The member list's trust marker: verified, unverified, or no keys shared."""
    if member.is_me:
        return "you", Style(color="#8a8a8a")
    if not member.validated:
        return "✗ no keys shared", Style(color="#ff5f5f")
    if member.verified:
        return "✔ verified", Style(color="#5fd75f")
    return "? unverified", Style(color="#d7af00")


def member_line(member: Member, names: Namesakes) -> Text:
    """One line of the members panel: presence, coloured name, trust marker."""
    mark, mark_style = STATUS_MARKS.get(member.status, OFFLINE_MARK)
    label, label_style = trust_label(member)
    style = OWN_NAME_STYLE if member.is_me else name_style(member.key)
    line = Text.assemble((mark + " ", mark_style), (display_name(member, names), style))
    line.append("\n  " + label, label_style)
    if member.status_text:
        line.append(" · " + escape_controls(member.status_text), Style(color="#8a8a8a"))
    return line


def room_marker(room: Room) -> str:
    return "🔒" if room.secret else "#"


def topic(room: Room) -> Text:
    """The line above the timeline; an open room says plainly who can read it."""
    text = Text.assemble((f"{room_marker(room)} {escape_controls(room.name)}", Style(bold=True)))
    if room.secret:
        text.append(" · secret room: only members who proved the secret get keys", "#87d787")
    else:
        text.append(" · open room: anyone the relay admits can read new messages", "#d7af00")
    if room.description:
        text.append(" · " + escape_controls(room.description))
    return text
