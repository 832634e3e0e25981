"""Shared fixtures for the TUI tests: a scripted library double and a reproducible app."""

from datetime import UTC, timedelta

import pytest
from e2echat_tui.app import ChatApp
from e2echat_tui.config import Preferences

from .fake import EPOCH, FakeChat

SIZE = (110, 30)


def populated_chat() -> FakeChat:
    """alice in an open lobby (with history) and a password room; fixed keys and times."""
    chat = FakeChat("alice")
    bob = chat.member("bob", verified=True)
    carol = chat.member("carol", status="away", status_text="lunch")
    dave = chat.member("dave", validated=False, status="offline")
    lobby = chat.add_room("lobby", description="Say hello", members=[bob, carol, dave])
    chat.add_room("team", password="hunter2", members=[bob])
    chat.add_room("elsewhere", joined=False, description="not joined yet")
    chat.record(lobby, bob, "hi everyone")
    chat.record(lobby, carol, "hello bob, welcome to the lobby")
    chat.record(lobby, chat.me, "morning!", own=True)
    chat.record(lobby, bob, "@alice did you see the release notes?")
    return chat


class FixedApp(ChatApp):
    """A ChatApp that looks the same however slow the machine: its cursor does not blink
    and its toasts stay up for an hour (a screenshot taken late must not catch the
    cursor off or a toast gone)."""

    NOTIFICATION_TIMEOUT = 3600

    def on_mount(self) -> None:
        self.composer.cursor_blink = False


def fixed_app(
    chat: FakeChat, *, toast: bool = True, preferences: Preferences | None = None
) -> ChatApp:
    """An app whose every time and key is fixed, for Pilot tests and snapshots."""
    later = EPOCH + timedelta(minutes=10)
    return FixedApp(
        chat,  # type: ignore[arg-type]
        timezone=UTC,
        clock=lambda: later,
        bell=False,
        toast=toast,
        preferences=preferences,
    )


@pytest.fixture
def chat() -> FakeChat:
    return populated_chat()


@pytest.fixture
def app(chat: FakeChat) -> ChatApp:
    return fixed_app(chat)
