"""Attacks found in the security review, each pinned by the test that first failed.

A malicious relay replays old shares after a chain was deleted (leave and re-join, grace
deletion, a switch to secret); a malicious member drives a chain to the end of the u32
index space, piles up chains, or signs a low-order prekey; a non-member asks for keys;
secrets leak through rich's pretty printer (used by the TUI's logs) or ``Write`` reprs;
invites have more than one spelling.
"""

import msgspec
import pytest
from rich.pretty import pretty_repr

from e2echat.crypto import (
    AnnouncedMember,
    Decrypted,
    Invite,
    InviteError,
    MalformedError,
    MemberUnverified,
    Policy,
    PrekeyError,
    ReplayRejected,
    RoomSecret,
    Text,
    Undecryptable,
    Write,
)
from e2echat.crypto.chain import InboundChain, OutboundChain, SkippedKey
from e2echat.crypto.direct import Join, KeyRequest, Share, seal_direct
from e2echat.crypto.kdf import message_key
from e2echat.crypto.message import parse_body, seal_body
from e2echat.crypto.policy import DAY
from e2echat.crypto.prekeys import U32_MAX, SignedPrekey
from e2echat.crypto.primitives import seal
from e2echat.crypto.records import PrekeyRecord, RoomRecord
from e2echat.protocol.transcripts import prekey_transcript

from .harness import NOW, ROOM, Party, Relay, texts

SECRET = b"\xa5" * 32


def pair(policy: Policy | None = None) -> tuple[Relay, Party, Party]:
    alice = Party("alice", policy) if policy else Party("alice")
    bob = Party("bob", policy) if policy else Party("bob")
    relay = Relay(alice, bob)
    relay.join(alice)
    relay.join(bob)
    return relay, alice, bob


def test_old_share_replayed_after_rejoin_cannot_replay_messages() -> None:
    """The relay keeps Alice's share and bodies, Bob leaves and comes back, the relay
    replays them: the old chain must not decrypt the consumed messages again."""
    relay, alice, bob = pair()
    first = alice.session.encrypt(ROOM, Text("transfer 100", (), NOW), NOW)
    relay.route(alice, first.directs)
    relay.deliver(alice, first.body, bob)
    assert texts(bob) == ["transfer 100"]
    relay.leave(bob)
    relay.join(bob)
    relay.route(alice, first.directs)  # the relay replays the old share (twice) ...
    relay.route(alice, first.directs)
    replayed = relay.deliver(alice, first.body, bob)  # ... and the old message
    assert replayed.messages == []
    assert texts(bob) == ["transfer 100"]


def test_old_share_replayed_after_grace_deletion_cannot_replay_messages() -> None:
    """A retired chain deleted after its grace window must not come back from a share
    that is still fresh."""
    relay, alice, bob = pair(Policy(inbound_grace=DAY))
    first = alice.session.encrypt(ROOM, Text("once", (), NOW), NOW)
    relay.route(alice, first.directs)
    relay.deliver(alice, first.body, bob)
    carol = Party("carol")
    relay.add(carol)
    relay.join(carol)
    relay.broadcast(alice, "with carol")
    relay.leave(carol)  # alice rotates: bob retires the first chain
    relay.broadcast(alice, "new chain")
    bob.session.tick(NOW + DAY + 1)
    later = NOW + DAY + 2
    for direct in first.directs:
        bob.session.receive_direct(alice.key, direct.body, later)
    replayed = bob.session.receive(ROOM, alice.key, first.body, later)
    assert replayed.messages == []
    assert texts(bob) == ["once", "with carol", "new chain"]


def test_reshare_of_a_deleted_chain_still_reads_new_messages() -> None:
    """Alice never heard that Bob left, so she still holds him in her chain and answers
    his key request from the index he was first given: he reads what he has not read."""
    relay, alice, bob = pair()
    first = alice.session.encrypt(ROOM, Text("read", (), NOW), NOW)
    relay.route(alice, first.directs)
    relay.deliver(alice, first.body, bob)
    bob.session.leave_room(ROOM)
    bob.session.enter_room(ROOM, [alice.member, bob.member], NOW)
    second = alice.session.encrypt(ROOM, Text("unread", (), NOW), NOW)
    assert second.directs == []  # alice thinks bob holds the chain
    relay.deliver(alice, second.body, bob, seq=1)
    request = KeyRequest(bob.key, alice.key, ROOM, NOW, parse_body(first.body).header.chain_id)
    relay.record(
        alice,
        alice.session.receive_direct(
            bob.key, seal_direct(bob.identity.sign, request, alice.prekey), NOW
        ),
    )
    assert texts(bob) == ["read", "unread"]
    assert relay.deliver(alice, first.body, bob).messages == []


