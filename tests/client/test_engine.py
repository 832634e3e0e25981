"""The sans-I/O engine, driven with frames and a clock: no sockets, no event loop."""

from pathlib import Path

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import e2echat
from e2echat.client.contention import LOG_ATTEMPTS, LOG_RETRY_MAX_S
from e2echat.client.engine import LOG_FETCH_ID, LOG_JOIN_ID, Engine, body_size
from e2echat.client.output import Output
from e2echat.client.roomsync import SYNC_SETTLE_MS, SyncState
from e2echat.crypto.identity import Identity
from e2echat.crypto.payload import Reaction
from e2echat.crypto.session import CryptoSession
from e2echat.protocol import (
    MAX_SYNC_LIMIT,
    Ack,
    Challenge,
    ClientFrame,
    DirectDelivery,
    DirectSend,
    DirectsSend,
    DirectsSent,
    Error,
    ErrorCode,
    LogAppend,
    LogEntries,
    LogRequest,
    MemberLeft,
    MembersList,
    MembersRequest,
    Message,
    Presence,
    RelayLimits,
    RoomDeletion,
    RoomInfo,
    RosterEntry,
    Send,
    Sent,
    SetStatus,
    SignedPrekey,
    Sync,
    Synced,
    User,
    Welcome,
)
from e2echat.protocol.constants import MAX_LOG_PAGE
from e2echat.store import MEMORY, Store

ROOM_ID = b"R" * 16
NOW = 1_800_000_000_000


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> int:
        return self.now


def make_engine(name: str, clock: Clock) -> Engine:
    identity = Identity.generate()
    store = Store(MEMORY, identity)
    session = CryptoSession(identity, store)
    return Engine(identity, name, store, session, clock)


LIMITS = RelayLimits(
    max_frame=65536, max_body=4096, max_members=10, history=10, mailbox=10, history_age=86_400
)


def relay_member(engine: Engine) -> RosterEntry:
    hello = engine.hello(Challenge(v=1, relay="r", nonce=b"n" * 32, limits=LIMITS))
    prekey = SignedPrekey(id=hello.prekey.id, key=hello.prekey.key, sig=hello.prekey.sig)
    return RosterEntry(key=engine.me, name=engine.name, status="online", prekey=prekey, joined=NOW)


def room_info(*engines: Engine, seq: int = 0) -> RoomInfo:
    return RoomInfo(
        id=ROOM_ID,
        name="lobby",
        description="",
        max_members=10,
        listed=True,
        access_kind="open",
        salt=None,
        members=[relay_member(e) for e in engines],
        seq=seq,
    )


def welcome(engine: Engine, *others: Engine) -> Welcome:
    return Welcome(
        user=User(key=engine.me, name=engine.name), rooms=[room_info(engine, *others)], mailbox=0
    )


SYNC_REPLY = "s" + ROOM_ID.hex()


def connect(engine: Engine, *members: Engine) -> None:
    """``engine`` connects and its room's sync comes back empty: the room is live."""
    engine.welcome(welcome(engine, *members))
    engine.receive(Synced(room=ROOM_ID, seq=0, id=SYNC_REPLY))


@pytest.fixture
def pair() -> tuple[Engine, Engine]:
    clock = Clock()
    alice, bob = make_engine("alice", clock), make_engine("bob", clock)
    for engine in (alice, bob):
        engine.enter_room(room_info(alice, bob), "open", None)
        connect(engine, alice, bob)
    return alice, bob


def deliver(sender: Engine, receiver: Engine, text: str, seq: int) -> tuple[Message, list[object]]:
    """``sender`` sends ``text``; its directs go to ``receiver``; returns the room frame."""
    _item, _msg, out = sender.queue(ROOM_ID, text)
    directs = [f for f in out.frames if isinstance(f, DirectSend)]
    (send,) = [f for f in out.frames if isinstance(f, Send)]
    results: list[object] = []
    for i, direct in enumerate(directs):
        frame = DirectDelivery(sender=sender.me, seq=seq * 100 + i, ts=NOW, body=direct.body)
        results.append(receiver.receive(frame))
    assert send.id is not None
    sender.receive(Sent(room=ROOM_ID, seq=seq, ts=NOW, id=send.id))
    return Message(room=ROOM_ID, seq=seq, ts=NOW, sender=sender.me, body=send.body), results


def test_a_message_delivered_twice_reaches_the_app_once(pair: tuple[Engine, Engine]) -> None:
    alice, bob = pair
    frame, _ = deliver(alice, bob, "hi @bob", 1)
    first = bob.receive(frame)
    again = bob.receive(frame)
    assert [m.text for m in first.messages] == ["hi @bob"]
    assert first.messages[0].mentions_me
    assert first.messages[0].sender.name == "alice"
    assert again.messages == []
    assert again.events == []
    assert bob.rooms[ROOM_ID].sync.floor == 1


