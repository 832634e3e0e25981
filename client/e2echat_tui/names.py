"""Which member a typed name means: ``NAME``, or ``NAME#TAG`` to pick a namesake.

Names are labels anyone may take, so a command that acts on a member (``/verify``,
``/msg``, ``/kick``...) acts only when the name fits exactly one key, and otherwise says
how to pick one.
"""

from collections.abc import Sequence

from e2echat import Member
from e2echat_tui.commands import CommandError
from e2echat_tui.trust import tag


def named(members: Sequence[Member], name: str) -> list[Member]:
    """The members ``name`` means: ``NAME#TAG`` is a name (or the user's petname for the
    key) and a fingerprint prefix, as names are tagged on screen; any other text is a
    name or a petname (and has no ``#``)."""
    if "#" not in name:
        return [m for m in members if name in (m.name, m.petname)]
    base, _, tagged = name.rpartition("#")
    prefix = tagged.replace(" ", "")
    return [
        m
        for m in members
        if base in (m.name, m.petname)
        and prefix
        and m.fingerprint.replace(" ", "").startswith(prefix)
    ]


def pick_member(members: Sequence[Member], name: str, command: str, missing: str) -> Member:
    """The one member ``name`` means for ``/command``; ``missing`` is the error when none
    fits; several raise an error naming how to type each of them."""
    matches = named(members, name)
    if not matches:
        raise CommandError(missing)
    if len(matches) > 1:
        choices = " or ".join(f"/{command} {m.name}#{tag(m)}" for m in matches)
        if len({tag(m) for m in matches}) < len(matches):  # a ground-out tag
            choices = "add more of the fingerprint after the #: " + ", ".join(
                m.fingerprint for m in matches
            )
        raise CommandError(f"{len(matches)} members are named {name}: {choices}")
    return matches[0]