def test_last_u32_index_is_rejected_and_state_stays_readable() -> None:
    """A member shares its chain at the end of the index space and sends there: the
    stored chain must stay decodable (else every later ``tick`` raises)."""
    _relay, alice, mallory = pair()
    ck = b"\x11" * 32
    chain_id = b"\x22" * 16
    share = Share(mallory.key, alice.key, ROOM, NOW, chain_id, U32_MAX, ck)
    alice.session.receive_direct(
        mallory.key, seal_direct(mallory.identity.sign, share, alice.prekey), NOW
    )
    payload = msgspec.json.encode(Text("end", (), NOW))
    body = seal_body(
        mallory.identity.sign, ROOM, mallory.key, chain_id, U32_MAX, message_key(ck), payload
    )
    outcome = alice.session.receive(ROOM, mallory.key, body, NOW)
    assert outcome.messages == []
    assert isinstance(outcome.events[0], Undecryptable)
    alice.session.tick(NOW + 1)  # must not raise


def test_key_request_from_a_non_member_is_ignored() -> None:
    relay, alice, _bob = pair()
    sent = relay.send(alice, "hi")
    dave = Party("dave")
    request = KeyRequest(dave.key, alice.key, ROOM, NOW, parse_body(sent).header.chain_id)
    body = seal_direct(dave.identity.sign, request, alice.prekey)
    before = alice.store.snapshot()
    outcome = alice.session.receive_direct(dave.key, body, NOW)
    assert outcome.directs == []
    assert alice.store.snapshot() == before


def test_old_open_room_chains_do_not_survive_a_switch_to_secret() -> None:
    """An open-room chain must not decrypt in the same room once it is secret: its
    sender has not proved the secret."""
    relay, alice, bob = pair()
    relay.broadcast(bob, "open")
    later = bob.session.encrypt(ROOM, Text("still open chain", (), NOW), NOW).body
    alice.session.enter_room(ROOM, [alice.member, bob.member], NOW, secret=RoomSecret(SECRET))
    outcome = alice.session.receive(ROOM, bob.key, later, NOW)
    assert outcome.messages == []
    assert texts(alice) == ["open"]


def _secretless(text: str) -> None:
    assert "a5" * 8 not in text
    assert repr(SECRET)[2:20] not in text
    assert "hunter2" not in text


def test_pretty_printing_never_shows_secrets_or_plaintext() -> None:
    """rich (the TUI's logging) renders msgspec structs field by field, bypassing
    ``__repr__``; it must show the same redacted view."""
    prekey = SignedPrekey(1, b"\x01" * 32, b"\x02" * 64)
    text = Text("hunter2", (SECRET,), NOW)
    values: list[object] = [
        Share(b"\x00" * 32, b"\x00" * 32, ROOM, NOW, ROOM, 0, SECRET, SECRET),
        Join(b"\x00" * 32, b"\x00" * 32, ROOM, NOW, SECRET),
        KeyRequest(b"\x00" * 32, b"\x00" * 32, ROOM, NOW, ROOM, SECRET),
        SkippedKey(3, SECRET, NOW),
        InboundChain(ROOM, b"\x00" * 32, ROOM, SECRET, 1, 0, NOW, (SkippedKey(0, SECRET, NOW),)),
        OutboundChain(ROOM, SECRET, 0, SECRET, NOW),
        PrekeyRecord(1, SECRET, prekey, NOW),
        RoomRecord(ROOM, SECRET),
        text,
        Decrypted(ROOM, b"\x00" * 32, 1, ROOM, 0, text),
        Write("in", b"k", SECRET),
    ]
    for value in values:
        _secretless(pretty_repr(value))
        _secretless(repr(value))


def test_replayed_message_buffered_before_the_old_share_is_a_replay() -> None:
    """A message consumed before leaving, replayed before the old share (so it waits in
    the buffer), is reported as a replay once the share revives its chain."""
    relay, alice, bob = pair()
    first = alice.session.encrypt(ROOM, Text("x", (), NOW), NOW)
    relay.route(alice, first.directs)
    relay.deliver(alice, first.body, bob)
    relay.leave(bob)
    relay.join(bob)
    pending = relay.deliver(alice, first.body, bob)  # buffered: no chain yet
    assert pending.messages == []
    relay.route(alice, first.directs)
    assert texts(bob) == ["x"]
    events = [e for o in bob.outcomes for e in o.events]
    assert ReplayRejected(ROOM, alice.key, 0) in events


def test_write_repr_hides_the_value() -> None:
    assert "redacted" in repr(Write("in", b"key", SECRET))
    assert repr(Write("in", b"key", None)).endswith("None)")


def test_invite_parsing_is_canonical() -> None:
    """One room, one invite string: a doubled or trailing slash is not a second form."""
    good = str(Invite("wss://chat.example.org", "ops", RoomSecret(SECRET)))
    assert str(Invite.parse(good)) == good
    for bad in (
        good.replace("org/ops", "org//ops"),
        good.replace("wss://", "wss:///"),
        good.replace("org/ops", "org/path//ops"),
    ):
        with pytest.raises(InviteError):
            Invite.parse(bad)


