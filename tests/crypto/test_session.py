"""Room sessions end to end, including libsignal's group-session cases."""

import msgspec
import pytest

from e2echat.crypto import (
    DEFAULT_POLICY,
    CryptoError,
    CryptoSession,
    DirectForUnknownRoom,
    DirectRejected,
    Identity,
    MemberUnverified,
    MemberValidated,
    MessageDeferred,
    MessageRejected,
    Outcome,
    Policy,
    ReplayRejected,
    RoomSecret,
    Text,
    Undecryptable,
)
from e2echat.crypto.direct import KeyRequest, Share, seal_direct
from e2echat.crypto.message import parse_body
from e2echat.crypto.policy import DAY, HOUR, MINUTE, SECOND
from e2echat.crypto.records import PendingMessage, Records
from e2echat.crypto.store import MemoryStore, Write
from e2echat.protocol.constants import HISTORY_AGE_S, HISTORY_COUNT

from .harness import NOW, ROOM, Party, Relay, texts


def events_of(party: Party, kind: type) -> list:  # type: ignore[type-arg]
    return [
        event for outcome in party.outcomes for event in outcome.events if isinstance(event, kind)
    ]


@pytest.fixture
def trio() -> tuple[Relay, Party, Party, Party]:
    alice, bob, carol = Party("alice"), Party("bob"), Party("carol")
    relay = Relay(alice, bob, carol)
    for party in (alice, bob, carol):
        relay.join(party)
    return relay, alice, bob, carol


def test_open_room_conversation(trio: tuple[Relay, Party, Party, Party]) -> None:
    relay, alice, bob, carol = trio
    relay.broadcast(alice, "hello")
    relay.broadcast(bob, "hi alice")
    relay.broadcast(alice, "how are you")
    assert texts(bob) == ["hello", "how are you"]
    assert texts(carol) == ["hello", "hi alice", "how are you"]
    assert texts(alice) == ["hi alice"]
    assert alice.session.is_secret(ROOM) is False
    assert sorted(alice.session.validated_members(ROOM)) == sorted([bob.key, carol.key])


def test_shares_go_only_once_per_chain(trio: tuple[Relay, Party, Party, Party]) -> None:
    _, alice, _, _ = trio
    first = alice.session.encrypt(ROOM, Text("a", (), NOW), NOW)
    second = alice.session.encrypt(ROOM, Text("b", (), NOW), NOW)
    assert len(first.directs) == 2
    assert second.directs == []


def test_out_of_order_100(trio: tuple[Relay, Party, Party, Party]) -> None:
    """libsignal: 100 messages delivered in reverse order all decrypt."""
    relay, alice, bob, _ = trio
    bodies = [relay.send(alice, f"m{i}") for i in range(100)]
    for seq, body in reversed(list(enumerate(bodies))):
        relay.deliver(alice, body, bob, seq)
    assert sorted(texts(bob), key=lambda t: int(t[1:])) == [f"m{i}" for i in range(100)]


def test_too_far_in_the_future() -> None:
    """libsignal: a message beyond the forward-jump limit is rejected, state unchanged."""
    policy = Policy(max_jump=2000, rotate_messages=10_000)
    alice, bob = Party("alice", policy), Party("bob", policy)
    relay = Relay(alice, bob)
    relay.join(alice)
    relay.join(bob)
    bodies = [relay.send(alice, f"m{i}") for i in range(2002)]
    before = bob.store.snapshot()
    outcome = relay.deliver(alice, bodies[2001], bob)
    assert isinstance(outcome.events[0], Undecryptable)
    assert "2000" in outcome.events[0].reason
    assert bob.store.snapshot() == before
    assert relay.deliver(alice, bodies[2000], bob).messages[0].payload.body == "m2000"


def test_late_join_cannot_read_history() -> None:
    """libsignal: a member who joins later starts at the current index."""
    alice, bob = Party("alice"), Party("bob")
    relay = Relay(alice, bob)
    relay.join(alice)
    early = [relay.send(alice, f"early{i}") for i in range(3)]
    relay.join(bob)
    late = relay.send(alice, "late")
    for body in early:
        outcome = relay.deliver(alice, body, bob)
        assert isinstance(outcome.events[0], Undecryptable)
    relay.deliver(alice, late, bob)
    assert texts(bob) == ["late"]