def test_offline_sends_wait_in_the_outbox_and_go_out_in_order() -> None:
    clock = Clock()
    alice, bob = make_engine("alice", clock), make_engine("bob", clock)
    alice.enter_room(room_info(alice, bob), "open", None)
    for number, text in enumerate(("one", "two", "three"), 1):
        _id, provisional, out = alice.queue(ROOM_ID, text)
        assert out.frames == []
        assert provisional.seq == 0
        assert provisional.own
        assert provisional.send_id == number
    out = alice.welcome(welcome(alice, bob))
    sends = [f for f in out.frames if isinstance(f, Send)]
    assert [f.id for f in sends] == ["o1", "o2", "o3"]
    assert isinstance(out.frames[0], Sync)
    assert out.frames[0].after == 0
    # A resend after a lost connection carries the very same bytes.
    alice.disconnected()
    again = [f for f in alice.welcome(welcome(alice, bob)).frames if isinstance(f, Send)]
    assert [f.body for f in again] == [f.body for f in sends]
    out = alice.receive(Sent(room=ROOM_ID, seq=1, ts=NOW, id="o1"))
    assert [(i, m.text, m.seq, m.send_id) for i, m in out.confirmed] == [(1, "one", 1, 1)]
    # the app learns that the message "one" it showed as pending is sent: our own, live
    assert out.events == [e2echat.MessageSent(ROOM_ID, out.confirmed[0][1])]
    assert out.confirmed[0][1].live
    assert [i.id for i in alice.store.outbox()] == [2, 3]
    assert [m.text for m in alice.history(ROOM_ID, 10)] == ["one"]


def test_relay_errors_on_sends(pair: tuple[Engine, Engine]) -> None:
    alice, _bob = pair
    alice.queue(ROOM_ID, "slow down")
    alice.queue(ROOM_ID, "not allowed")
    limited = alice.receive(Error(code=ErrorCode.RATE_LIMITED, message="Slow down.", id="o1"))
    assert limited.events == []
    refused = alice.receive(Error(code=ErrorCode.NOT_MEMBER, message="Not a member.", id="o2"))
    assert refused.events == [e2echat.SendFailed(ROOM_ID, 2, "Not a member.")]
    assert [i.id for i in alice.store.outbox()] == [1]
    resent = [f for f in alice.flush_outbox().frames if isinstance(f, Send)]
    assert [f.id for f in resent] == ["o1"]


def test_sync_pages_until_the_relay_has_no_more(pair: tuple[Engine, Engine]) -> None:
    alice, bob = pair
    first = deliver(alice, bob, "m1", 1)[0]
    bob.disconnected()
    bob.welcome(welcome(bob, alice))
    state = bob.rooms[ROOM_ID]
    assert state.sync.state is SyncState.SYNCING  # the welcome's sync is out
    assert bob.receive(first).messages == []  # held until its page is complete
    for seq in range(2, MAX_SYNC_LIMIT + 1):  # a full page comes back (not decrypted here)
        bob.receive(Message(room=ROOM_ID, seq=seq, ts=NOW, sender=bob.me, body=b"x" * 500))
    more = bob.receive(Synced(room=ROOM_ID, seq=1200, id="s" + ROOM_ID.hex()))
    assert [m.text for m in more.messages] == ["m1"]
    assert [f.after for f in more.frames if isinstance(f, Sync)] == [MAX_SYNC_LIMIT]
    assert state.sync.state is SyncState.SYNCING
    done = bob.receive(Synced(room=ROOM_ID, seq=1200, id="s" + ROOM_ID.hex()))
    assert done.frames == []
    assert state.sync.state is SyncState.LIVE
    assert bob.receive(Synced(room=ROOM_ID, seq=1300)).frames == []  # unasked: ignored
    assert state.sync.floor == MAX_SYNC_LIMIT  # the rest may still be on its way
    bob.clock.now += SYNC_SETTLE_MS  # type: ignore[attr-defined]
    bob.tick()
    assert state.sync.floor == 1200


def test_a_catch_up_is_reported_as_it_goes(pair: tuple[Engine, Engine]) -> None:
    alice, bob = pair
    bob.disconnected()
    back = Welcome(
        user=User(key=bob.me, name=bob.name), rooms=[room_info(bob, alice, seq=1500)], mailbox=0
    )
    started = bob.welcome(back)

    def reported(out: object) -> list[tuple[int, int]]:
        events = getattr(out, "events", [])
        return [(e.done, e.total) for e in events if isinstance(e, e2echat.CatchingUp)]

    assert {e.seq for e in started.events if isinstance(e, e2echat.CatchingUp)} == {1500}

    assert reported(started) == [(0, 1500)]
    assert {e.room for e in started.events if isinstance(e, e2echat.CatchingUp)} == {ROOM_ID}
    for first, last in ((1, MAX_SYNC_LIMIT), (MAX_SYNC_LIMIT + 1, 1500)):
        for seq in range(first, last + 1):  # a page (our own messages: not decrypted here)
            bob.receive(Message(room=ROOM_ID, seq=seq, ts=NOW, sender=bob.me, body=b"x" * 500))
        page = bob.receive(Synced(room=ROOM_ID, seq=1500, id=SYNC_REPLY))
        assert reported(page) == [(last, 1500)]
    assert bob.rooms[ROOM_ID].sync.state is SyncState.LIVE
    assert reported(bob.receive(Synced(room=ROOM_ID, seq=1500, id=SYNC_REPLY))) == []
    bob.disconnected()
    assert reported(bob.welcome(back)) == []  # nothing more to catch up


def test_mailbox_is_acknowledged_once_per_tick(pair: tuple[Engine, Engine]) -> None:
    alice, bob = pair
    deliver(alice, bob, "share me", 5)
    acks = [f for f in bob.tick().frames if isinstance(f, Ack)]
    assert [f.mailbox for f in acks] == [500]
    assert [f for f in bob.tick().frames if isinstance(f, Ack)] == []


