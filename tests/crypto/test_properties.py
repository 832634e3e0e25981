"""Hypothesis properties of the sender-key ratchet and the receive path."""

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from e2echat.crypto import (
    DirectRejected,
    MessageDeferred,
    MessageRejected,
    Policy,
    ReplayRejected,
    Text,
    Undecryptable,
)
from e2echat.crypto.chain import InboundChain
from e2echat.crypto.kdf import message_key, next_chain_key
from e2echat.crypto.message import seal_body
from e2echat.crypto.policy import SECOND

from .harness import FAST, NOW, ROOM, Party, Relay, texts


def pair(policy: Policy | None = None) -> tuple[Relay, Party, Party]:
    alice = Party("alice", policy) if policy else Party("alice")
    bob = Party("bob", policy) if policy else Party("bob")
    relay = Relay(alice, bob)
    relay.join(alice)
    relay.join(bob)
    return relay, alice, bob


@FAST
@given(st.permutations(range(12)))
def test_every_delivery_order_decrypts(order: list[int]) -> None:
    relay, alice, bob = pair()
    bodies = [relay.send(alice, str(i)) for i in range(12)]
    for position in order:
        assert relay.deliver(alice, bodies[position], bob, position).messages
    assert [m.payload.body for m in bob.received] == [str(i) for i in order]


@FAST
@given(st.lists(st.integers(0, 7), min_size=1, max_size=30))
def test_every_replay_is_rejected(deliveries: list[int]) -> None:
    relay, alice, bob = pair()
    bodies = [relay.send(alice, str(i)) for i in range(8)]
    seen: set[int] = set()
    for index in deliveries:
        outcome = relay.deliver(alice, bodies[index], bob, index)
        if index in seen:
            assert outcome.messages == []
            assert outcome.events == [ReplayRejected(ROOM, alice.key, index)]
        else:
            assert [m.payload.body for m in outcome.messages] == [str(index)]
        seen.add(index)


@FAST
@given(st.data())
def test_any_flipped_or_truncated_byte_is_rejected_with_state_unchanged(
    data: st.DataObject,
) -> None:
    relay, alice, bob = pair()
    relay.deliver(alice, relay.send(alice, "warm-up"), bob)
    skipped_over = relay.send(alice, "kept for later")  # leaves a skipped key in the state
    body = relay.send(alice, "target")
    relay.deliver(alice, relay.send(alice, "after"), bob)
    if data.draw(st.booleans(), label="truncate"):
        altered = body[: data.draw(st.integers(0, len(body) - 1), label="length")]
    else:
        position = data.draw(st.integers(0, len(body) - 1), label="position")
        mask = data.draw(st.integers(1, 255), label="mask")
        altered = body[:position] + bytes([body[position] ^ mask]) + body[position + 1 :]
    before = bob.store.snapshot()
    outcome = relay.deliver(alice, altered, bob)
    assert outcome.messages == []
    assert [type(event) for event in outcome.events] == [MessageRejected]
    assert bob.store.snapshot() == before
    assert relay.deliver(alice, body, bob).messages
    assert relay.deliver(alice, skipped_over, bob).messages


@FAST
@given(st.data())
def test_any_altered_direct_is_rejected_with_state_unchanged(data: st.DataObject) -> None:
    _relay, alice, bob = pair()
    share = alice.session.encrypt(ROOM, Text("x", (), NOW), NOW).directs[0].body
    position = data.draw(st.integers(0, len(share) - 1), label="position")
    mask = data.draw(st.integers(1, 255), label="mask")
    cut = data.draw(st.integers(0, len(share) - 1), label="cut")
    before = bob.store.snapshot()
    for altered in (
        share[:position] + bytes([share[position] ^ mask]) + share[position + 1 :],
        share[:cut],
    ):
        outcome = bob.session.receive_direct(alice.key, altered, NOW)
        assert [type(event) for event in outcome.events] == [DirectRejected]
        assert bob.store.snapshot() == before


@FAST
@given(st.integers(0, 6), st.integers(1, 4))
def test_late_joiner_cannot_read_below_its_start(before: int, after: int) -> None:
    alice, bob = Party("alice"), Party("bob")
    relay = Relay(alice, bob)
    relay.join(alice)
    early = [relay.send(alice, f"e{i}") for i in range(before)]
    relay.join(bob)
    late = [relay.send(alice, f"l{i}") for i in range(after)]
    for body in early + late:
        relay.deliver(alice, body, bob)
    assert texts(bob) == [f"l{i}" for i in range(after)]
    undecryptable = [e for o in bob.outcomes for e in o.events if isinstance(e, Undecryptable)]
    assert len(undecryptable) == before


