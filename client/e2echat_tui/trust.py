"""How trust shows: one marker before every name, worked out from the key alone.

An identity is its key; a name is a label anyone can pick. So every place that shows a
member shows, before its name, what this client knows of that key:

- ``✔`` the user verified this key (compared safety numbers);
- ``⚠`` its name equals or looks like the name of a verified or petnamed contact, or
  of another member (the library's ``Member.lookalikes``), or mixes scripts;
- ``↻`` a new key that a successor statement links to a key we knew, not verified;
- ``?`` any other key: unverified.

The user's own petname for a key is shown instead of the name the key chose. A name
that could pass for another is tagged with the first fingerprint group (``alice#9a92``).
Markers are plain characters in plain segments: nothing here is parsed as markup.
"""

from collections.abc import Iterable, Mapping

from rich.style import Style

from e2echat import Member
from e2echat_tui.safe import escape_controls

VERIFIED = ("✔", Style(color="#5fd75f", bold=True))
LOOKALIKE = ("⚠", Style(color="#ff5f5f", bold=True))
NEW_KEY = ("↻", Style(color="#d7af00", bold=True))
UNVERIFIED = ("?", Style(color="#8a8a5f"))

Labels = Mapping[str, frozenset[bytes]]
"""The keys shown under each label (petname or own name) in a room: more than one means
two people would read alike."""


def labels(members: Iterable[Member]) -> Labels:
    """The keys behind each shown label of ``members``."""
    keys: dict[str, set[bytes]] = {}
    for member in members:
        keys.setdefault(member.display_name, set()).add(member.key)
    return {label: frozenset(each) for label, each in keys.items()}


def trust_mark(member: Member) -> tuple[str, Style] | None:
    """The marker before ``member``'s name (None for the user themself)."""
    if member.is_me:
        return None
    if member.verified:
        return VERIFIED
    if member.lookalikes or member.mixed_script:
        return LOOKALIKE
    if member.predecessor is not None:
        return NEW_KEY
    return UNVERIFIED


def tag(member: Member) -> str:
    """The first fingerprint group: what tells two keys of one name apart."""
    return member.fingerprint.split()[0] if member.fingerprint.strip() else member.key.hex()[:4]


def needs_tag(member: Member, shown: Labels) -> bool:
    """Whether ``member``'s label alone could be mistaken for someone else's: it is shared
    in the room, resembles a contact's, mixes scripts, or contains ``#`` (so nobody can
    call itself "bob#TAG" and read like a tagged bob)."""
    label = member.display_name
    keys = shown.get(label)
    if "#" in label or member.lookalikes or member.mixed_script:
        return True
    return keys is not None and (len(keys) > 1 or member.key not in keys)


def plain_name(member: Member, shown: Labels) -> str:
    """The escaped label, tagged when it needs to be; no marker."""
    label = escape_controls(member.display_name)
    return f"{label}#{escape_controls(tag(member))}" if needs_tag(member, shown) else label


def marked_name(member: Member, shown: Labels) -> str:
    """The marker and the escaped, maybe tagged, label: ``✔bob``, ``⚠alice#9a92``."""
    mark = trust_mark(member)
    return (mark[0] if mark else "") + plain_name(member, shown)


def trust_label(member: Member) -> tuple[str, Style]:
    """The trust marker spelled out, for the members panel and the verify dialog; a key
    we share nothing with (a secret room's unproved member) says so first."""
    if member.is_me:
        return "you", Style(color="#8a8a8a")
    if not member.verified and (member.lookalikes or member.mixed_script):
        return "⚠ " + escape_controls(member.warning or "look-alike"), LOOKALIKE[1]
    if not member.validated:
        return "✗ no keys shared", Style(color="#ff5f5f")
    if member.verified:
        carried = member.predecessor is not None and member.predecessor.verified
        return "✔ verified" + (" (carried to a new key)" if carried else ""), VERIFIED[1]
    if member.predecessor is not None:
        old = member.predecessor
        old_name = f"{escape_controls(old.name)}#{old.fingerprint.split()[0]}"
        return f"↻ new key of {old_name}, unverified", NEW_KEY[1]
    return "? unverified", UNVERIFIED[1]


def about(member: Member) -> str | None:
    """What else to say of ``member`` where there is room: whose name it resembles (even
    when verified), and the name it chose when a petname is shown instead."""
    notes: list[str] = []
    if member.petname is not None and member.petname != member.name:
        notes.append("calls itself " + escape_controls(member.name))
    if member.verified and member.lookalikes:
        notes.append(escape_controls(member.warning or ""))
    return "; ".join(notes) if notes else None