def test_too_long_or_empty_messages_are_refused_and_not_queued(
    pair: tuple[Engine, Engine],
) -> None:
    alice, _bob = pair
    with pytest.raises(e2echat.E2EChatError, match="too long"):
        alice.queue(ROOM_ID, "x" * 4_000)
    with pytest.raises(e2echat.E2EChatError, match="empty"):
        alice.queue(ROOM_ID, "")
    assert alice.store.outbox() == []
    _id, _msg, out = alice.queue(ROOM_ID, "y" * 3_500)
    (send,) = [f for f in out.frames if isinstance(f, Send)]
    assert body_size(len(alice.store.outbox()[0].payload)) == len(send.body) <= alice.max_body


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_any_delivery_order_with_copies_delivers_each_message_once(
    data: st.DataObject,
) -> None:
    """Live, each message is delivered once; during a sync (a reconnect's backlog with
    live messages interleaved) also in seq order, once the sync is complete."""
    clock = Clock()
    alice, bob = make_engine("alice", clock), make_engine("bob", clock)
    for engine in (alice, bob):
        engine.enter_room(room_info(alice, bob), "open", None)
        connect(engine, alice, bob)
    frames = [deliver(alice, bob, f"m{seq}", seq)[0] for seq in range(1, 9)]
    order = data.draw(st.permutations(frames))
    copies = data.draw(st.lists(st.sampled_from(frames), max_size=6))
    mixed = data.draw(st.permutations(order + copies))
    syncing = data.draw(st.booleans())
    if syncing:
        bob.disconnected()
        bob.welcome(welcome(bob, alice))
    received = [m.text for frame in mixed for m in bob.receive(frame).messages]
    if syncing:
        assert received == []  # all held by the sync
        received = [
            m.text for m in bob.receive(Synced(room=ROOM_ID, seq=8, id=SYNC_REPLY)).messages
        ]
        assert received == [f"m{seq}" for seq in range(1, 9)]
    assert sorted(received) == sorted(f"m{seq}" for seq in range(1, 9))
    assert bob.rooms[ROOM_ID].sync.floor == 8


def test_status_is_restored_after_a_reconnect(pair: tuple[Engine, Engine]) -> None:
    alice, bob = pair
    alice.set_own_status("busy", "deploying")
    alice.disconnected()
    frames = alice.welcome(welcome(alice, bob)).frames
    assert frames[0] == SetStatus(status="busy", text="deploying")
    (me,) = [m for m in alice.rooms[ROOM_ID].member_list if m.is_me]
    assert (me.status, me.status_text, me.validated) == ("busy", "deploying", True)


def alice_at(tmp_path: Path, clock: Clock, identity: Identity) -> Engine:
    """alice's engine over her store in ``tmp_path``: made again, it is a restart."""
    store = Store(tmp_path / "alice.sqlite3", identity)
    return Engine(identity, "alice", store, CryptoSession(identity, store), clock)


def test_the_outbox_survives_a_restart_of_the_client(tmp_path: Path) -> None:
    clock, identity = Clock(), Identity.generate()
    bob = make_engine("bob", clock)

    alice = alice_at(tmp_path, clock, identity)
    alice.enter_room(room_info(alice, bob), "open", None)
    alice.queue(ROOM_ID, "written on the train")
    alice.store.close()
    again = alice_at(tmp_path, clock, identity)
    assert [state.record.name for state in again.rooms.values()] == ["lobby"]
    frames = again.welcome(welcome(again, bob)).frames
    sends = [f for f in frames if isinstance(f, Send)]
    assert [f.id for f in sends] == ["o1"]
    bob.enter_room(room_info(again, bob), "open", None)
    frame = Message(room=ROOM_ID, seq=1, ts=NOW, sender=again.me, body=sends[0].body)
    assert bob.receive(frame).messages == []  # its key comes in alice's direct share
    (share,) = [f for f in frames if isinstance(f, DirectSend)]
    out = bob.receive(DirectDelivery(sender=again.me, seq=1, ts=NOW, body=share.body))
    assert [m.text for m in out.messages] == ["written on the train"]


def test_messages_waiting_in_the_outbox_are_listed_after_a_restart(tmp_path: Path) -> None:
    """What the app showed as pending before a restart it can show again: our queued
    messages with seq 0 and their send ids, until the relay stores them."""
    clock, identity = Clock(), Identity.generate()
    bob = make_engine("bob", clock)
    alice = alice_at(tmp_path, clock, identity)
    alice.enter_room(room_info(alice, bob), "open", None)
    alice.queue(ROOM_ID, "written on the train")
    alice.queue(ROOM_ID, "and at the station")
    alice.store.close()
    again = alice_at(tmp_path, clock, identity)
    pending = again.pending(ROOM_ID)
    assert [(m.text, m.seq, m.send_id, m.own) for m in pending] == [
        ("written on the train", 0, 1, True),
        ("and at the station", 0, 2, True),
    ]
    assert again.pending(b"\x07" * 16) == []
    again.welcome(welcome(again, bob))
    again.receive(Sent(room=ROOM_ID, seq=1, ts=NOW, id="o1"))
    (stored,) = again.history(ROOM_ID, 10)
    again.relate(ROOM_ID, Reaction(stored.id, "👍", True, NOW))  # queued, not a message
    assert [m.send_id for m in again.pending(ROOM_ID)] == [2]


