"""Redacted views of records that hold secrets or plaintext.

``__repr__`` is overridden where such records are defined, but rich's pretty printer
(which the TUI's logging uses) renders msgspec structs field by field through
``__rich_repr__`` and never calls ``__repr__``. Every secret-holding struct therefore
also defines ``__rich_repr__`` with ``redacted_fields``, so no printer shows a key.
"""

from collections.abc import Collection
from typing import Any

import msgspec


class _Redacted:
    """Stands in for a secret field: it prints as ``<redacted>``."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<redacted>"


REDACTED = _Redacted()


def redacted_fields(struct: msgspec.Struct, secret: Collection[str]) -> list[tuple[str, Any]]:
    """``(field, value)`` pairs of ``struct`` with the ``secret`` fields replaced."""
    return [
        (name, REDACTED if name in secret else getattr(struct, name))
        for name in struct.__struct_fields__
    ]