def test_no_session_buffers_then_decrypts_when_share_arrives() -> None:
    """libsignal "no session": the message waits for its key instead of failing."""
    alice, bob = Party("alice"), Party("bob")
    relay = Relay(alice, bob)
    relay.join(alice)
    relay.join(bob)
    outgoing = alice.session.encrypt(ROOM, Text("early bird", (), NOW), NOW)
    deferred = relay.deliver(alice, outgoing.body, bob, seq=9)
    assert deferred.events == [MessageDeferred(ROOM, alice.key, 9)]
    relay.route(alice, outgoing.directs)
    assert [(m.seq, m.payload.body) for m in bob.received] == [(9, "early bird")]


def test_missing_key_reported_and_requested_after_timeout() -> None:
    alice, bob = Party("alice"), Party("bob")
    relay = Relay(alice, bob)
    relay.join(alice)
    relay.join(bob)
    outgoing = alice.session.encrypt(ROOM, Text("lost share", (), NOW), NOW)
    relay.deliver(alice, outgoing.body, bob, seq=4)
    assert bob.session.tick(NOW + 10 * SECOND).events == []
    timed_out = bob.session.tick(NOW + 31 * SECOND)
    assert timed_out.events == [
        Undecryptable(
            ROOM, alice.key, 4, "its key has not arrived from the sender yet (asked again)", True
        )
    ]
    assert [d.recipient for d in timed_out.directs] == [alice.key]
    assert bob.session.tick(NOW + 32 * SECOND).events == []
    relay.route(bob, timed_out.directs)  # alice answers the key request
    assert texts(bob) == ["lost share"]


def test_pending_messages_expire_and_are_capped() -> None:
    policy = Policy(max_pending=2)
    alice, bob = Party("alice", policy), Party("bob", policy)
    relay = Relay(alice, bob)
    relay.join(alice)
    relay.join(bob)
    bodies = [alice.session.encrypt(ROOM, Text(str(i), (), NOW), NOW).body for i in range(3)]
    outcomes = [relay.deliver(alice, body, bob, seq) for seq, body in enumerate(bodies)]
    assert isinstance(outcomes[2].events[0], Undecryptable)
    assert len(bob.store.snapshot()["pending"]) == 2
    bob.session.tick(NOW + policy.pending_expiry)
    assert "pending" not in bob.store.snapshot()


def test_rotation_after_100_messages_and_after_7_days(
    trio: tuple[Relay, Party, Party, Party],
) -> None:
    relay, alice, bob, _ = trio
    for i in range(101):
        relay.deliver(alice, relay.send(alice, str(i)), bob)
    chains = {message.chain_id for message in bob.received}
    assert len(chains) == 2
    relay.deliver(alice, relay.send(alice, "week later", now=NOW + 7 * DAY), bob)
    assert len({message.chain_id for message in bob.received}) == 3


def test_removed_member_cannot_read_after_rotation(trio: tuple[Relay, Party, Party, Party]) -> None:
    relay, alice, bob, carol = trio
    relay.broadcast(alice, "before")
    relay.leave(carol)
    outgoing = alice.session.encrypt(ROOM, Text("after", (), NOW), NOW)
    assert [d.recipient for d in outgoing.directs] == [bob.key]
    relay.route(alice, outgoing.directs)
    relay.deliver(alice, outgoing.body, bob)
    carol.session.enter_room(ROOM, [alice.member, bob.member, carol.member], NOW)
    outcome = carol.session.receive(ROOM, alice.key, outgoing.body, NOW)
    assert outcome.messages == []
    assert texts(bob) == ["before", "after"]