def test_a_member_cannot_pile_up_chains() -> None:
    """Each share of a new chain may bring 1,000 skipped keys later: the number of chains
    kept per sender is capped, the oldest retired ones going first (as tombstones)."""
    _relay, alice, mallory = pair(Policy(max_inbound_chains=3))
    for number in range(6):
        share = Share(mallory.key, alice.key, ROOM, NOW, bytes([number]) * 16, 0, SECRET)
        body = seal_direct(mallory.identity.sign, share, alice.prekey)
        assert not alice.session.receive_direct(mallory.key, body, NOW + number).events
    state = alice.store.snapshot()
    assert len(state["in"]) == 3
    assert len(state["gone"]) == 3
    kept = {key[-16:] for key in state["in"]}
    assert kept == {bytes([number]) * 16 for number in (3, 4, 5)}


def test_chains_whose_messages_came_first_count_against_the_cap() -> None:
    """A chain installed while its messages wait retires no other chain (it may be an
    old one, section 9.3); a member sending each message before its share still
    cannot make us keep more chains than the cap."""
    relay, alice, mallory = pair(Policy(max_inbound_chains=3, rotate_messages=1))
    for number in range(6):
        outgoing = mallory.session.encrypt(ROOM, Text(str(number), (), NOW), NOW + number)
        relay.deliver(mallory, outgoing.body, alice, now=NOW + number)  # waits for its key
        relay.route(mallory, outgoing.directs, NOW + number)
    assert texts(alice) == [str(number) for number in range(6)]
    assert len(alice.store.snapshot()["in"]) == 3


def test_revived_chains_count_against_the_cap() -> None:
    """Re-sharing tombstoned chains must not get round the per-sender cap."""
    _relay, alice, mallory = pair(Policy(max_inbound_chains=2))
    bodies = []
    for number in range(4):
        share = Share(mallory.key, alice.key, ROOM, NOW, bytes([number]) * 16, 0, SECRET)
        bodies.append(seal_direct(mallory.identity.sign, share, alice.prekey))
    for repeat in range(3):
        for number, body in enumerate(bodies):
            alice.session.receive_direct(mallory.key, body, NOW + 10 * repeat + number)
    assert len(alice.store.snapshot()["in"]) <= 2


@pytest.mark.parametrize(
    "point",
    [
        bytes(32),
        b"\x01" + bytes(31),
        bytes.fromhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
    ],
)
def test_a_signed_low_order_prekey_cannot_stop_the_room(point: bytes) -> None:
    """A member signs a low-order X25519 point as its prekey: sealing to it fails inside
    libsodium, so it must be refused when announced, not blow up every ``encrypt``."""
    relay, alice, bob = pair()
    mallory = Party("mallory")
    relay.add(mallory)
    prekey_id = 7
    sig = mallory.identity.sign(prekey_transcript(prekey_id, point))
    bad = AnnouncedMember(mallory.key, "mallory", SignedPrekey(prekey_id, point, sig))
    outcome = alice.session.member_joined(ROOM, bad, NOW)
    assert any(isinstance(event, MemberUnverified) for event in outcome.events)
    assert mallory.key not in alice.session.validated_members(ROOM)
    relay.broadcast(alice, "still works")
    assert texts(bob) == ["still works"]


def test_sealing_to_a_low_order_key_is_a_crypto_error() -> None:
    with pytest.raises(PrekeyError):
        seal(bytes(32), b"inner")


@pytest.mark.parametrize(("prekey_id", "size"), [(2**32, 32), (-1, 32), (7, 31), (7, 33)])
def test_an_out_of_range_prekey_is_refused_not_raised(prekey_id: int, size: int) -> None:
    """``AnnouncedMember`` is built by the client without validation: a prekey id or key outside
    the wire ranges must be refused like a bad signature, never raise or be stored."""
    _relay, alice, _bob = pair()
    mallory = Party("mallory")
    prekey = SignedPrekey(prekey_id, b"\x09" * size, b"\x00" * 64)
    outcome = alice.session.member_joined(
        ROOM, AnnouncedMember(mallory.key, "mallory", prekey), NOW
    )
    assert any(isinstance(event, MemberUnverified) for event in outcome.events)
    assert mallory.key not in alice.session.validated_members(ROOM)
    alice.session.tick(NOW)


def test_a_member_key_of_the_wrong_size_is_misuse_and_stores_nothing() -> None:
    """A key that is not 32 bytes would be stored in the roster and TOFU records and then
    fail to decode on every later read: it is refused before anything is written."""
    _relay, alice, bob = pair()
    before = alice.store.snapshot()
    with pytest.raises(MalformedError):
        alice.session.member_joined(ROOM, AnnouncedMember(b"\x01" * 31, "odd", bob.prekey), NOW)
    with pytest.raises(MalformedError):
        alice.session.enter_room(ROOM, [AnnouncedMember(b"\x01" * 33, "odd", bob.prekey)], NOW)
    assert alice.store.snapshot() == before
