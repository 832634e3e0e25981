"""Namesakes and look-alikes: names that could make one key pass for another.

A display name is a label anyone may pick, so two keys can carry the same name, or names
that render alike ("alice" with a Cyrillic U+0430 for its "a", in full-width letters,
or "a1ice"). Such a name is flagged, never trusted: the user interface says whose name
it resembles and shows the fingerprint tag. Confusability is Unicode UTS #39: two names
are look-alikes when they share a skeleton. The skeleton comes from ``disarm`` (its TR39
data, case-folded, with the identifier digit classes 1/l/I and 0/O), so the table follows
Unicode releases without being copied here. That skeleton takes a capital I for an l
before it folds case, so "ALICE" gets "allce" and would pass for no "alice"; folding
case first would lose "Ian" for "lan". A name therefore has two skeletons, that of the
name as written and that of the name case-folded after NFKC, and the relation is not
transitive: "Ian" looks like "lan" and like "ian", which do not look alike.
"""

import functools
import unicodedata
from collections import defaultdict
from collections.abc import Iterable
from typing import NamedTuple

import disarm


@functools.lru_cache(maxsize=65536)  # a roster's names come back on every refresh
def name_skeletons(name: str) -> tuple[str, ...]:
    """The UTS #39 skeletons of ``name`` as written and case-folded after NFKC (one when
    they are equal): names that share one render alike. Not for display."""
    written = _skeleton(name)
    folded = _skeleton(unicodedata.normalize("NFKC", name).casefold())
    return (written,) if folded == written else (written, folded)


def _skeleton(text: str) -> str:
    return disarm.skeleton_key(text, digit_policy="tr39", on_empty="\ufffd")


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
    contacts). Names are namesakes when equal up to case, look-alikes when they share a
    skeleton. Subjects that resemble no one are left out. A reference listed more than
    once (a shown key and the contact it is) counts once: verified, or a namesake, if it
    is under any of its names. Verified references come first, so "not the alice you
    verified" is the first thing said.
    """
    by_skeleton: dict[str, list[NamedKey]] = defaultdict(list)
    for ref in references:
        for skeleton in name_skeletons(ref.name):
            by_skeleton[skeleton].append(ref)
    found: dict[bytes, tuple[Resemblance, ...]] = {}
    for subject in subjects:
        folded = subject.name.casefold()
        matches: dict[bytes, Resemblance] = {}
        for skeleton in name_skeletons(subject.name):
            for ref in by_skeleton.get(skeleton, ()):
                if ref.key == subject.key:
                    continue
                seen = matches.get(ref.key, Resemblance(ref.key, False, False))
                matches[ref.key] = Resemblance(
                    ref.key,
                    seen.same_name or ref.name.casefold() == folded,
                    seen.other_verified or ref.verified,
                )
        if matches:
            ordered = sorted(
                matches.values(), key=lambda r: (not r.other_verified, not r.same_name, r.other)
            )
            found[subject.key] = tuple(ordered)
    return found