def test_member_left_without_share_does_not_rotate(trio: tuple[Relay, Party, Party, Party]) -> None:
    relay, alice, bob, carol = trio
    dave = Party("dave")
    relay.add(dave)
    alice.session.member_joined(ROOM, dave.member, NOW)
    alice.session.member_left(ROOM, dave.key, NOW)
    relay.broadcast(alice, "one")
    chain = bob.received[-1].chain_id
    alice.session.member_left(ROOM, dave.key, NOW)
    relay.broadcast(alice, "two")
    assert bob.received[-1].chain_id == chain
    assert texts(carol) == ["one", "two"]


def test_old_inbound_chain_kept_for_grace_then_deleted(
    trio: tuple[Relay, Party, Party, Party],
) -> None:
    relay, alice, bob, carol = trio
    late = relay.send(alice, "late one")
    relay.leave(carol)
    relay.broadcast(alice, "new chain")
    relay.deliver(alice, late, bob)
    assert texts(bob) == ["new chain", "late one"]
    straggler = relay.send(alice, "x")
    bob.session.tick(NOW + DEFAULT_POLICY.inbound_grace + DAY)
    chains = bob.store.snapshot()["in"]
    assert len(chains) == 1
    assert relay.deliver(alice, straggler, bob).messages


def test_forged_relay_sender_and_wrong_room_are_rejected(
    trio: tuple[Relay, Party, Party, Party],
) -> None:
    relay, alice, bob, carol = trio
    body = relay.send(alice, "mine")
    forged = bob.session.receive(ROOM, carol.key, body, NOW)
    assert isinstance(forged.events[0], MessageRejected)
    moved = bob.session.receive(bytes(16), alice.key, body, NOW)
    assert isinstance(moved.events[0], MessageRejected)
    assert relay.deliver(alice, body, bob).messages


def test_replays_are_rejected(trio: tuple[Relay, Party, Party, Party]) -> None:
    relay, alice, bob, _ = trio
    body = relay.send(alice, "once")
    relay.deliver(alice, body, bob)
    assert relay.deliver(alice, body, bob).events == [ReplayRejected(ROOM, alice.key, 0)]


def test_only_the_owner_can_share_its_chain(trio: tuple[Relay, Party, Party, Party]) -> None:
    """Bob forwards Alice's chain key to Carol as his own share: it installs under Bob."""
    relay, alice, bob, carol = trio
    outgoing = alice.session.encrypt(ROOM, Text("for bob and carol", (), NOW), NOW)
    relay.route(alice, [d for d in outgoing.directs if d.recipient == bob.key])
    alice_chain = msgspec.msgpack.decode(next(iter(bob.store.snapshot()["in"].values())))
    forwarded = Share(bob.key, carol.key, ROOM, NOW, alice_chain["chain_id"], 0, alice_chain["ck"])
    body = seal_direct(bob.identity.sign, forwarded, carol.prekey)
    carol.session.receive_direct(bob.key, body, NOW)
    outcome = carol.session.receive(ROOM, alice.key, outgoing.body, NOW)
    assert outcome.messages == []
    assert isinstance(outcome.events[0], MessageDeferred)


def test_secret_room_validates_by_proof_only() -> None:
    secret = RoomSecret(bytes(32))
    alice, bob, mallory = Party("alice"), Party("bob"), Party("mallory")
    relay = Relay(alice, bob, mallory)
    relay.join(alice, secret)
    relay.join(bob, secret)
    assert alice.session.validated_members(ROOM) == [bob.key]
    assert bob.session.validated_members(ROOM) == [alice.key]
    # the relay admits mallory, who does not know the secret
    relay.join(mallory, RoomSecret(b"\x01" * 32))
    assert events_of(alice, MemberUnverified)[-1].member == mallory.key
    assert len(events_of(alice, DirectRejected)) == 1
    outgoing = alice.session.encrypt(ROOM, Text("secret", (), NOW), NOW)
    assert outgoing.directs == []
    relay.deliver(alice, outgoing.body, bob)
    assert texts(bob) == ["secret"]
    assert alice.session.is_secret(ROOM)