def test_a_frame_the_crypto_core_refuses_is_dropped_with_a_notice(
    pair: tuple[Engine, Engine],
) -> None:
    alice, bob = pair
    bob.session.leave_room(ROOM_ID)  # the crypto core no longer knows the room
    out = bob.receive(MemberLeft(room=ROOM_ID, key=alice.me))
    assert [type(e) for e in out.events] == [e2echat.Notice]
    assert out.frames == []


def test_i_am_online_once_connected_whatever_the_relay_lists() -> None:
    """The relay may list us offline in `welcome` (built before our presence flips)."""
    clock = Clock()
    alice, bob = make_engine("alice", clock), make_engine("bob", clock)
    info = room_info(alice, bob)
    stale = [msgspec.structs.replace(m, status="offline") for m in info.members]
    alice.enter_room(msgspec.structs.replace(info, members=stale), "open", None)
    assert [m.status for m in alice.rooms[ROOM_ID].member_list if m.is_me] == ["offline"]
    alice.welcome(
        Welcome(
            user=User(key=alice.me, name="alice"),
            rooms=[msgspec.structs.replace(info, members=stale)],
            mailbox=0,
        )
    )
    assert [m.status for m in alice.rooms[ROOM_ID].member_list if m.is_me] == ["online"]
    alice.disconnected()
    assert alice.member(alice.me, ROOM_ID).status == "offline"


def partial_welcome(engine: Engine) -> Welcome:
    info = msgspec.structs.replace(room_info(), partial=True)
    return Welcome(user=User(key=engine.me, name=engine.name), rooms=[info], mailbox=0)


def test_a_partial_room_waits_for_its_roster_instead_of_emptying(
    pair: tuple[Engine, Engine],
) -> None:
    """protocol.md section 4: an empty partial list is not "everyone left". The room
    asks for its members; its sync, sends and live traffic wait for them."""
    alice, bob = pair
    live, _ = deliver(alice, bob, "while bob's roster is on its way", 1)
    bob.disconnected()
    out = bob.welcome(partial_welcome(bob))
    assert out.events == []  # no MemberLeft, no rotation
    # the roster is asked for; the membership log is fetched on every connect
    assert [(type(f), f.id) for f in out.frames] == [
        (MembersRequest, f"m{ROOM_ID.hex()}"),
        (LogRequest, f"g{ROOM_ID.hex()}"),
    ]
    assert [m.name for m in bob.rooms[ROOM_ID].member_list] == ["alice", "bob"]
    held = bob.queue(ROOM_ID, "after the roster")[2]
    assert not [f for f in held.frames if isinstance(f, Send)]
    assert bob.receive(live).messages == []  # its sync brings it once the roster is in
    assert bob.receive(MemberLeft(room=ROOM_ID, key=alice.me)).events == []  # ditto

    roster = MembersList(
        room=ROOM_ID, members=room_info(alice, bob).members, id=f"m{ROOM_ID.hex()}"
    )
    resumed = bob.receive(roster)
    assert resumed.events == []  # same members as before: nothing to announce
    assert [type(f) for f in resumed.frames if not isinstance(f, DirectSend)] == [Sync, Send]
    assert bob.receive(live).messages == []  # part of the sync now: held until it ends
    synced = bob.receive(Synced(room=ROOM_ID, seq=1, id=SYNC_REPLY))
    assert [m.text for m in synced.messages] == ["while bob's roster is on its way"]


def test_a_refused_members_request_does_not_hold_the_room_up(
    pair: tuple[Engine, Engine],
) -> None:
    _alice, bob = pair
    bob.disconnected()
    bob.welcome(partial_welcome(bob))
    bob.queue(ROOM_ID, "waiting")
    refused = Error(code=ErrorCode.RATE_LIMITED, message="Slow down.", id=f"m{ROOM_ID.hex()}")
    out = bob.receive(refused)
    assert [type(f) for f in out.frames if not isinstance(f, DirectSend)] == [Sync, Send]
    assert [type(e) for e in out.events] == [e2echat.Notice]


def test_a_message_that_overtakes_entering_its_room_is_kept_for_it() -> None:
    """The relay's `room` reply and the next message can reach the engine before the
    application has entered the room: the message must not be lost."""
    clock = Clock()
    alice, bob = make_engine("alice", clock), make_engine("bob", clock)
    alice.enter_room(room_info(alice, bob, seq=3), "open", None)
    alice.welcome(welcome(alice, alice, bob))
    bob.welcome(Welcome(user=User(key=bob.me, name=bob.name), rooms=[], mailbox=0))
    _item, _msg, sent = alice.queue(ROOM_ID, "just after you joined")
    (send,) = [f for f in sent.frames if isinstance(f, Send)]
    frame = Message(room=ROOM_ID, seq=4, ts=NOW, sender=alice.me, body=send.body)
    old = Message(room=ROOM_ID, seq=3, ts=NOW, sender=alice.me, body=send.body)
    assert bob.receive(old).messages == []
    assert bob.receive(frame).messages == []  # no room yet: kept, not dropped
    entered = bob.enter_room(room_info(alice, bob, seq=3), "open", None)
    assert entered.messages == []  # the key has not come yet
    for i, direct in enumerate(f for f in sent.frames if isinstance(f, DirectSend)):
        share = DirectDelivery(sender=alice.me, seq=i + 1, ts=NOW, body=direct.body)
        entered.extend(bob.receive(share))
    assert [m.text for m in entered.messages] == ["just after you joined"]
    assert [m.seq for m in entered.messages] == [4]  # seq 3 predates the join: dropped


