"""Clocks that are off: told at connect, and the reason of every refusal it causes."""

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from e2echat_server import Relay

import e2echat
from e2echat.client.engine import Engine
from e2echat.protocol import User, Welcome
from tests.client.conftest import FAST_POLICY, MakeClient, collect, validated
from tests.client.test_engine import Clock, make_engine

MINUTE = 60_000


def system_clock_plus(offset: int) -> Callable[[], int]:
    return lambda: time.time_ns() // 1_000_000 + offset


def welcome_at(engine: Engine, ts: int | None) -> Welcome:
    return Welcome(user=User(key=engine.me, name=engine.name), rooms=[], mailbox=0, ts=ts)


@pytest.mark.parametrize(
    ("offset", "warned"),
    [(0, False), (10 * MINUTE, False), (-(10 * MINUTE + 1), True), (20 * MINUTE, True)],
)
def test_a_clock_off_by_more_than_the_tolerance_is_reported_at_connect(
    offset: int, warned: bool, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    engine = make_engine("alice", clock)
    events = engine.welcome(welcome_at(engine, clock.now - offset)).events
    skewed = [e for e in events if isinstance(e, e2echat.ClockSkewed)]
    assert skewed == ([e2echat.ClockSkewed(offset)] if warned else [])
    assert ("clock is" in caplog.text) == warned


def test_the_warning_says_by_how_much_and_which_way() -> None:
    assert "20 minutes ahead of" in e2echat.ClockSkewed(20 * MINUTE).text
    assert "8 days behind" in e2echat.ClockSkewed(-8 * 24 * 60 * MINUTE).text


def test_a_relay_that_sends_no_time_warns_of_nothing() -> None:
    clock = Clock()
    engine = make_engine("alice", clock)
    assert engine.welcome(welcome_at(engine, None)).events == []


async def test_a_sender_whose_clock_is_ahead_learns_it_and_readers_are_told_why(
    make_client: MakeClient, relay: Relay, tmp_path: Path
) -> None:
    """Through a real relay: the skewed sender gets ``ClockSkewed`` at connect; its reader
    refuses its key share and reports its message with that reason, never "not
    arrived"; the message is kept (``waiting``) for a share with a good date."""
    bob = await make_client("bob")
    room = await bob.create("lobby")
    alice = e2echat.Client(
        relay.url,
        identity=e2echat.Identity.generate(),
        name="alice",
        store=tmp_path / "alice.sqlite3",
        policy=FAST_POLICY,
        clock=system_clock_plus(20 * MINUTE),
    )
    alice_events, bob_events = alice.events(), bob.events()  # before connecting
    async with alice:
        (skewed,) = await collect(alice_events, 1, lambda e: isinstance(e, e2echat.ClockSkewed))
        assert isinstance(skewed, e2echat.ClockSkewed)
        assert 19 * MINUTE < skewed.offset_ms < 21 * MINUTE
        alice_room = await alice.join("lobby")
        await collect(bob_events, 1, lambda e: validated(e, "alice"))
        await alice_room.send("from the future")
        notice, report = await collect(
            bob_events, 2, lambda e: isinstance(e, e2echat.Notice | e2echat.Undecryptable)
        )
    assert isinstance(notice, e2echat.Notice)
    assert "dated in the future" in notice.text
    assert isinstance(report, e2echat.Undecryptable)
    assert report.room == room
    assert report.waiting
    assert "its key share was refused: direct envelope is dated in the future" in report.reason
    assert "not arrived" not in report.reason