def test_secret_room_member_gets_keys_after_join(trio: tuple[Relay, Party, Party, Party]) -> None:
    secret = RoomSecret(b"\x07" * 32)
    alice, bob, carol = Party("alice"), Party("bob"), Party("carol")
    relay = Relay(alice, bob, carol)
    relay.join(alice, secret)
    relay.broadcast(alice, "before bob")
    relay.join(bob, secret)
    relay.join(carol, secret)
    relay.broadcast(alice, "hello both")
    relay.broadcast(carol, "hi")
    assert texts(bob) == ["hello both", "hi"]
    assert texts(alice) == ["hi"]
    assert events_of(bob, MemberValidated)


def test_a_namesake_is_a_new_person_not_a_key_change(
    trio: tuple[Relay, Party, Party, Party],
) -> None:
    """Another key under a known (even verified) name is simply another member: the
    real one keeps receiving, the newcomer gets what an open room gives anyone."""
    relay, alice, bob, _carol = trio
    alice.session.contacts.mark_verified(bob.key)
    relay.broadcast(alice, "one")
    impostor = Party("bob-2")
    impostor.name = "bob"
    relay.add(impostor)
    relay.join(impostor)
    relay.broadcast(alice, "two")
    assert texts(bob) == ["one", "two"]
    assert texts(impostor) == ["two"]
    contacts = alice.session.contacts
    assert [(c.name, c.verified) for c in map(contacts.get, (bob.key, impostor.key)) if c] == [
        ("bob", True),
        ("bob", False),
    ]
    assert events_of(alice, MemberUnverified) == []


def test_invalid_prekey_leaves_member_unshared(trio: tuple[Relay, Party, Party, Party]) -> None:
    _relay, alice, _, _ = trio
    dave = Party("dave")
    bad = msgspec.structs.replace(dave.member, prekey=Party("eve").prekey)
    outcome = alice.session.member_joined(ROOM, bad, NOW)
    assert isinstance(outcome.events[0], MemberUnverified)
    assert dave.key not in alice.session.validated_members(ROOM)


def test_reentry_reconciles_the_member_list(trio: tuple[Relay, Party, Party, Party]) -> None:
    relay, alice, bob, _carol = trio
    relay.broadcast(alice, "one")
    alice.session.enter_room(ROOM, [alice.member, bob.member], NOW)
    assert alice.session.validated_members(ROOM) == [bob.key]
    outgoing = alice.session.encrypt(ROOM, Text("two", (), NOW), NOW)
    assert [d.recipient for d in outgoing.directs] == [bob.key]


def test_local_misuse_raises() -> None:
    alice = Party("alice")
    with pytest.raises(CryptoError, match="unknown room"):
        alice.session.encrypt(ROOM, Text("x", (), NOW), NOW)
    assert alice.session.validated_members(ROOM) == []


def test_key_request_proof_validates_a_joiner_whose_join_was_lost() -> None:
    secret = RoomSecret(b"\x09" * 32)
    alice, bob = Party("alice"), Party("bob")
    relay = Relay(alice, bob)
    relay.join(alice, secret)
    relay.members.append(bob)
    alice.session.member_joined(ROOM, bob.member, NOW)
    lost = bob.session.enter_room(ROOM, [alice.member, bob.member], NOW, secret=secret)
    assert len(lost.directs) == 1  # the join, dropped by the network
    first = alice.session.encrypt(ROOM, Text("unseen", (), NOW), NOW)
    assert first.directs == []
    relay.deliver(alice, first.body, bob, seq=1)
    request = bob.session.tick(NOW + 31 * SECOND)
    relay.route(bob, request.directs, NOW + 31 * SECOND)
    assert alice.session.validated_members(ROOM) == [bob.key]
    assert bob.session.validated_members(ROOM) == [alice.key]
    reported = events_of(bob, Undecryptable)
    assert [(event.seq, "precedes" in event.reason) for event in reported] == [(1, True)]
    relay.deliver(alice, relay.send(alice, "seen", NOW + 31 * SECOND), bob, 2, NOW + 31 * SECOND)
    assert texts(bob) == ["seen"]


