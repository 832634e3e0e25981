"""Hardening of the engine against a hostile relay and the resend wart: no sockets."""

import logging

import msgspec
import pytest

import e2echat
from e2echat.client import engine as engine_module
from e2echat.client.backoff import Backoff
from e2echat.client.engine import Engine
from e2echat.client.roomsync import SYNC_SETTLE_MS
from e2echat.crypto.roomsecret import RoomSecret
from e2echat.crypto.session import CryptoSession
from e2echat.crypto.store import Write
from e2echat.protocol import Error, ErrorCode, Presence, RelayFrame, Sent, Sync, Synced
from e2echat.store import MEMORY, Store
from tests.client.test_engine import (
    NOW,
    ROOM_ID,
    Clock,
    deliver,
    make_engine,
    pair,  # noqa: F401 (a fixture)
    room_info,
    welcome,
)

REPLAY = "replayed message rejected"


def test_a_resent_copy_of_a_delivered_message_is_dropped_quietly(
    pair: tuple[Engine, Engine],  # noqa: F811
) -> None:
    """The sender lost the relay's reply and resent the same bytes: a new seq, no news."""
    alice, bob = pair
    frame, _ = deliver(alice, bob, "once", 1)
    assert [m.text for m in bob.receive(frame).messages] == ["once"]
    copy = bob.receive(msgspec.structs.replace(frame, seq=2))
    assert (copy.messages, copy.events, copy.frames) == ([], [], [])
    assert bob.rooms[ROOM_ID].sync.floor == 2
    assert [m.text for m in bob.history(ROOM_ID, 10)] == ["once"]


def _twin(engine: Engine, other: Engine, clock: Clock) -> Engine:
    """A second device state of ``engine``: a copy of its store as it is now."""
    store = Store(MEMORY, engine.identity)
    for space in ("prekey", "room", "out", "in", "gone", "pending", "trust"):
        store.apply([Write(space, key, value) for key, value in engine.store.scan(space)])
    session = CryptoSession(engine.identity, store)
    twin = Engine(engine.identity, engine.name, store, session, clock)
    twin.enter_room(room_info(twin, other), "open", None)
    twin.welcome(welcome(twin, other))
    return twin


def test_a_replay_with_other_bytes_is_reported(pair: tuple[Engine, Engine]) -> None:  # noqa: F811
    """Two different bodies for one chain index (a sender whose state was rolled back)."""
    alice, bob = pair
    first, _ = deliver(alice, bob, "first", 1)
    bob.receive(first)
    rolled_back = _twin(alice, bob, Clock())
    second, _ = deliver(alice, bob, "second", 2)
    forked, _ = deliver(rolled_back, bob, "forked", 3)
    assert [m.text for m in bob.receive(second).messages] == ["second"]
    out = bob.receive(forked)
    assert out.messages == []
    assert [(type(e), e.reason, e.seq) for e in out.events] == [  # type: ignore[attr-defined]
        (e2echat.Undecryptable, REPLAY, 3)
    ]


def test_a_replay_of_a_message_not_delivered_here_is_reported(
    pair: tuple[Engine, Engine],  # noqa: F811
) -> None:
    alice, bob = pair
    frame, _ = deliver(alice, bob, "first", 1)
    bob.session.receive(ROOM_ID, alice.me, frame.body, NOW, 1)  # consumed behind our back
    out = bob.receive(frame)
    assert out.messages == []
    assert [(type(e), e.reason) for e in out.events] == [  # type: ignore[attr-defined]
        (e2echat.Undecryptable, REPLAY)
    ]


def test_joining_again_without_the_password_keeps_the_room_secret() -> None:
    """Whether a room is secret is what the user gave: a later join without the password
    (or a relay that admits one) never turns it into an open room."""
    clock = Clock()
    alice, bob = make_engine("alice", clock), make_engine("bob", clock)
    secret = RoomSecret.generate()
    bob.enter_room(room_info(alice, bob), "password", secret)
    bob.enter_room(room_info(alice, bob), "open", None)
    assert bob.rooms[ROOM_ID].record.access == "password"
    assert bob.session.is_secret(ROOM_ID)
    (record,) = bob.store.rooms()
    assert (record.access, record.secret) == ("password", secret.secret)
    assert alice.me not in bob.session.validated_members(ROOM_ID)


