"""Room moderation in the TUI: ``/kick``, ``/ban``, ``/unban``, ``/op``, ``/deop``, and
the room info view (``/info``): members with their roles, the epoch, the change log.

The library decides everything from the signed membership log (a member without the
role gets ``NotAllowed``, saying which role it lacks, and nothing changes); this module
only picks the member a typed name means and lays out what the log says. Every name and
description is the sender's text: it is escaped, never read as markup.
"""

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, tzinfo

from rich.console import Group, RenderableType
from rich.style import Style
from rich.text import Text

from e2echat import Member, Room, RoomChanged
from e2echat_tui.commands import Moderation
from e2echat_tui.format import Hanging, counted
from e2echat_tui.names import pick_member
from e2echat_tui.safe import escape_controls

_ROLE_ORDER = {"owner": 0, "admin": 1, "member": 2}
_ROLE_STYLES = {"owner": Style(bold=True, color="#ffaf00"), "admin": Style(color="#5fafff")}


async def moderate(room: Room, action: Moderation, name: str) -> None:
    """Run ``/action name`` in ``room``. A ban is lifted for a key the log bans (named by
    the ban entry that banned it); the other actions are for a current member."""
    if action == "unban":
        banned = {
            change.subject.key: change.subject
            for change in await room.changes()
            if change.kind == "ban"
            and change.subject is not None
            and change.subject.key in room.banned
        }
        missing = f"nobody named {name} is banned from {room.name}"
        await room.unban(pick_member(list(banned.values()), name, action, missing))
        return
    missing = f"no member named {name} in {room.name}"
    member = pick_member(room.member_list, name, action, missing)
    if action == "kick":
        await room.kick(member)
    elif action == "ban":
        await room.ban(member)
    else:
        await room.set_role(member, "admin" if action == "op" else "member")


def info_view(
    room: Room,
    changes: Sequence[RoomChanged[Room]],
    who: Callable[[Member], str],
    timezone: tzinfo | None,
) -> Group:
    """The room info view: access, epoch, log head, members by role, then every change
    of the membership log, oldest first. ``who`` names a member (tagging namesakes).
    A member or change too long for the width wraps under its own text (``Hanging``)."""
    lines: list[RenderableType] = [
        Text.assemble(
            (escape_controls(room.name), Style(bold=True)),
            f" — {room.access} room, epoch {room.epoch}",
        )
    ]
    if room.description:
        lines.append(Text(escape_controls(room.description)))
    length, head = room.log_head
    groups = " ".join(head.hex()[i : i + 4] for i in range(0, 16, 4))
    entries = f"{length:,} entry" if length == 1 else f"{length:,} entries"
    lines.append(Text(f"Membership log: {entries}, head {groups} …"))
    lines.append(
        Text(
            "(every member with this length sees this head, unless the relay forked the log)",
            Style(dim=True),
        )
    )
    if room.frozen:
        frozen = Style(bold=True, color="red")
        lines.append(Hanging(Text("Frozen: ", frozen), Text(escape_controls(room.frozen), frozen)))
    roles = room.roles
    present = {m.key: m for m in room.member_list}
    named = {c.author.key: c.author for c in changes}
    members = [present.get(key) or named.get(key) for key in roles]
    known = [m for m in members if m is not None]
    known.sort(key=lambda m: (_ROLE_ORDER.get(roles[m.key], 3), m.name.casefold()))
    lines += [Text(), Text(counted(len(known), "member"), Style(bold=True))]
    for member in known:
        role = roles[member.key]
        line = Text.assemble(f"{who(member)}  ", (role, _ROLE_STYLES.get(role, Style())))
        lines.append(Hanging(Text("  "), line))
    if room.banned:
        lines.append(Text(f"  banned: {counted(len(room.banned), 'key')}", Style(dim=True)))
    lines += [Text(), Text(counted(len(changes), "change"), Style(bold=True))]
    for change in changes:
        moment = datetime.fromtimestamp(change.created / 1000, UTC).astimezone(timezone)
        lead = Text(f"  {change.position:>3} {moment:%Y-%m-%d %H:%M}  ", Style(dim=True))
        line = Text(escape_controls(change.describe(who)))
        if change.kind in ("kick", "ban", "rotate"):
            line.append(f" (epoch {change.epoch})", Style(dim=True))
        if change.kind == "describe" and change.description is not None:
            line.append(f": {escape_controls(change.description)}")
        lines.append(Hanging(lead, line))
    return Group(*lines, Text())  # a blank line above the Close button