def _resumes(frame: object) -> bool:
    """A frame every connect sends per room: its sync and its membership-log fetch."""
    return isinstance(frame, Sync | LogRequest)


def test_key_shares_are_kept_and_resent_until_the_relay_confirms_them(tmp_path: Path) -> None:
    """A crash after a message was encrypted and sent, before the relay confirmed its
    share: the restarted client sends the same share again, ahead of the message."""
    clock, identity = Clock(), Identity.generate()
    bob = make_engine("bob", clock)
    alice = alice_at(tmp_path, clock, identity)
    alice.enter_room(room_info(alice, bob), "open", None)
    alice.welcome(welcome(alice, bob))
    _item, _msg, sent = alice.queue(ROOM_ID, "before the crash")
    assert [(type(f), f.id) for f in sent.frames] == [(DirectSend, "d1"), (Send, "o1")]
    alice.store.close()  # killed: neither the share nor the message was confirmed

    again = alice_at(tmp_path, clock, identity)
    frames = [f for f in again.welcome(welcome(again, bob)).frames if not _resumes(f)]
    assert [(type(f), f.id) for f in frames] == [(DirectSend, "d1"), (Send, "o1")]
    assert [f.body for f in frames] == [f.body for f in sent.frames]  # the same bytes
    again.receive(Sent(room=None, seq=7, ts=NOW, id="d1"))
    again.disconnected()
    frames = [f for f in again.welcome(welcome(again, bob)).frames if not _resumes(f)]
    assert [(type(f), f.id) for f in frames] == [(Send, "o1")]  # confirmed: not resent

    bob.enter_room(room_info(again, bob), "open", None)
    share = DirectDelivery(sender=again.me, seq=7, ts=NOW, body=sent.frames[0].body)
    assert bob.receive(share).messages == []
    message = Message(room=ROOM_ID, seq=1, ts=NOW, sender=again.me, body=frames[0].body)
    assert [m.text for m in bob.receive(message).messages] == ["before the crash"]


def test_a_refused_direct_is_retried_unless_no_retry_can_succeed(
    pair: tuple[Engine, Engine],
) -> None:
    alice, _bob = pair
    first = [f for f in alice.queue(ROOM_ID, "one")[2].frames if isinstance(f, DirectSend)]
    assert [f.id for f in first] == ["d1"]
    full = Error(code=ErrorCode.UNAVAILABLE, message="The mailbox is full.", id="d1")
    assert alice.receive(full).events == []
    retried = [f for f in alice.flush_outbox().frames if isinstance(f, DirectSend)]
    assert [f.id for f in retried] == ["d1"]
    assert alice.flush_outbox().frames == []  # d1 and o1 are both on their way
    unknown = Error(code=ErrorCode.FORBIDDEN, message="The recipient is unknown.", id="d1")
    assert [type(e) for e in alice.receive(unknown).events] == [e2echat.Notice]
    alice.disconnected()
    assert not [f for f in alice.flush_outbox().frames if isinstance(f, DirectSend)]


def test_a_key_share_that_overtakes_entering_its_room_is_kept_for_it() -> None:
    """A member's share can reach the engine before the application entered the room
    the relay just put us in: it is kept, not rejected, and used once the room is in."""
    clock = Clock()
    alice, bob = make_engine("alice", clock), make_engine("bob", clock)
    alice.enter_room(room_info(alice, bob), "open", None)
    alice.welcome(welcome(alice, bob))
    bob.welcome(Welcome(user=User(key=bob.me, name=bob.name), rooms=[], mailbox=0))
    _item, _msg, sent = alice.queue(ROOM_ID, "the share came first")
    (direct,) = [f for f in sent.frames if isinstance(f, DirectSend)]
    (send,) = [f for f in sent.frames if isinstance(f, Send)]
    early = bob.receive(DirectDelivery(sender=alice.me, seq=1, ts=NOW, body=direct.body))
    assert early.events == []  # no "rejected" notice: kept
    bob.enter_room(room_info(alice, bob), "open", None)
    frame = Message(room=ROOM_ID, seq=1, ts=NOW, sender=alice.me, body=send.body)
    assert [m.text for m in bob.receive(frame).messages] == ["the share came first"]


def test_a_member_coming_online_is_asked_at_once_for_a_key_still_missing(
    pair: tuple[Engine, Engine],
) -> None:
    """Its key share was lost (or refused): when the relay says the owner is online
    again, the key request goes out then, not at the next doubled wait."""
    alice, bob = pair
    _item, _msg, out = alice.queue(ROOM_ID, "its share is lost")
    (send,) = [f for f in out.frames if isinstance(f, Send)]
    bob.receive(Message(room=ROOM_ID, seq=1, ts=NOW, sender=alice.me, body=send.body))
    clock = bob.clock
    assert isinstance(clock, Clock)
    clock.now += 31_000
    assert [f.to for f in bob.tick().frames if isinstance(f, DirectSend)] == [alice.me]
    clock.now += 31_000  # the next request is due only after 60 s
    assert not [f for f in bob.tick().frames if isinstance(f, DirectSend)]
    offline = bob.receive(Presence(key=alice.me, status="offline", last_seen=NOW))
    assert not [f for f in offline.frames if isinstance(f, DirectSend)]
    online = bob.receive(Presence(key=alice.me, status="online"))
    (request,) = [f for f in online.frames if isinstance(f, DirectSend)]
    assert request.to == alice.me
    answer = alice.receive(DirectDelivery(sender=bob.me, seq=1, ts=NOW, body=request.body))
    (share,) = [f for f in answer.frames if isinstance(f, DirectSend)]
    got = bob.receive(DirectDelivery(sender=alice.me, seq=2, ts=NOW, body=share.body))
    assert [m.text for m in got.messages] == ["its share is lost"]