def test_a_password_given_later_makes_an_open_room_secret() -> None:
    clock = Clock()
    alice, bob = make_engine("alice", clock), make_engine("bob", clock)
    bob.enter_room(room_info(alice, bob), "open", None)
    secret = RoomSecret.generate()
    bob.enter_room(room_info(alice, bob), "password", secret)
    assert bob.rooms[ROOM_ID].record.access == "password"
    assert bob.session.is_secret(ROOM_ID)
    assert [r.access for r in bob.store.rooms()] == ["password"]


@pytest.mark.parametrize(
    "frame",
    [
        Sent(room=ROOM_ID, seq=1, ts=NOW, id="ox"),
        Sent(room=ROOM_ID, seq=1, ts=NOW, id="o" + "9" * 40),
        Sent(room=ROOM_ID, seq=1, ts=NOW, id="o-1"),
        Sent(seq=1, ts=NOW, id="o1"),
        Sent(room=b"X" * 16, seq=1, ts=NOW, id="o1"),
        Error(code=ErrorCode.NOT_MEMBER, message="No.", id="szz"),
        Error(code=ErrorCode.NOT_MEMBER, message="No.", id="o" + "9" * 40),
        Error(code=ErrorCode.NOT_MEMBER, message="No.", id="o\u0661"),  # an Arabic-Indic digit one
        Synced(room=b"X" * 16, seq=5, id="s" + "00" * 16),
    ],
)
def test_hostile_reply_ids_change_nothing(
    pair: tuple[Engine, Engine],  # noqa: F811
    frame: RelayFrame,
) -> None:
    alice, _bob = pair
    alice.queue(ROOM_ID, "kept")
    alice.receive(frame)
    assert [item.id for item in alice.store.outbox()] == [1]


def test_backoff_keeps_its_cap_after_any_number_of_failures() -> None:
    backoff = Backoff(initial=0.5, maximum=30.0)
    delays = [backoff.next_delay() for _ in range(5000)]
    assert all(0.25 <= d <= 30.0 for d in delays)
    assert min(delays[-100:]) >= 15.0