def request_from(party: Party, owner: Party, chain_id: bytes, now: int = NOW) -> Outcome:
    """``party`` asks ``owner`` for chain ``chain_id`` (an open room: no proof)."""
    request = KeyRequest(party.key, owner.key, ROOM, now, chain_id)
    body = seal_direct(party.identity.sign, request, owner.prekey)
    return owner.session.receive_direct(party.key, body, now)


def test_key_request_for_a_replaced_chain_is_answered_at_the_index_first_given(
    trio: tuple[Relay, Party, Party, Party],
) -> None:
    """docs/crypto.md 9.4: the owner answers for any chain it keeps, only to a member it
    gave that chain to, from the index it gave, so nobody reads what it could not."""
    relay, alice, bob, carol = trio
    first = relay.broadcast(alice, "before dave")
    dave = Party("dave")
    relay.add(dave)
    relay.join(dave)
    outgoing = alice.session.encrypt(ROOM, Text("after dave", (), NOW), NOW)
    relay.route(alice, [d for d in outgoing.directs if d.recipient != dave.key])  # lost
    relay.leave(carol)
    relay.broadcast(alice, "new chain")
    chain_id = parse_body(first).header.chain_id
    assert parse_body(outgoing.body).header.chain_id == chain_id

    answer = request_from(dave, alice, chain_id)
    (share,) = answer.directs
    relay.route(alice, [share])
    assert isinstance(relay.deliver(alice, first, dave).events[0], Undecryptable)  # before
    assert [m.payload.body for m in relay.deliver(alice, outgoing.body, dave).messages] == [
        "after dave"
    ]
    assert request_from(carol, alice, chain_id).directs == []  # left: nothing
    assert request_from(Party("mallory"), alice, chain_id).directs == []  # never a member
    later = NOW + DEFAULT_POLICY.retention
    alice.session.tick(later)
    assert "kept" not in alice.store.snapshot()  # past the relay's retention: deleted
    assert request_from(bob, alice, chain_id, later).directs == []


def test_replaced_chains_kept_are_capped_per_room() -> None:
    policy = Policy(max_retained_chains=2, rotate_messages=1)
    alice, bob = Party("alice", policy), Party("bob", policy)
    relay = Relay(alice, bob)
    relay.join(alice)
    relay.join(bob)
    bodies = [relay.broadcast(alice, str(i), NOW + i) for i in range(5)]
    assert len(alice.store.snapshot()["kept"]) == 2  # the newest two replaced chains
    oldest, newest_kept = (parse_body(bodies[i]).header.chain_id for i in (0, 3))
    assert request_from(bob, alice, oldest).directs == []
    assert len(request_from(bob, alice, newest_kept).directs) == 1


def test_entering_with_another_secret_starts_afresh(
    trio: tuple[Relay, Party, Party, Party],
) -> None:
    relay, alice, bob, carol = trio
    relay.broadcast(alice, "open")
    secret = RoomSecret(b"\x05" * 32)
    entered = alice.session.enter_room(ROOM, [m.member for m in relay.members], NOW, secret=secret)
    assert {d.recipient for d in entered.directs} == {bob.key, carol.key}  # joins
    assert alice.session.validated_members(ROOM) == []
    outgoing = alice.session.encrypt(ROOM, Text("secret now", (), NOW), NOW)
    assert outgoing.directs == []
    assert parse_body(outgoing.body).header.chain_id != bob.received[0].chain_id


def test_a_namesake_joining_does_not_rotate_or_read_the_past(
    trio: tuple[Relay, Party, Party, Party],
) -> None:
    relay, alice, bob, _ = trio
    relay.broadcast(alice, "one")
    impostor = Party("bob-2")
    impostor.name = "bob"
    relay.add(impostor)
    joined = alice.session.member_joined(ROOM, impostor.member, NOW)
    assert [type(e) for e in joined.events] == [MemberValidated]
    relay.join(impostor)
    relay.broadcast(alice, "two")
    assert len({m.chain_id for m in bob.received}) == 1
    assert texts(impostor) == ["two"]


