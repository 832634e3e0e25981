"""``@name`` mentions: resolved against the room roster when a message is written.

The result is a list of member keys that travels inside the encrypted payload, so the
relay never learns who was mentioned, and a receiver needs no name lookup (names are
labels; two members may even share one). Names may contain spaces, so the longest
member name that follows an ``@`` wins; an ``@word`` naming nobody stays plain text.
"""

from collections.abc import Iterable


def _is_boundary(text: str, index: int) -> bool:
    """Whether a name may end before ``text[index]`` (end of text, or not a word char)."""
    return index >= len(text) or not (text[index].isalnum() or text[index] == "_")


def resolve_mentions(text: str, roster: Iterable[tuple[str, bytes]]) -> tuple[bytes, ...]:
    """The keys of the members that ``text`` mentions, first mention first, no repeats.

    ``roster`` is ``(name, key)`` pairs. An ``@`` counts only at the start or after a
    character that is not part of a word (so ``mail@host`` mentions nobody).
    """
    by_length = sorted(roster, key=lambda member: len(member[0]), reverse=True)
    found: list[bytes] = []
    start = text.find("@")
    while start != -1:
        if start == 0 or _is_boundary(text, start - 1):
            rest = start + 1
            for name, key in by_length:
                end = rest + len(name)
                if text.startswith(name, rest) and _is_boundary(text, end):
                    if key not in found:
                        found.append(key)
                    break
        start = text.find("@", start + 1)
    return tuple(found)