def test_reprs_logs_and_errors_carry_no_plaintext_or_secret(
    pair: tuple[Engine, Engine],  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    alice, bob = pair
    words = "the eagle lands at midnight"
    secret = RoomSecret.generate()
    with caplog.at_level(logging.DEBUG):
        frame, _ = deliver(alice, bob, words, 1)
        (message,) = bob.receive(frame).messages
        bob.receive(msgspec.structs.replace(frame, seq=2))  # the quiet copy logs
        with pytest.raises(e2echat.E2EChatError) as too_long:
            alice.queue(ROOM_ID, words * 200)
        alice.disconnected()
        alice.queue(ROOM_ID, words)  # waits in the outbox
        carol = make_engine("carol", Clock())
        carol.enter_room(room_info(alice, carol), "password", secret)
    shown = [
        repr(message),
        str(message),
        repr(bob.rooms[ROOM_ID]),
        repr(carol.rooms[ROOM_ID]),
        repr(bob.store.history(ROOM_ID, 10)),
        repr(alice.store.outbox()),
        repr(carol.store.rooms()),
        repr(bob.identity),
        str(too_long.value),
        *(record.getMessage() for record in caplog.records),
    ]
    for text in shown:
        assert words not in text
        assert secret.secret.hex() not in text
        assert repr(secret.secret)[2:-1] not in text


def test_only_a_stable_connection_starts_the_backoff_over() -> None:
    backoff = Backoff(initial=1.0, maximum=30.0, stable=10.0)
    for _ in range(4):
        backoff.next_delay()
    backoff.connection_ended(0.2)  # accepted, then dropped at once: keep backing off
    assert backoff.next_delay() >= 8.0
    backoff.connection_ended(60.0)
    assert backoff.next_delay() <= 1.0


def _resync(engine: Engine, other: Engine) -> str:
    """Reconnect ``engine``; the id of the ``sync`` its welcome sends for the room."""
    engine.disconnected()
    (sync,) = [f for f in engine.welcome(welcome(engine, other)).frames if isinstance(f, Sync)]
    assert sync.id is not None
    return sync.id


def test_synced_never_skips_a_message_still_on_its_way(
    pair: tuple[Engine, Engine],  # noqa: F811
) -> None:
    """``synced.seq`` is the room's latest seq, which may belong to messages the relay
    has not stored or broadcast yet (protocol.md §6): they arrive live after it."""
    alice, bob = pair
    frames = [deliver(alice, bob, f"m{seq}", seq)[0] for seq in (1, 2, 3)]
    sync_id = _resync(bob, alice)
    assert bob.receive(frames[0]).messages == []  # held until the sync ends
    synced = bob.receive(Synced(room=ROOM_ID, seq=3, id=sync_id))
    assert [m.text for m in synced.messages] == ["m1"]
    late = [m.text for frame in frames[1:] for m in bob.receive(frame).messages]
    assert late == ["m2", "m3"]
    assert bob.rooms[ROOM_ID].sync.floor == 3


def test_synced_skips_what_retention_deleted(pair: tuple[Engine, Engine]) -> None:  # noqa: F811
    alice, bob = pair
    frames = [deliver(alice, bob, f"m{seq}", seq)[0] for seq in range(1, 6)]
    sync_id = _resync(bob, alice)
    for frame in frames[3:]:  # the relay no longer has 1 to 3
        bob.receive(frame)
    bob.receive(Synced(room=ROOM_ID, seq=5, id=sync_id))
    assert bob.rooms[ROOM_ID].sync.floor == 5


def test_an_empty_sync_moves_the_floor_once_stragglers_had_time(
    pair: tuple[Engine, Engine],  # noqa: F811
) -> None:
    """Nothing came back: the seqs up to ``synced.seq`` were deleted (retention) or are
    still on their way; the floor moves over them only after a grace period."""
    alice, bob = pair
    clock = bob.clock
    assert isinstance(clock, Clock)
    straggler, _ = deliver(alice, bob, "late", 1)
    sync_id = _resync(bob, alice)
    bob.receive(Synced(room=ROOM_ID, seq=7, id=sync_id))
    assert bob.rooms[ROOM_ID].sync.floor == 0
    assert [m.text for m in bob.receive(straggler).messages] == ["late"]
    bob.tick()
    assert bob.rooms[ROOM_ID].sync.floor == 1
    clock.now += SYNC_SETTLE_MS
    bob.tick()
    assert bob.rooms[ROOM_ID].sync.floor == 7
    assert bob.store.rooms()[0].last_seq == 7


def test_presence_of_strangers_is_ignored(pair: tuple[Engine, Engine]) -> None:  # noqa: F811
    """A relay announcing the status of keys we share no room with (a flood of them
    would grow memory) changes nothing and tells the app nothing."""
    alice, bob = pair
    stranger = Presence(key=b"S" * 32, status="online", text="hi")
    assert bob.receive(stranger).events == []
    assert bob.member(b"S" * 32, None).status == "offline"
    (event,) = bob.receive(Presence(key=alice.me, status="away", text=None)).events
    assert isinstance(event, e2echat.PresenceChanged)
    assert event.member.status == "away"


def test_only_recent_deliveries_are_remembered_for_resends(
    pair: tuple[Engine, Engine],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(engine_module, "RECENT_DELIVERED", 2)
    alice, bob = pair
    frames = [deliver(alice, bob, f"m{seq}", seq)[0] for seq in (1, 2, 3)]
    for frame in frames:
        bob.receive(frame)
    recent = bob.receive(msgspec.structs.replace(frames[2], seq=4))
    forgotten = bob.receive(msgspec.structs.replace(frames[0], seq=5))
    assert recent.events == []
    assert [e.reason for e in forgotten.events] == [REPLAY]  # type: ignore[attr-defined]
