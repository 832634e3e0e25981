"""``@name`` mentions: resolved to keys against the room roster when a message is written.

The result is a list of member keys that travels inside the encrypted payload, so the
relay never learns who was mentioned, and a receiver needs no name lookup: a mention
is of a key. Names are labels and two members may share one, so ``@name#tag`` (``tag``
the first hex digits of the fingerprint, as shown next to namesakes) picks one key, and
a bare ``@name`` that fits several members is refused rather than guessed. Names may
contain spaces, so the longest member name that follows an ``@`` wins; an ``@word``
naming nobody stays plain text.
"""

from collections.abc import Iterable

from e2echat.client.errors import AmbiguousMention

MIN_TAG = 4
"""Hex digits a ``#tag`` needs: as many as the tags shown beside namesakes."""


def _is_boundary(text: str, index: int) -> bool:
    """Whether a name may end before ``text[index]`` (end of text, or not a word char)."""
    return index >= len(text) or not (text[index].isalnum() or text[index] == "_")


def _tag_at(text: str, index: int) -> str:
    """The hex digits of a ``#tag`` starting at ``text[index]`` (the ``#``), or ""."""
    if not text.startswith("#", index):
        return ""
    end = index + 1
    while end < len(text) and text[end] in "0123456789abcdefABCDEF":
        end += 1
    tag = text[index + 1 : end]
    return tag.lower() if len(tag) >= MIN_TAG and _is_boundary(text, end) else ""


def resolve_mentions(text: str, roster: Iterable[tuple[str, bytes]]) -> tuple[bytes, ...]:
    """The keys of the members that ``text`` mentions, first mention first, no repeats.

    ``roster`` is ``(name, key)`` pairs. An ``@`` counts only at the start or after a
    character that is not part of a word (so ``mail@host`` mentions nobody). Raises
    ``AmbiguousMention`` for a bare ``@name`` that several members go by.
    """
    by_name: dict[str, list[bytes]] = {}
    for name, key in roster:
        keys = by_name.setdefault(name, [])
        if key not in keys:  # a member whose petname is its name is one member
            keys.append(key)
    names = sorted(by_name, key=len, reverse=True)
    found: list[bytes] = []
    start = text.find("@")
    while start != -1:
        if start == 0 or _is_boundary(text, start - 1):
            mentioned = _mentioned(text, start + 1, names, by_name)
            if mentioned is not None and mentioned not in found:
                found.append(mentioned)
        start = text.find("@", start + 1)
    return tuple(found)


def _mentioned(
    text: str, rest: int, names: list[str], by_name: dict[str, list[bytes]]
) -> bytes | None:
    for name in names:
        if not text.startswith(name, rest):
            continue
        end = rest + len(name)
        tag = _tag_at(text, end)
        keys = by_name[name]
        if tag:
            keys = [key for key in keys if key.hex().startswith(tag)]
            if not keys:
                continue  # a tag of nobody by that name: not a mention of it
        elif not _is_boundary(text, end):
            continue
        if len(keys) > 1:
            size = MIN_TAG if not tag else len(tag) + 2
            tags = " or ".join(f"@{name}#{key.hex()[:size]}" for key in sorted(keys))
            raise AmbiguousMention(
                f"{len(by_name[name])} members are named {name!r}: write {tags}"
                " (or pass mentions=) to say which one you mean."
            )
        return keys[0]
    return None