@FAST
@given(st.integers(0, 5), st.integers(1, 5))
def test_removed_member_cannot_read_after_rotation(before: int, after: int) -> None:
    alice, bob, carol = Party("alice"), Party("bob"), Party("carol")
    relay = Relay(alice, bob, carol)
    for party in (alice, bob, carol):
        relay.join(party)
    for i in range(before):
        relay.broadcast(alice, f"b{i}")
    relay.leave(carol)
    later = [relay.send(alice, f"a{i}") for i in range(after)]
    carol.session.enter_room(ROOM, [alice.member, bob.member, carol.member], NOW)
    for body in later:
        relay.deliver(alice, body, bob)
        outcome = relay.deliver(alice, body, carol)
        assert outcome.messages == []
        assert [type(e) for e in outcome.events] == [MessageDeferred]
    assert texts(carol) == [f"b{i}" for i in range(before)]
    assert texts(bob)[before:] == [f"a{i}" for i in range(after)]


@FAST
@given(st.lists(st.integers(0, 59), min_size=1, max_size=25))
def test_skip_caps_hold(deliveries: list[int]) -> None:
    policy = Policy(max_jump=20, max_skipped=8, rotate_messages=1000)
    relay, alice, bob = pair(policy)
    bodies = [relay.send(alice, str(i)) for i in range(60)]
    for index in deliveries:
        before = bob.store.snapshot()
        (record,) = bob.store.snapshot()["in"].values()
        chain = msgspec.msgpack.decode(record, type=InboundChain)
        outcome = relay.deliver(alice, bodies[index], bob)
        if index >= chain.next and index - chain.next > policy.max_jump:
            assert outcome.messages == []
            assert bob.store.snapshot() == before
        (record,) = bob.store.snapshot()["in"].values()
        after = msgspec.msgpack.decode(record, type=InboundChain)
        assert len(after.skipped) <= policy.max_skipped


@FAST
@given(st.integers(0, 5), st.text(max_size=20))
def test_chain_key_holder_cannot_forge_the_owner(index: int, text: str) -> None:
    """Bob holds Alice's chain key (so every message key) but not her signing key."""
    alice, bob, carol = Party("alice"), Party("bob"), Party("carol")
    relay = Relay(alice, bob, carol)
    for party in (alice, bob, carol):
        relay.join(party)
    relay.broadcast(alice, "genuine")
    chain_record = next(
        msgspec.msgpack.decode(raw, type=InboundChain)
        for raw in bob.store.snapshot()["in"].values()
    )
    ck = chain_record.ck
    for _ in range(index):
        ck = next_chain_key(ck)
    payload = msgspec.json.encode(Text(text, (), NOW))
    as_alice = seal_body(
        bob.identity.sign,
        ROOM,
        alice.key,
        chain_record.chain_id,
        1 + index,
        message_key(ck),
        payload,
    )
    as_bob = seal_body(
        bob.identity.sign, ROOM, bob.key, chain_record.chain_id, 1 + index, message_key(ck), payload
    )
    before = carol.store.snapshot()
    rejected = carol.session.receive(ROOM, alice.key, as_alice, NOW)
    assert rejected.messages == []
    assert isinstance(rejected.events[0], MessageRejected)
    assert carol.store.snapshot() == before
    own = carol.session.receive(ROOM, bob.key, as_bob, NOW)
    assert own.messages == []
    assert isinstance(own.events[0], MessageDeferred)
    assert texts(carol) == ["genuine"]


@FAST
@given(
    st.integers(1, 4),
    st.sets(st.integers(0, 3)),
    st.sampled_from(["rejoin", "expire"]),
    st.permutations(["share", "share", 0, 1, 2, 3]),
)
def test_no_message_is_ever_shown_twice(
    sent: int, delivered: set[int], forget: str, replays: list[str | int]
) -> None:
    """The relay keeps every share and body; the receiver then forgets the chain (leave
    and re-join, or grace-window deletion after a rotation) and the relay replays it
    all, in any order: each message still decrypts at most once."""
    policy = Policy(inbound_grace=SECOND)
    relay, alice, bob = pair(policy)
    carol = Party("carol", policy)
    relay.add(carol)
    relay.join(carol)
    outgoing = [alice.session.encrypt(ROOM, Text(str(i), (), NOW), NOW) for i in range(sent)]
    shares = [d for out in outgoing for d in out.directs if d.recipient == bob.key]
    relay.route(alice, [d for out in outgoing for d in out.directs])
    for index in sorted(delivered):
        if index < sent:
            relay.deliver(alice, outgoing[index].body, bob)
    later = NOW + 2 * SECOND
    if forget == "rejoin":
        relay.leave(bob, later)
        relay.join(bob, now=later)
    else:
        relay.leave(carol, later)  # alice rotates; bob retires, then deletes, the chain
        relay.broadcast(alice, "new chain", later)
        relay.record(bob, bob.session.tick(later + 2 * SECOND), later)
    for replay in replays:
        if replay == "share":
            relay.route(alice, shares, later + 3 * SECOND)
        elif isinstance(replay, int) and replay < sent:
            relay.deliver(alice, outgoing[replay].body, bob, now=later + 3 * SECOND)
    shown = [(message.chain_id, message.index) for message in bob.received]
    assert len(shown) == len(set(shown))
