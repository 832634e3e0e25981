"""Shared fixtures for the TUI tests: a scripted backend and a reproducible app."""

from datetime import UTC, timedelta

import pytest
from e2echat_tui.app import ChatApp
from e2echat_tui.fake import EPOCH, FakeBackend

SIZE = (110, 30)


def populated_backend() -> FakeBackend:
    """alice in an open lobby (with history) and a password room; fixed keys and times."""
    backend = FakeBackend("alice")
    bob = backend.member("bob", verified=True)
    carol = backend.member("carol", status="away", status_text="lunch")
    dave = backend.member("dave", validated=False, status="offline")
    lobby = backend.add_room("lobby", description="Say hello", members=[bob, carol, dave])
    backend.add_room("team", password="hunter2", members=[bob])
    backend.add_room("elsewhere", joined=False, description="not joined yet")
    backend.record(lobby, bob, "hi everyone")
    backend.record(lobby, carol, "hello bob, welcome to the lobby")
    backend.record(lobby, backend.me, "morning!", own=True)
    backend.record(lobby, bob, "@alice did you see the release notes?")
    return backend


def fixed_app(backend: FakeBackend, *, toast: bool = True) -> ChatApp:
    """An app whose every time and key is fixed, for Pilot tests and snapshots."""
    later = EPOCH + timedelta(minutes=10)
    return ChatApp(backend, timezone=UTC, clock=lambda: later, bell=False, toast=toast)


@pytest.fixture
def backend() -> FakeBackend:
    return populated_backend()


@pytest.fixture
def app(backend: FakeBackend) -> ChatApp:
    return fixed_app(backend)
