"""Turn messages, members and rooms into styled, escaped terminal text.

Every user-controlled string (names, bodies, room descriptions, notices) goes
through ``escape_controls`` and lands in a ``Segment`` or ``Text`` as plain text.
"""

import functools
import zlib
from collections.abc import Iterable, Sequence
from datetime import datetime, tzinfo
from enum import Enum

from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
from rich.segment import Segment
from rich.style import Style
from rich.text import Text

from e2echat import Member, Message, Room
from e2echat_tui.commands import action_of
from e2echat_tui.files import file_line
from e2echat_tui.lines import Entry
from e2echat_tui.safe import escape_controls
from e2echat_tui.trust import (
    Labels,
    about,
    marked_name,
    plain_name,
    tag,
    trust_label,
    trust_mark,
)

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
QUOTE_STYLE = Style(color="#8a8a8a")
DELETED_STYLE = Style(color="#6c6c6c", italic=True)
FOOTER_STYLE = Style(color="#8a8a8a")
REACTION_STYLE = Style(color="#d0d0d0")
MY_REACTION_STYLE = Style(color="#5fafff", bold=True)
UNREAD_LINE_STYLE = Style(color="#ff8787", bold=True)
PENDING_STYLE = Style(color="#d7af00")
FAILED_STYLE = Style(color="#ff5f5f", bold=True)
PENDING_MARK = "◷ sending…"
"""Under our message while the relay has not confirmed it (offline, reconnecting, slow)."""
FAILED_MARK = "✗ not sent: "
"""Under our message the library gave up sending, before its reason."""
FOOTER_NAMES = 3
"""Up to this many members who reacted with one emoji are named; more are counted."""


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


def short_fingerprint(fingerprint: str, groups: int = 4) -> str:
    """The first groups of a fingerprint, enough to recognise oneself at a glance."""
    parts = fingerprint.split()
    return " ".join(parts[:groups]) + (" …" if len(parts) > groups else "")


def counted(count: int, noun: str) -> str:
    """``1 member``, ``2 members``: a count with its noun in the right number."""
    return f"{count:,} {noun}" if count == 1 else f"{count:,} {noun}s"


def clock(moment: datetime, timezone: tzinfo | None) -> str:
    return moment.astimezone(timezone).strftime("%H:%M")


def name_segments(member: Member, shown: Labels, style: Style | None = None) -> list[Segment]:
    """A member's trust marker and (maybe tagged) name, each in its own style."""
    mark = trust_mark(member)
    colour = style or (OWN_NAME_STYLE if member.is_me else name_style(member.key))
    name = Segment(plain_name(member, shown), colour)
    return [name] if mark is None else [Segment(*mark), name]


def message_entry(
    message: Message[Room],
    timezone: tzinfo | None,
    shown: Labels,
    readers: Sequence[Member] = (),
    failed: str | None = None,
) -> Entry:
    """The timeline entry of a message: own messages muted, mentions of me highlighted;
    ``shown`` are the room's labels (see ``trust.needs_tag``). The sender's marker is
    its trust when the entry is made (``MessageActions.remark`` makes it again when that
    trust changes). Our message the relay has not confirmed (seq 0) says so under it:
    sending, or not sent and why (``failed``: the library gave up)."""
    sender = message.sender
    own = message.own or sender.is_me
    author = name_segments(sender, shown, OWN_NAME_STYLE if own else None)
    mentioned = message.mentions_me and not own and not message.deleted
    action = action_of(message.text) if message.file is None else None
    style = OWN_BODY_STYLE if own else MENTION_BODY_STYLE if mentioned else BODY_STYLE
    if message.deleted:
        body, style, action = "message deleted", DELETED_STYLE, None
    elif message.unsupported is not None:
        body, style = f"unsupported message ({escape_controls(message.unsupported)})", DELETED_STYLE
    elif message.file is not None:
        body = file_line(message.file, message.text)
    else:
        body = escape_controls(message.text if action is None else action, keep_newlines=True)
    time = Segment(clock(message.sent_at, timezone) + " ", TIME_STYLE)
    prefix = (time, *author) if action is None else (time, ACTION_MARK, *author)
    return Entry(
        prefix=(*prefix, Segment(" ")),
        body=body,
        body_style=style,
        background=MENTION_BACKGROUND if mentioned else None,
        message=message,
        quote=quote_line(message, shown),
        footer=(
            sending_line(failed)
            if own and not message.seq
            else ()
            if message.deleted
            else footer_line(message, shown, readers)
        ),
    )


def sending_line(failed: str | None) -> tuple[Segment, ...]:
    """The line below our message the relay has not confirmed: still sending, or the
    reason the library gave up (text from the relay: escaped)."""
    if failed is None:
        return (Segment(PENDING_MARK, PENDING_STYLE),)
    return (Segment(FAILED_MARK + escape_controls(failed), FAILED_STYLE),)


def quote_line(message: Message[Room], shown: Labels) -> tuple[Segment, ...]:
    """The line above a reply: whom and what it answers (one line, at most 80 chars)."""
    quote = message.reply_to
    if quote is None:
        return ()
    if not quote.available or quote.sender is None:
        return (Segment("↱ original not available", QUOTE_STYLE),)
    who = name_segments(quote.sender, shown)
    if quote.deleted:
        return (Segment("↱ ", QUOTE_STYLE), *who, Segment(": message deleted", DELETED_STYLE))
    excerpt = escape_controls(quote.excerpt)
    return (Segment("↱ ", QUOTE_STYLE), *who, Segment(": " + excerpt, QUOTE_STYLE))