def test_chain_caps_and_windows_cover_what_the_relay_retains() -> None:
    """Nothing the relay keeps by default (10,000 messages, 30 days) is lost to a cap."""
    policy = DEFAULT_POLICY
    assert policy.max_retained_chains * policy.rotate_messages >= HISTORY_COUNT
    assert policy.max_inbound_chains * policy.rotate_messages >= HISTORY_COUNT
    assert policy.max_pending >= HISTORY_COUNT
    windows = (policy.retention, policy.inbound_grace, policy.skipped_ttl, policy.pending_expiry)
    assert min(windows) >= HISTORY_AGE_S * SECOND


def test_a_relay_keeping_more_raises_the_windows_and_caps_never_lowers_or_unbounds_them() -> None:
    """What the relay announces it retains decides how long keys are kept: a relay that
    keeps 50,000 messages for 90 days gets caps and windows that cover them; one that
    keeps less leaves the policy as chosen; one that claims for ever is followed only up
    to a year and 100,000 messages."""
    chosen = Policy(pending_timeout=300)
    bigger = chosen.covering(50_000, 90 * DAY)
    assert (bigger.max_retained_chains, bigger.max_inbound_chains) == (500, 500)
    assert bigger.max_pending == 50_000
    windows = (bigger.retention, bigger.inbound_grace, bigger.skipped_ttl, bigger.pending_expiry)
    assert windows == (90 * DAY,) * 4
    assert bigger.pending_timeout == 300  # what it does not decide stays as chosen
    assert chosen.covering(1000, DAY) == chosen
    greedy = chosen.covering(10**12, 10**15)
    assert (greedy.retention, greedy.max_pending, greedy.max_inbound_chains) == (
        365 * DAY,
        100_000,
        1000,
    )
    session = CryptoSession(Identity.generate(), MemoryStore(), policy=chosen)
    session.cover_relay_retention(50_000, 90 * DAY)
    session.cover_relay_retention(20_000, 60 * DAY)  # another relay: from the chosen policy
    assert session.policy == chosen.covering(20_000, 60 * DAY)


def test_a_direct_for_a_room_not_entered_yet_is_handed_back_unchanged() -> None:
    alice, bob = Party("alice"), Party("bob")
    relay = Relay(alice, bob)
    relay.join(alice)
    relay.join(bob)
    (direct,) = alice.session.encrypt(ROOM, Text("hi", (), NOW), NOW).directs
    bob.session.leave_room(ROOM)  # as if bob had not entered it yet
    before = bob.store.snapshot()
    outcome = bob.session.receive_direct(alice.key, direct.body, NOW)
    assert outcome.events == [DirectForUnknownRoom(alice.key, ROOM, direct.body)]
    assert bob.store.snapshot() == before  # nothing acted on, nothing remembered


@pytest.mark.parametrize(
    ("offset", "why"),
    [
        (20 * MINUTE, "dated in the future: 20 minutes ahead of our clock"),
        (-8 * DAY, "too old: dated 8 days before our clock"),
    ],
)
@pytest.mark.parametrize("share_first", [True, False])
def test_a_share_refused_for_its_date_is_the_reason_given_for_its_messages(
    offset: int, why: str, share_first: bool
) -> None:
    """A sender whose clock is off: its messages are reported with that reason (never
    as "not arrived"), and they follow once a share with a good date comes."""
    alice, bob = Party("alice"), Party("bob")
    relay = Relay(alice, bob)
    relay.join(alice)
    relay.join(bob)
    skewed = alice.session.encrypt(ROOM, Text("from a wrong clock", (), NOW), NOW + offset)
    (share,) = skewed.directs
    reports = []
    if not share_first:
        assert bob.session.receive(ROOM, alice.key, skewed.body, NOW, 1).messages == []
    refused = bob.session.receive_direct(alice.key, share.body, NOW)
    assert [type(e) for e in refused.events][:1] == [DirectRejected]
    assert why in refused.events[0].reason  # type: ignore[union-attr]
    reports += refused.events[1:]
    if share_first:  # the message comes after its refused share: reported at once
        arrived = bob.session.receive(ROOM, alice.key, skewed.body, NOW, 1)
        assert arrived.messages == []
        reports += arrived.events
    (report,) = [e for e in reports if isinstance(e, Undecryptable)]
    assert report.waiting
    assert report.reason.startswith("its key share was refused: direct envelope is")
    assert why in report.reason
    assert bob.session.tick(NOW + 62 * SECOND).events == []  # reported once

    request = KeyRequest(bob.key, alice.key, ROOM, NOW, parse_body(skewed.body).header.chain_id)
    answered = alice.session.receive_direct(
        bob.key, seal_direct(bob.identity.sign, request, alice.prekey), NOW
    )
    (fresh,) = answered.directs  # alice's clock is right again
    arrived = bob.session.receive_direct(alice.key, fresh.body, NOW)
    assert [m.payload.body for m in arrived.messages] == ["from a wrong clock"]