def test_the_crypto_limits_cover_the_history_the_relay_announces() -> None:
    """A relay that keeps 30,000 messages per room for 60 days: the keys that open them
    are kept as long, and enough chains per sender for all of them."""
    engine = make_engine("alice", Clock())
    limits = RelayLimits(
        max_frame=65536,
        max_body=4096,
        max_members=10,
        history=30_000,
        mailbox=10,
        history_age=60 * 86_400,
    )
    engine.hello(Challenge(v=1, relay="r", nonce=b"n" * 32, limits=limits))
    policy = engine.session.policy
    assert policy.max_inbound_chains * policy.rotate_messages >= 30_000
    assert policy.max_pending == 30_000
    assert policy.inbound_grace == policy.pending_expiry == 60 * 86_400_000


def batching(engine: Engine, max_directs: int) -> None:
    """``engine`` connects to a relay that announces ``directs`` of ``max_directs`` items."""
    limits = msgspec.structs.replace(
        LIMITS, max_directs=max_directs, share_rate=500.0, share_burst=1000
    )
    engine.hello(Challenge(v=1, relay="r", nonce=b"n" * 32, limits=limits))


def test_a_new_chain_is_shared_in_batches_and_a_refused_batch_goes_again_singly() -> None:
    """Four members' shares in batches of at most three (before the message); a refused
    batch goes again at once as single directs, a confirmed one is done."""
    clock = Clock()
    engines = [make_engine(name, clock) for name in ("alice", "bob", "carol", "dave", "erin")]
    alice = engines[0]
    alice.enter_room(room_info(*engines), "open", None)
    connect(alice, *engines[1:])
    batching(alice, 3)  # after the member list, whose making says hello for each engine
    frames = alice.queue(ROOM_ID, "to all")[2].frames
    assert [type(f) for f in frames] == [DirectsSend, DirectSend, Send]
    batch, single = frames[0], frames[1]
    assert isinstance(batch, DirectsSend)
    assert isinstance(single, DirectSend)
    assert {i.to for i in batch.items} | {single.to} == {e.me for e in engines[1:]}
    refused = Error(code=ErrorCode.FORBIDDEN, message="Not in a room with you.", id=batch.id)
    again = [f for f in alice.receive(refused).frames if isinstance(f, DirectSend | DirectsSend)]
    assert [(type(f), f.to) for f in again] == [(DirectSend, i.to) for i in batch.items]
    for direct in again:
        alice.receive(Sent(room=None, seq=1, ts=NOW, id=direct.id))
    alice.receive(Sent(room=None, seq=1, ts=NOW, id=single.id))
    alice.disconnected()
    connect(alice, *engines[1:])
    batching(alice, 128)
    assert not [f for f in alice.flush_outbox().frames if isinstance(f, DirectSend | DirectsSend)]


def test_a_confirmed_batch_is_not_sent_again() -> None:
    clock = Clock()
    engines = [make_engine(name, clock) for name in ("alice", "bob", "carol")]
    alice = engines[0]
    alice.enter_room(room_info(*engines), "open", None)
    connect(alice, *engines[1:])
    batching(alice, 128)
    (batch,) = [f for f in alice.queue(ROOM_ID, "to all")[2].frames if isinstance(f, DirectsSend)]
    alice.receive(DirectsSent(seqs=[4, 9], ts=NOW, id=batch.id))
    alice.disconnected()
    connect(alice, *engines[1:])
    batching(alice, 128)
    assert not [f for f in alice.flush_outbox().frames if isinstance(f, DirectSend | DirectsSend)]


DEN_ID = b"D" * 16


def welcome_to_two_rooms(alice: Engine, lobby: list[Engine], den: list[Engine]) -> Output:
    """alice connects; she shares the lobby with ``lobby`` and the den with ``den``, both
    live; what she sends on connecting."""
    rooms = [room_info(alice, *lobby), den_info(alice, *den)]
    out = alice.welcome(Welcome(user=User(key=alice.me, name="alice"), rooms=rooms, mailbox=0))
    for room_id in (ROOM_ID, DEN_ID):
        alice.receive(Synced(room=room_id, seq=0, id="s" + room_id.hex()))
    return out


def den_info(*engines: Engine) -> RoomInfo:
    return msgspec.structs.replace(room_info(*engines), id=DEN_ID, name="den")


def in_two_rooms(
    den_names: tuple[str, ...] = ("carol", "dave"),
) -> tuple[Engine, list[Engine], list[Engine], list[DirectSend | DirectsSend]]:
    """alice, in the lobby with bob and in the den with ``den_names`` (by default carol
    and dave), starts a chain in each, one step each: a single share to bob, then a
    batch to the den. alice, the lobby's and the den's other members, her directs."""
    clock = Clock()
    alice, bob = make_engine("alice", clock), make_engine("bob", clock)
    others = {"bob": bob} | {n: make_engine(n, clock) for n in den_names if n != "bob"}
    lobby, den = [bob], [others[n] for n in den_names]
    alice.enter_room(room_info(alice, *lobby), "open", None)
    alice.enter_room(den_info(alice, *den), "open", None)
    welcome_to_two_rooms(alice, lobby, den)
    batching(alice, 128)
    directs = [
        frame
        for room_id in (ROOM_ID, DEN_ID)
        for frame in alice.queue(room_id, "first")[2].frames
        if isinstance(frame, DirectSend | DirectsSend)
    ]
    return alice, lobby, den, directs


