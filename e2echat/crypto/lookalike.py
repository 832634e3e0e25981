"""Namesakes and look-alikes: names that could make one key pass for another.

A display name is a label anyone may pick, so two keys can carry the same name, or names
that render alike ("alice" with a Cyrillic U+0430 for its "a", in full-width letters,
or "a1ice"). Such a name is flagged, never trusted: the user interface says whose name
it resembles and shows the fingerprint tag. Confusability is Unicode UTS #39: two names
are look-alikes when their skeletons are equal. The skeleton comes from ``disarm`` (its TR39 data,
case-folded, with the identifier digit classes 1/l/I and 0/O), so the table follows
Unicode releases without being copied here.
"""

import functools
from collections import defaultdict
from collections.abc import Iterable
from typing import NamedTuple

import disarm


@functools.lru_cache(maxsize=65536)  # a roster's names come back on every refresh
def name_skeleton(name: str) -> str:
    """The UTS #39 skeleton of ``name``: equal skeletons render alike. Not for display."""
    return disarm.skeleton_key(name, digit_policy="tr39", on_empty="\ufffd")


def is_mixed_script(name: str) -> bool:
    """Whether ``name`` mixes letters of several scripts (Cyrillic U+0430 in "alice")."""
    return disarm.is_mixed_script(name)


class Resemblance(NamedTuple):
    """``other``'s name equals (``same_name``) or looks like this key's name."""

    other: bytes
    same_name: bool
    other_verified: bool


class NamedKey(NamedTuple):
    """A key with the name it is known by, and whether the user verified it."""

    key: bytes
    name: str
    verified: bool = False


def resemblances(
    subjects: Iterable[NamedKey], references: Iterable[NamedKey]
) -> dict[bytes, tuple[Resemblance, ...]]:
    """For each subject, the other keys among ``references`` whose names it resembles.

    ``subjects`` are the keys being shown (a room's members), ``references`` every key
    whose name must not be borrowed (the same members, verified contacts, petnamed
    contacts). Names are namesakes when equal up to case, look-alikes when their
    skeletons are equal. Subjects that resemble no one are left out. Verified
    references come first, so "not the alice you verified" is the first thing said.
    """
    by_skeleton: dict[str, dict[bytes, NamedKey]] = defaultdict(dict)
    for ref in references:
        known = by_skeleton[name_skeleton(ref.name)]
        old = known.get(ref.key)
        if old is None or (ref.verified and not old.verified):
            known[ref.key] = ref
    found: dict[bytes, tuple[Resemblance, ...]] = {}
    for subject in subjects:
        folded = subject.name.casefold()
        matches = [
            Resemblance(ref.key, ref.name.casefold() == folded, ref.verified)
            for ref in by_skeleton.get(name_skeleton(subject.name), {}).values()
            if ref.key != subject.key
        ]
        if matches:
            matches.sort(key=lambda r: (not r.other_verified, not r.same_name, r.other))
            found[subject.key] = tuple(matches)
    return found
