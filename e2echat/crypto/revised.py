"""Dicts that remember which of their keys changed since a base dict, so a record's
roster written to the store writes the changed members' rows without comparing all."""

from collections.abc import Iterable, Mapping
from typing import TypeVar

K = TypeVar("K")
V = TypeVar("V")

MAX_TRACKED = 64
"""Changed keys a revision remembers at most; beyond, it is compared whole on write (a
log validated from its start changes every member once and is written once)."""


class Revised(dict[K, V]):
    """A dict made from ``base`` by setting or dropping the keys in ``changed``. A
    revision of a revision keeps the first base and every key changed since it. With no
    base, it is a base itself (``changed`` empty: stored as it is) or not known (None).
    Never changed in place, as every record's dict."""

    __slots__ = ("base", "changed")

    base: Mapping[K, V] | None
    changed: frozenset[K] | None


def revised(
    base: Mapping[K, V], updates: Mapping[K, V] | None = None, removed: Iterable[K] = ()
) -> dict[K, V]:
    """A copy of ``base`` with ``updates`` set and ``removed`` dropped, that remembers it."""
    result: Revised[K, V] = Revised(base)
    if updates:
        result.update(updates)
    gone = frozenset(removed)
    for key in gone:
        result.pop(key, None)
    changed: frozenset[K] | None = gone | (updates or {}).keys()
    root: Mapping[K, V] | None = base
    if isinstance(base, Revised) and base.base is not None:
        root, changed = base.base, base.changed | changed  # type: ignore[operator]
    elif isinstance(base, Revised) and base.changed is None:
        root = None
    if root is None or changed is None or len(changed) > MAX_TRACKED:
        root, changed = None, None
    result.base, result.changed = root, changed
    return result


def changed_since(values: Mapping[K, V], stored: Mapping[K, V]) -> frozenset[K] | None:
    """The keys in which ``values`` may differ from ``stored``, if known (None: not)."""
    if values is stored:
        return frozenset()
    if isinstance(values, Revised) and values.base is stored:
        return values.changed
    return None


def settle(values: Mapping[K, V]) -> None:
    """``values`` was stored: revisions made from it now count from it."""
    if isinstance(values, Revised):
        values.base, values.changed = None, frozenset()