def test_a_waiting_chain_is_asked_for_again_each_wait_twice_the_last() -> None:
    """A key request or its answer can be lost or refused (a clock off, then set
    right): requests repeat while messages wait, with doubling waits, one per chain."""
    alice, bob = Party("alice"), Party("bob")
    relay = Relay(alice, bob)
    relay.join(alice)
    relay.join(bob)
    first = alice.session.encrypt(ROOM, Text("one", (), NOW), NOW)  # its share is lost
    second = alice.session.encrypt(ROOM, Text("two", (), NOW), NOW)
    relay.deliver(alice, first.body, bob, 1)
    relay.deliver(alice, second.body, bob, 2)
    timeout = DEFAULT_POLICY.pending_timeout
    ticks = {at: len(bob.session.tick(NOW + at).directs) for at in range(0, 10 * timeout, SECOND)}
    asked = {at: count for at, count in ticks.items() if count}
    # one request for the chain (not one per message), then after waits of 2 and 4 timeouts
    assert asked == {timeout: 1, 3 * timeout: 1, 7 * timeout: 1}
    late = bob.session.tick(NOW + 10 * timeout)
    assert late.directs == []
    (request,) = bob.session.tick(NOW + 15 * timeout).directs  # 8 timeouts after the last
    relay.route(bob, [request])  # alice answers: both messages follow
    assert texts(bob) == ["one", "two"]
    assert bob.session.tick(NOW + 100 * timeout).directs == []  # nothing waits: no more


def test_a_waiting_chain_is_asked_for_at_once_when_its_owner_comes_online() -> None:
    """An owner that comes online (restarted with its clock set right, say) is asked
    for the chains still waiting at once, not at the next doubled wait; at most once a
    ``pending_timeout``, however often the relay says it is online."""
    alice, bob, carol = Party("alice"), Party("bob"), Party("carol")
    relay = Relay(alice, bob, carol)
    for party in (alice, bob, carol):
        relay.join(party)
    lost = alice.session.encrypt(ROOM, Text("one", (), NOW), NOW)  # its shares are lost
    relay.deliver(alice, lost.body, bob, 1)
    timeout = DEFAULT_POLICY.pending_timeout
    assert len(bob.session.tick(NOW + timeout).directs) == 1  # asked, then waits 2 timeouts
    assert bob.session.member_online(carol.key, NOW + 2 * timeout).directs == []  # not its
    assert bob.session.member_online(alice.key, NOW + timeout + 1).directs == []  # just asked
    (request,) = bob.session.member_online(alice.key, NOW + 2 * timeout).directs
    assert request.recipient == alice.key
    assert bob.session.tick(NOW + 3 * timeout).directs == []  # the doubled wait goes on
    relay.route(bob, [request])  # alice answers: the message follows
    assert texts(bob) == ["one"]
    assert bob.session.member_online(alice.key, NOW + 10 * timeout).directs == []  # none waits


class CountingStore(MemoryStore):
    """A store that counts the waiting messages read (``scan`` of ``pending``)."""

    def __init__(self) -> None:
        super().__init__()
        self.messages_read = 0

    def scan(self, space: str, prefix: bytes = b"") -> list[tuple[bytes, bytes]]:
        found = super().scan(space, prefix)
        if space == "pending":
            self.messages_read += len(found)
        return found