def shares(frames: list[ClientFrame]) -> list[tuple[bytes, bytes]]:
    """The (recipient, body) of every direct in ``frames``, in order."""
    found: list[tuple[bytes, bytes]] = []
    for frame in frames:
        if isinstance(frame, DirectSend):
            found.append((frame.to, frame.body))
        elif isinstance(frame, DirectsSend):
            found += [(item.to, item.body) for item in frame.items]
    return found


def test_directs_of_several_steps_are_rebatched_into_one_frame_confirmed_as_one() -> None:
    alice, lobby, den, directs = in_two_rooms()
    members = lobby + den
    assert [type(f) for f in directs] == [DirectSend, DirectsSend]
    (merged,) = alice.rebatch_directs(list(directs))
    assert isinstance(merged, DirectsSend)
    assert shares([merged]) == shares(list(directs))
    assert [to for to, _ in shares([merged])] == [m.me for m in members]
    assert not alice.flush_outbox().frames  # all three are on their way
    alice.receive(DirectsSent(seqs=[1, 2, 3], ts=NOW, id=merged.id))
    alice.disconnected()
    assert not shares(welcome_to_two_rooms(alice, lobby, den).frames)


def test_a_refused_rebatched_frame_goes_again_singly() -> None:
    alice, _lobby, _den, directs = in_two_rooms()
    (merged,) = alice.rebatch_directs(list(directs))
    refused = Error(code=ErrorCode.FORBIDDEN, message="Not in a room with you.", id=merged.id)
    again = [f for f in alice.receive(refused).frames if isinstance(f, DirectSend | DirectsSend)]
    assert [type(f) for f in again] == [DirectSend] * 3
    assert shares(again) == shares([merged])


def test_directs_frames_of_a_connection_gone_are_left_as_they_are() -> None:
    """A rebatch asked after the disconnect changes nothing: the next connection sends
    the directs again."""
    alice, lobby, den, directs = in_two_rooms()
    alice.disconnected()
    assert alice.rebatch_directs(list(directs)) == directs
    assert shares(welcome_to_two_rooms(alice, lobby, den).frames) == shares(list(directs))


def test_a_rebatch_names_each_recipient_once_per_frame() -> None:
    """bob is in both of alice's rooms and gets a share of each chain: merged, the two
    would make one frame that names him twice, which the relay refuses whole (and the
    messages queued behind it would reach the relay before their shares)."""
    alice, [bob], [_, carol], directs = in_two_rooms(("bob", "carol"))
    assert [to for to, _ in shares(list(directs))] == [bob.me, bob.me, carol.me]
    frames = alice.rebatch_directs(list(directs))
    assert shares(frames) == shares(list(directs))  # the same directs, in order
    for frame in frames:
        named = [to for to, _ in shares([frame])]
        assert len(named) == len(set(named))
    assert len(frames) == 2


# A room the welcome does not list ------------------------------------------------------------

UNLISTED_REPLY = "u" + ROOM_ID.hex()


def left_events(out: Output) -> list[object]:
    return [e for e in out.events if isinstance(e, e2echat.RoomLeft)]


def unlisted(engine: Engine) -> Output:
    """``engine`` connects to a relay whose welcome lists none of its rooms."""
    out = engine.welcome(Welcome(user=User(key=engine.me, name=engine.name), rooms=[], mailbox=0))
    assert MembersRequest(room=ROOM_ID, id=UNLISTED_REPLY) in out.frames
    assert left_events(out) == []  # not lost yet: a deletion notice may come first
    assert engine.rooms == {}
    return out


def test_a_room_with_a_deletion_notice_is_deleted_not_lost(pair: tuple[Engine, Engine]) -> None:
    alice, _ = pair
    unlisted(alice)
    notice = alice.receive(RoomDeletion(room=ROOM_ID, reason="Spam.", ts=NOW))
    assert left_events(notice) == [e2echat.RoomDeleted(ROOM_ID, "Spam.")]
    answer = Error(code=ErrorCode.NO_SUCH_ROOM, message="There is no such room.", id=UNLISTED_REPLY)
    assert alice.receive(answer).events == []  # settled: no RoomLost, no notice of the error
    assert alice.store.rooms() == []  # forgotten here, as after a live room_deleted


def test_a_room_without_a_notice_is_lost_once_the_relay_answers(
    pair: tuple[Engine, Engine],
) -> None:
    alice, _ = pair
    unlisted(alice)
    answer = Error(code=ErrorCode.NO_SUCH_ROOM, message="There is no such room.", id=UNLISTED_REPLY)
    assert left_events(alice.receive(answer)) == [e2echat.RoomLost(ROOM_ID)]
    assert alice.receive(RoomDeletion(room=ROOM_ID, reason="Late.", ts=NOW)).events == []


def failures(out: Output) -> list[tuple[int, str]]:
    return [(e.send_id, e.reason) for e in out.events if isinstance(e, e2echat.SendFailed)]


