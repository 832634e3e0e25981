"""Every library event reaches the matching ``ChatListener`` method, unchanged."""

from typing import Any

import pytest
from e2echat_tui.adapter import LibraryBackend, dispatch

from e2echat import (
    ConnectionChanged,
    ConnectionState,
    Event,
    Member,
    MemberJoined,
    MemberLeft,
    MemberValidated,
    Notice,
    PresenceChanged,
    RoomJoined,
    RoomLeft,
    Undecryptable,
)

ROOM: Any = object()  # dispatch passes rooms through without looking at them
BOB = Member(b"b" * 32, "bob", "online", None, "fp", False, True, False)


class Recorder:
    """A ChatListener that records each call as (method, arguments)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[object, ...]]] = []

    def __getattr__(self, method: str) -> Any:
        return lambda *args: self.calls.append((method, args))


@pytest.mark.parametrize(
    ("event", "call"),
    [
        (
            ConnectionChanged(ConnectionState.RECONNECTING, "lost"),
            ("connection_changed", ("reconnecting", "lost")),
        ),
        (MemberJoined(ROOM, BOB), ("member_joined", (ROOM, BOB))),
        (MemberValidated(ROOM, BOB), ("member_validated", (ROOM, BOB))),
        (MemberLeft(ROOM, BOB), ("member_left", (ROOM, BOB))),
        (PresenceChanged(BOB), ("presence_changed", (BOB,))),
        (Undecryptable(ROOM, None, 9, "replay"), ("undecryptable", (ROOM, None, 9, "replay"))),
        (RoomJoined(ROOM), ("room_joined", (ROOM,))),
        (RoomLeft(ROOM), ("room_left", (ROOM,))),
        (Notice("relay restarting"), ("notice", ("relay restarting",))),
    ],
)
def test_dispatch(event: Event, call: tuple[str, tuple[object, ...]]) -> None:
    listener = Recorder()
    dispatch(event, listener)
    assert listener.calls == [call]


def test_invites_are_told_from_passwords() -> None:
    backend = LibraryBackend
    assert backend.looks_like_invite("ws://127.0.0.1:8765/vault#" + "A" * 43)
    assert backend.looks_like_invite("wss://relay.example/vault#x")
    assert not backend.looks_like_invite("correct horse battery staple")
    assert not backend.looks_like_invite("ws://no-fragment/vault")