def test_the_tick_reads_a_waiting_message_only_when_something_is_due_for_it() -> None:
    """Housekeeping reads one small record per waiting chain, not the messages: those
    are read once to be reported (their chain overdue), once to be decrypted (its key
    came); one arriving for a chain already reported is reported at once."""
    alice, bob = Party("alice"), Party("bob")
    bob.store = CountingStore()
    bob.session = CryptoSession(bob.identity, bob.store)
    bob.prekey = bob.session.current_prekey(NOW)
    relay = Relay(alice, bob)
    relay.join(alice)
    relay.join(bob)
    bodies = [alice.session.encrypt(ROOM, Text(f"m{i}", (), NOW), NOW) for i in range(50)]
    (share,) = bodies[0].directs  # lost for now
    for seq, outgoing in enumerate(bodies[:40], start=1):
        relay.deliver(alice, outgoing.body, bob, seq)
    timeout = DEFAULT_POLICY.pending_timeout
    for at in range(0, timeout, SECOND):
        assert bob.session.tick(NOW + at).events == []
    assert bob.store.messages_read == 0
    reported = bob.session.tick(NOW + timeout)
    assert [e.seq for e in reported.events if isinstance(e, Undecryptable)] == list(range(1, 41))
    assert bob.store.messages_read == 40
    for at in range(timeout, 10 * timeout, SECOND):
        assert bob.session.tick(NOW + at).events == []
    late = relay.deliver(alice, bodies[40].body, bob, 41)
    assert [(type(e), e.seq) for e in late.events] == [(MessageDeferred, 41), (Undecryptable, 41)]
    assert bob.store.messages_read == 40
    relay.route(alice, [share])  # the key comes: each waiting message is read once more
    assert texts(bob) == [f"m{i}" for i in range(41)]
    assert bob.store.messages_read == 40 + 41
    assert bob.session.tick(NOW + 11 * timeout).directs == []  # nothing waits


def test_waiting_messages_are_capped_per_room_and_expire() -> None:
    """At most ``max_pending`` wait per room (over all chains); each is dropped once it
    waited ``pending_expiry`` (and a chain with none left is forgotten)."""
    policy = Policy(max_pending=3, pending_expiry=DAY, rotate_messages=2)
    alice, bob = Party("alice", policy), Party("bob", policy)
    relay = Relay(alice, bob)
    relay.join(alice)
    relay.join(bob)
    sent = [alice.session.encrypt(ROOM, Text(f"m{i}", (), NOW), NOW) for i in range(4)]
    shares = [direct for outgoing in sent for direct in outgoing.directs]
    assert len(shares) == 2  # two chains of two messages
    for seq, outgoing in enumerate(sent[:3], start=1):
        relay.deliver(alice, outgoing.body, bob, seq, NOW + seq * HOUR)
    (full,) = relay.deliver(alice, sent[3].body, bob, 4).events
    assert full == Undecryptable(ROOM, alice.key, 4, "too many messages waiting")
    bob.session.tick(NOW + DAY + HOUR)  # m0 expired; m1 (same chain) and m2 still wait
    bob.session.tick(NOW + DAY + 3 * HOUR)  # m1 and m2 too: nothing is left
    relay.route(alice, shares)
    assert texts(bob) == []
    assert bob.store.snapshot().get("waiting") is None


def test_a_transaction_counts_records_with_its_own_writes_and_reads_none() -> None:
    store = MemoryStore()
    store.apply([Write("pending", b"r1", b"x"), Write("pending", b"r2", b"y")])
    txn = Records(store).begin()
    txn.delete("pending", b"r1")
    txn.put("pending", b"r3", PendingMessage(ROOM, ROOM * 2, ROOM, 0, 1, b"", NOW))
    txn.put("pending", b"s1", PendingMessage(ROOM, ROOM * 2, ROOM, 0, 1, b"", NOW))
    assert txn.count("pending", b"r") == 2  # r2 and r3
