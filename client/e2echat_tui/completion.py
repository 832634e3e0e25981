"""Tab completion, IRC style: what the word before the cursor may become.

Pure: the composer asks ``complete`` with the text before the cursor and what the room
knows (members, room names), and cycles through the answer on each Tab.

- ``/ver`` at the start of a line completes commands;
- ``/join ta`` and ``#ta`` complete room names;
- a word anywhere (``ca``, ``@ca``) completes the names of the shown room's members as
  a mention, ``@carol``; the arguments of ``/verify`` and ``/unverify`` and the first of
  ``/petname`` complete to bare names.

Names are labels, not identities: when several members share a name, or a name looks
like a contact's, each is offered by key as ``name#tag`` (the first fingerprint group,
as the timeline tags them), which is how a mention picks one key. The list shows each
with its trust marker (``✔``, ``⚠``, ``↻``, ``?``), so cycling onto a look-alike shows.
A name that would need escaping to be shown is never offered: it could not be typed
back.
"""

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from e2echat import Member
from e2echat_tui.commands import COMMANDS
from e2echat_tui.safe import escape_controls
from e2echat_tui.trust import tag, trust_mark

_NAME_ARGUMENT = frozenset({"verify", "unverify"})
_FIRST_NAME_ARGUMENT = frozenset({"petname"})
_ROOM_ARGUMENT = frozenset({"join"})


@dataclass(frozen=True, slots=True)
class Candidate:
    """One completion: ``text`` replaces the word; ``label`` is what the list shows."""

    text: str
    label: str


@dataclass(frozen=True, slots=True)
class Completion:
    """Candidates for the word that starts at ``start`` (an index into the line)."""

    start: int
    candidates: tuple[Candidate, ...]


NOTHING = Completion(0, ())


def _typable(name: str) -> bool:
    return bool(name) and escape_controls(name) == name


def _member_candidates(members: Iterable[Member], prefix: str, *, mention: bool) -> list[Candidate]:
    others = [m for m in members if not m.is_me and _typable(m.name)]
    names = Counter(m.name for m in others)
    wanted = prefix.casefold()
    found: list[Candidate] = []
    lead = "@" if mention else ""
    for member in sorted(others, key=lambda m: (m.name.casefold(), m.key)):
        if not member.name.casefold().startswith(wanted):
            continue
        shared = names[member.name] > 1 or "#" in member.name or bool(member.lookalikes)
        text = f"{lead}{member.name}#{tag(member)}" if shared else f"{lead}{member.name}"
        mark = trust_mark(member)
        label = f"{mark[0] if mark else ''} {text}"  # a Tab more must not pick ⚠ unseen
        label = f"{label}  {member.fingerprint[:19]}" if shared else label
        found.append(Candidate(text + " ", label))
    return found


def _room_candidates(rooms: Iterable[str], prefix: str, lead: str) -> list[Candidate]:
    wanted = prefix.casefold()
    unique = dict.fromkeys(r for r in rooms if _typable(r) and r.casefold().startswith(wanted))
    return [Candidate(f"{lead}{room} ", f"{lead}{room}") for room in sorted(unique)]


def complete(before: str, members: Sequence[Member], rooms: Iterable[str]) -> Completion:
    """What the word ending at the end of ``before`` (the text before the cursor) may
    become, given the shown room's ``members`` and the known room names."""
    start = max(before.rfind(" "), before.rfind("\n")) + 1
    word = before[start:]
    if start == 0 and word.startswith("/") and not word.startswith("//"):
        typed = word[1:].casefold()
        return Completion(
            0,
            tuple(
                Candidate(f"/{spec.name} ", spec.usage)
                for spec in COMMANDS
                if spec.name.startswith(typed)
            ),
        )
    command = before.split(" ", 1)[0][1:].casefold() if before.startswith("/") else ""
    first_argument = len(before[:start].split()) == 1  # "/join  lob": two spaces, still
    if command in _ROOM_ARGUMENT and first_argument:
        return Completion(start, tuple(_room_candidates(rooms, word, "")))
    if word.startswith("#"):
        return Completion(start, tuple(_room_candidates(rooms, word[1:], "#")))
    if command in _NAME_ARGUMENT or (command in _FIRST_NAME_ARGUMENT and first_argument):
        typed = word.removeprefix("@")
        return Completion(start, tuple(_member_candidates(members, typed, mention=False)))
    if not word:
        return NOTHING  # Tab after a space offers nothing: a bare Tab is not a question
    typed = word.removeprefix("@")
    return Completion(start, tuple(_member_candidates(members, typed, mention=True)))