def test_messages_queued_for_an_unlisted_room_wait_for_the_relays_word(
    pair: tuple[Engine, Engine],
) -> None:
    """Queued while away: kept while the room is unsettled (they went unsaid before),
    sent if the next welcome lists the room again."""
    alice, bob = pair
    alice.disconnected()
    alice.queue(ROOM_ID, "written on the train")
    out = unlisted(alice)
    assert not any(isinstance(f, Send) for f in out.frames)
    assert failures(out) == []
    assert [item.id for item in alice.store.outbox()] == [1]
    alice.disconnected()
    out = alice.welcome(welcome(alice, bob))
    assert [f.id for f in out.frames if isinstance(f, Send)] == ["o1"]


def test_messages_queued_for_a_room_we_lose_or_leave_fail_and_say_why(
    pair: tuple[Engine, Engine],
) -> None:
    """No message goes silently: each queued one gets a ``SendFailed`` naming why."""
    alice, _ = pair
    alice.disconnected()
    alice.queue(ROOM_ID, "one")
    alice.queue(ROOM_ID, "two")
    unlisted(alice)
    notice = alice.receive(RoomDeletion(room=ROOM_ID, reason="Spam.", ts=NOW))
    deleted = "the relay says its operator deleted the room"
    assert failures(notice) == [(1, deleted), (2, deleted)]
    assert alice.store.outbox() == []


def test_a_message_queued_for_a_room_we_leave_fails(pair: tuple[Engine, Engine]) -> None:
    alice, _ = pair
    alice.disconnected()
    alice.queue(ROOM_ID, "never mind")
    assert failures(alice.left(ROOM_ID)) == [(1, "we left the room")]


def test_an_unlisted_room_not_settled_before_a_disconnect_is_decided_again(
    pair: tuple[Engine, Engine],
) -> None:
    alice, bob = pair
    unlisted(alice)
    alice.disconnected()
    assert list(alice.rooms) == [ROOM_ID]
    out = alice.welcome(welcome(alice, bob))  # listed this time: it resumes
    assert left_events(out) == []
    assert any(isinstance(f, Sync) for f in out.frames)
    assert list(alice.rooms) == [ROOM_ID]


def test_the_engines_own_rejoin_waits_after_a_conflict_and_gives_up_on_claimed_ones(
    pair: tuple[Engine, Engine],
) -> None:
    """After a reconnect bob signs the ``join`` the log lacks; the relay answers every
    one ``log_conflict`` and serves the same log again. Before, bob fetched and signed
    again at once on each answer, as fast as the relay replied, for ever: now each try
    waits for a full-jitter moment that the tick runs out, and after ``LOG_ATTEMPTS``
    claimed conflicts bob gives up until the next connection."""
    alice, bob = pair
    create = alice.sign_log(ROOM_ID, lambda s, room, now: s.create_log(room, now))
    fetch_id, join_id = LOG_FETCH_ID + ROOM_ID.hex(), LOG_JOIN_ID + ROOM_ID.hex()
    same_log = LogEntries(room=ROOM_ID, start=0, entries=[create.entry], id=fetch_id)
    clock = bob.clock
    assert isinstance(clock, Clock)
    out = bob.welcome(welcome(bob, alice))
    assert [f.id for f in out.frames if isinstance(f, LogRequest)] == [fetch_id]
    appends: list[LogAppend] = []
    notices: list[str] = []
    while True:
        out = bob.receive(same_log)
        appends += [f for f in out.frames if isinstance(f, LogAppend)]
        notices += [e.text for e in out.events if isinstance(e, e2echat.Notice)]
        if notices:
            break
        assert appends[-1].id == join_id
        out = bob.receive(Error(code=ErrorCode.LOG_CONFLICT, message="taken", id=join_id))
        assert not [f for f in out.frames if isinstance(f, LogRequest | LogAppend)]
        clock.now += round(LOG_RETRY_MAX_S * 1000)
        out = bob.tick()
        assert [f.id for f in out.frames if isinstance(f, LogRequest)] == [fetch_id]
    assert len(appends) == LOG_ATTEMPTS
    assert "kept answering log_conflict" in notices[0]
    clock.now += round(LOG_RETRY_MAX_S * 1000)
    assert not [f for f in bob.tick().frames if isinstance(f, LogRequest | LogAppend)]


@pytest.mark.parametrize("start", [0, 1], ids=["copies", "shifted"])
def test_the_engines_log_fetch_stops_at_a_full_page_that_does_not_extend_the_log(
    pair: tuple[Engine, Engine], start: int
) -> None:
    """After a reconnect bob fetches the log and the relay answers with a full page that
    does not validate (copies of the create entry; the entry at another position than
    served): before, bob asked for the next page on every such answer, for as long as
    the relay served them."""
    alice, bob = pair
    create = alice.sign_log(ROOM_ID, lambda s, room, now: s.create_log(room, now))
    fetch_id = LOG_FETCH_ID + ROOM_ID.hex()
    bob.welcome(welcome(bob, alice))
    page = [create.entry] * MAX_LOG_PAGE
    out = bob.receive(LogEntries(room=ROOM_ID, start=start, entries=page, id=fetch_id))
    assert not [f for f in out.frames if isinstance(f, LogRequest)]
    assert [e for e in out.events if isinstance(e, e2echat.Notice) and "rejected" in e.text]
