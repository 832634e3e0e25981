"""docs/bots.md names every event the library exports, with its fields in order."""

import dataclasses
from pathlib import Path

import e2echat

GUIDE = Path(__file__).parents[2] / "docs" / "bots.md"


def test_every_exported_event_is_in_the_guide_with_its_fields() -> None:
    text = " ".join(GUIDE.read_text(encoding="utf-8").split())  # a signature may wrap
    exported = (getattr(e2echat, name) for name in e2echat.__all__)
    events = [
        kind
        for kind in exported
        if isinstance(kind, type) and issubclass(kind, e2echat.Event) and kind is not e2echat.Event
    ]
    assert e2echat.PresenceChanged in events
    signatures = [
        f"{kind.__name__}({', '.join(f.name for f in dataclasses.fields(kind))})" for kind in events
    ]
    assert [s for s in signatures if f"`{s}`" not in text] == []