def footer_line(
    message: Message[Room], shown: Labels, readers: Sequence[Member] = ()
) -> tuple[Segment, ...]:
    """The line below a message: "(edited)", its reactions, with who reacted while they
    are few (``(edited) · 👍 bob, carol · 🎉 5``; ours stand out), and the members who
    read up to it, by their receipts (``read by ✔bob``)."""
    parts: list[Segment] = []
    if message.edited:
        parts.append(Segment("(edited)", FOOTER_STYLE))
    for reaction in message.reactions:
        if parts:
            parts.append(Segment(" · ", FOOTER_STYLE))
        mine = any(member.is_me for member in reaction.members)
        if reaction.count <= FOOTER_NAMES:
            who = ", ".join(marked_name(member, shown) for member in reaction.members)
        else:
            who = f"{reaction.count:,}"
        text = f"{escape_controls(reaction.emoji)} {who}"
        parts.append(Segment(text, MY_REACTION_STYLE if mine else REACTION_STYLE))
    if readers:
        if parts:
            parts.append(Segment(" · ", FOOTER_STYLE))
        if len(readers) <= FOOTER_NAMES:
            who = ", ".join(marked_name(member, shown) for member in readers)
        else:
            who = f"{len(readers):,} members"
        parts.append(Segment(f"read by {who}", FOOTER_STYLE))
    return tuple(parts)


def unread_line(count: int, moment: datetime, timezone: tzinfo | None) -> Entry:
    """The line above the first message that arrived since the room was last read."""
    text = f"── {counted(count, 'new message')} ──"
    prefix = (Segment(clock(moment, timezone) + " ", TIME_STYLE),)
    return Entry(prefix=prefix, body=text, body_style=UNREAD_LINE_STYLE)


def system_entry(text: str, moment: datetime, timezone: tzinfo | None, level: Level) -> Entry:
    """A line from the client itself: joins, leaves, key changes, errors, command output."""
    return Entry(
        prefix=(Segment(clock(moment, timezone) + " ", TIME_STYLE), Segment("* ", level.value)),
        body=escape_controls(text, keep_newlines=True),
        body_style=level.value,
    )


def member_line(member: Member, shown: Labels) -> Text:
    """One line of the members panel: presence, marker and name, then the trust spelled
    out (with whose name it resembles), and the status text."""
    mark, mark_style = STATUS_MARKS.get(member.status, OFFLINE_MARK)
    label, label_style = trust_label(member)
    line = Text.assemble((mark + " ", mark_style))
    for segment in name_segments(member, shown):
        line.append(segment.text, segment.style)
    line.append("\n  " + label, label_style)
    if member.status_text:
        line.append(" · " + escape_controls(member.status_text), Style(color="#8a8a8a"))
    note = about(member)
    if note is not None:
        line.append("\n  " + note, Style(color="#8a8a8a"))
    return line


def room_marker(room: Room) -> str:
    return "🔒" if room.secret else "#"


def peer_of(room: Room, known: Iterable[Member] = ()) -> Member | None:
    """The other person of a direct conversation, from its roster or ``known`` members."""
    if room.peer is None:
        return None
    return next((m for m in [*room.member_list, *known] if m.key == room.peer), None)


def peer_label(room: Room, known: Iterable[Member] = ()) -> str | None:
    """A direct conversation's other person as ``name#tag`` (so a namesake's
    conversation never reads like the real one's); None for any other room."""
    if room.peer is None:
        return None
    member = peer_of(room, known)
    if member is None:
        return room.peer.hex()[:8]
    mark = trust_mark(member)
    label = f"{escape_controls(member.display_name)}#{escape_controls(tag(member))}"
    return (mark[0] if mark else "") + label


def topic(room: Room, known: Iterable[Member] = ()) -> Text:
    """The line above the timeline; an open room says plainly who can read it, a direct
    conversation names the other person (with their trust), never the room's name."""
    if room.peer is not None:
        return _direct_topic(room, known)
    text = Text.assemble((f"{room_marker(room)} {escape_controls(room.name)}", Style(bold=True)))
    if room.secret:
        text.append(" · secret room: only members who proved the secret get keys", "#87d787")
    else:
        text.append(" · open room: anyone the relay admits can read new messages", "#d7af00")
    if room.description:
        text.append(" · " + escape_controls(room.description))
    return text


def _direct_topic(room: Room, known: Iterable[Member]) -> Text:
    member = peer_of(room, known)
    text = Text.assemble(("@ " + (peer_label(room, known) or ""), Style(bold=True)))
    if member is not None:
        label, style = trust_label(member)
        text.append(" " + label, style)
        if member.warning:
            text.append(" · " + escape_controls(member.warning), Style(color="#ff5f5f"))
    text.append(" · direct conversation: only your two keys can read it", Style(color="#87d787"))
    return text


class Hanging:
    """One line of a view, ``lead`` then ``value``: where the value is too long for the
    width, its continuation lines start under its first character, keeping the lead's
    column clear (the room info view's positions and dates, say). On a screen too narrow
    for that, it wraps as one text."""

    MIN_WIDTH = 16
    """The least room the value needs beside the lead to wrap under itself."""

    def __init__(self, lead: Text, value: Text) -> None:
        self.lead = lead
        self.value = value

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        indent = self.lead.cell_len
        width = options.max_width - indent
        if width < self.MIN_WIDTH:
            yield Text.assemble(self.lead, self.value)
            return
        for index, line in enumerate(self.value.wrap(console, width)):
            yield Text.assemble(self.lead if index == 0 else " " * indent, line)

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        value = Measurement.get(console, options, self.value)
        indent = self.lead.cell_len
        return Measurement(indent + value.minimum, indent + value.maximum)
