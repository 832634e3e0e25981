"""Kick, ban, roles and rotation through the membership log, and the attacks on them.

The relay here is the harness's in-memory one; each test plays the relay's part of an
attack (replaying, withholding, reordering, forking) and checks that it fails closed.
"""

import msgspec
import pytest

from e2echat.crypto import (
    AuthorityError,
    DirectRejected,
    Kind,
    LogBehind,
    LogForked,
    LogRejected,
    MemberValidated,
    MessageRejected,
    ProofError,
    Role,
    RoomChanged,
    RoomKeyMissing,
    RoomSecret,
    Text,
)
from e2echat.crypto.direct import Join, RoomKeyRequest, Share, seal_direct
from e2echat.crypto.message import parse_body
from e2echat.crypto.roomsecret import make_proof

from .harness import NOW, ROOM, Party, Relay, texts


def events_of(party: Party, kind: type) -> list:  # type: ignore[type-arg]
    return [e for outcome in party.outcomes for e in outcome.events if isinstance(e, kind)]


class Room:
    """A secret room: alice created it (owner), bob and carol joined through the log."""

    def __init__(self, *names: str) -> None:
        self.secret = RoomSecret.generate()
        self.parties = {name: Party(name) for name in ("alice", *names)}
        self.relay = Relay(*self.parties.values())
        alice = self.parties["alice"]
        self.relay.join(alice, self.secret)
        self.relay.append(alice, alice.session.create_log(ROOM, NOW, description="ops"))
        for name in names:
            self.enter(self.parties[name], self.secret)

    def enter(self, party: Party, secret: RoomSecret) -> None:
        self.relay.add(party)
        self.relay.join(party, secret)
        self.relay.sync_log(party)
        self.relay.append(party, party.session.join_log(ROOM, NOW))

    def __getitem__(self, name: str) -> Party:
        return self.parties[name]


@pytest.fixture
def room() -> Room:
    return Room("bob", "carol")


def test_members_joined_through_the_log_talk(room: Room) -> None:
    alice, bob, carol = room["alice"], room["bob"], room["carol"]
    room.relay.broadcast(alice, "hello")
    assert texts(bob) == texts(carol) == ["hello"]
    state = bob.session.log_state(ROOM)
    assert state is not None
    assert state.role(alice.key) == Role.OWNER
    assert set(state.members) == {alice.key, bob.key, carol.key}
    assert [e.kind for e in bob.session.room_log(ROOM)] == [Kind.CREATE, Kind.JOIN, Kind.JOIN]


def test_kick_rotates_and_the_removed_member_reads_nothing(room: Room) -> None:
    alice, bob, carol = room["alice"], room["bob"], room["carol"]
    room.relay.broadcast(alice, "before")
    statement = alice.session.kick(ROOM, carol.key, NOW)
    assert statement.secret is not None
    assert [d.recipient for d in statement.directs] == [bob.key]  # the new secret
    room.relay.append(alice, statement)
    assert bob.session.room_secret(ROOM).secret == statement.secret.secret  # type: ignore[union-attr]
    assert carol.key not in bob.session.validated_members(ROOM)
    # even delivered by the relay, nothing sent after the kick is readable by carol
    for sender in (alice, bob):
        body = room.relay.send(sender, f"after from {sender.name}")
        room.relay.deliver(sender, body, carol)
        for member in (alice, bob):
            if member is not sender:
                room.relay.deliver(sender, body, member)
    assert texts(carol) == ["before"]
    assert texts(bob) == ["before", "after from alice"]
    assert any(
        isinstance(e, RoomChanged) and e.entry.kind == Kind.REMOVE
        for e in events_of(bob, RoomChanged)
    )
    with pytest.raises(Exception, match="kicked"):
        carol.session.encrypt(ROOM, Text("still here?", (), NOW), NOW)


def test_removed_member_with_the_relays_help_gets_no_keys(room: Room) -> None:
    alice, carol = room["alice"], room["carol"]
    room.relay.append(alice, alice.session.kick(ROOM, carol.key, NOW))
    body = room.relay.send(alice, "secret plans")
    # the relay hides the kick from carol's new session and lets her ask for the key
    helper = Party("carol")
    room.relay.add(helper)
    room.relay.record(
        helper, helper.session.enter_room(ROOM, [alice.member], NOW, secret=room.secret)
    )
    helper.session.apply_log(ROOM, room.relay.log[:3], NOW)
    request_outcome = helper.session.receive(ROOM, alice.key, body, NOW)
    assert request_outcome.messages == []
    later = helper.session.tick(NOW + 60_000)
    room.relay.record(helper, later)  # key_request routed to alice
    assert texts(helper) == []
    assert any(isinstance(e, DirectRejected) for e in events_of(alice, DirectRejected))


def test_replayed_join_after_removal_validates_nothing(room: Room) -> None:
    alice, bob, carol = room["alice"], room["bob"], room["carol"]
    # what carol sent bob when she joined, kept by the relay
    proof, nonce = make_proof(room.secret.join_key, ROOM, 0, carol.key, bob.key)
    old_join = seal_direct(
        carol.identity.sign, Join(carol.key, bob.key, ROOM, NOW, proof, 0, nonce), bob.prekey
    )
    bob.session.receive_direct(carol.key, old_join, NOW)  # accepted once, while a member
    room.relay.append(alice, alice.session.kick(ROOM, carol.key, NOW))
    replayed = bob.session.receive_direct(carol.key, old_join, NOW + 1)
    assert [type(e) for e in replayed.events] == [DirectRejected]
    assert replayed.directs == []
    assert carol.key not in bob.session.validated_members(ROOM)
    # a fresh join with the old secret and a new nonce names the old epoch: rejected too
    proof, nonce = make_proof(room.secret.join_key, ROOM, 0, carol.key, bob.key)
    fresh = seal_direct(
        carol.identity.sign, Join(carol.key, bob.key, ROOM, NOW, proof, 0, nonce), bob.prekey
    )
    outcome = bob.session.receive_direct(carol.key, fresh, NOW + 2)
    assert "epoch" in outcome.events[0].reason  # type: ignore[union-attr]


def test_replayed_envelope_does_nothing_even_before_removal(room: Room) -> None:
    bob, carol = room["bob"], room["carol"]
    proof, nonce = make_proof(room.secret.join_key, ROOM, 0, carol.key, bob.key)
    join = seal_direct(
        carol.identity.sign, Join(carol.key, bob.key, ROOM, NOW, proof, 0, nonce), bob.prekey
    )
    assert bob.session.receive_direct(carol.key, join, NOW).events == []
    before = bob.store.snapshot()
    again = bob.session.receive_direct(carol.key, join, NOW)
    assert again.events == []
    assert again.directs == []  # no second share: the proof counted once
    assert bob.store.snapshot() == before


def test_removed_member_cannot_re_enter_with_the_old_secret(room: Room) -> None:
    alice, bob, carol = room["alice"], room["bob"], room["carol"]
    room.relay.append(alice, alice.session.kick(ROOM, carol.key, NOW))
    again = Party("carol")
    room.relay.add(again)
    room.relay.record(
        again, again.session.enter_room(ROOM, [alice.member, bob.member], NOW, secret=room.secret)
    )
    synced = room.relay.sync_log(again)
    assert RoomKeyMissing(ROOM, 1) in synced.events
    with pytest.raises(ProofError, match="no longer works"):
        again.session.join_log(ROOM, NOW)
    # and a join she forges with the old secret's tag fails every member's validation
    forged = carol_join_with(carol, room, alice)
    outcome = bob.session.apply_log(ROOM, [forged], NOW)
    assert [type(e) for e in outcome.events] == [LogRejected]
    assert carol.key not in bob.session.validated_members(ROOM)


def carol_join_with(carol: Party, room: Room, alice: Party) -> bytes:
    from e2echat.crypto.roomlog import encode_entry

    state = alice.session.log_state(ROOM)
    assert state is not None
    return encode_entry(
        carol.identity.sign,
        kind=Kind.JOIN,
        room_id=ROOM,
        seq=state.length,
        prev=state.head,
        author=carol.key,
        created=NOW,
        subject=carol.key,
        epoch=state.epoch,
        join_key=room.secret.join_key,
    )


def test_ban_and_admins(room: Room) -> None:
    alice, bob, carol = room["alice"], room["bob"], room["carol"]
    with pytest.raises(AuthorityError, match="only an admin or owner can ban"):
        bob.session.ban(ROOM, carol.key, NOW)
    room.relay.append(alice, alice.session.set_role(ROOM, bob.key, Role.ADMIN, NOW))
    statement = bob.session.ban(ROOM, carol.key, NOW)
    room.relay.append(bob, statement)
    state = alice.session.log_state(ROOM)
    assert state is not None
    assert carol.key in state.banned
    assert alice.session.room_secret(ROOM).secret == statement.secret.secret  # type: ignore[union-attr]
    with pytest.raises(AuthorityError, match="higher role"):
        bob.session.kick(ROOM, alice.key, NOW)


def test_a_member_without_the_role_changes_nothing(room: Room) -> None:
    bob, carol = room["bob"], room["carol"]
    before = bob.store.snapshot()
    for attempt in (
        lambda: bob.session.kick(ROOM, carol.key, NOW),
        lambda: bob.session.set_role(ROOM, carol.key, Role.ADMIN, NOW),
        lambda: bob.session.rotate_secret(ROOM, NOW),
        lambda: bob.session.describe(ROOM, "mine now", NOW),
    ):
        with pytest.raises(AuthorityError, match="only an"):
            attempt()
    assert bob.store.snapshot() == before


def test_password_change_rotates_like_a_kick(room: Room) -> None:
    alice, bob = room["alice"], room["bob"]
    salt = RoomSecret.new_salt()
    from e2echat.crypto.identity import KdfLimits

    fast = KdfLimits(1, 8192)
    new = RoomSecret.from_password("new password", salt, room="ops", limits=fast)
    room.relay.append(alice, alice.session.rotate_secret(ROOM, NOW, secret=new, salt=salt))
    assert bob.session.room_secret(ROOM).secret == new.secret  # type: ignore[union-attr]
    state = bob.session.log_state(ROOM)
    assert state is not None
    assert state.salt == salt
    assert state.epoch == 1
    dave = Party("dave")
    room.enter(dave, new)  # the new password admits
    room.relay.broadcast(alice, "welcome dave")
    assert texts(dave) == ["welcome dave"]


def test_reordered_log_is_rejected(room: Room) -> None:
    dave = Party("dave")
    room.relay.add(dave)
    room.relay.record(dave, dave.session.enter_room(ROOM, [], NOW, secret=room.secret))
    log = room.relay.log
    outcome = dave.session.apply_log(ROOM, [log[0], log[2], log[1]], NOW)
    rejected = [e for e in outcome.events if isinstance(e, LogRejected)]
    assert len(rejected) == 1
    assert rejected[0].position == 1
    state = dave.session.log_state(ROOM)
    assert state is not None
    assert state.length == 1


def test_relay_forking_the_log_between_two_members_is_detected(room: Room) -> None:
    alice, bob, carol = room["alice"], room["bob"], room["carol"]
    room.relay.append(alice, alice.session.set_role(ROOM, bob.key, Role.ADMIN, NOW))
    # two admins each append at the same position; the relay keeps them apart
    to_alice = alice.session.describe(ROOM, "alice's view", NOW)
    to_bob = bob.session.describe(ROOM, "bob's view", NOW)
    for party, entry in ((alice, to_alice.entry), (carol, to_alice.entry), (bob, to_bob.entry)):
        party.session.apply_log(ROOM, [entry], NOW)
    body = room.relay.send(bob, "do you see what I see?")
    outcome = room.relay.deliver(bob, body, carol)
    assert [type(e) for e in outcome.events] == [LogForked, MessageRejected]
    assert texts(carol) == []
    with pytest.raises(Exception, match="differs"):
        carol.session.encrypt(ROOM, Text("x", (), NOW), NOW)
    # showing alice bob's entry for a position she holds is a fork too
    assert [type(e) for e in alice.session.apply_log(ROOM, [to_bob.entry], NOW).events] == [
        LogForked
    ]


def test_a_longer_log_named_in_a_message_is_checked_once_it_arrives(room: Room) -> None:
    """carol lags (the relay withholds alice's entry): alice's message says so, and the
    entry the relay later serves carol at that position must be the one alice signed."""
    alice, bob, carol = room["alice"], room["bob"], room["carol"]
    room.relay.append(alice, alice.session.set_role(ROOM, bob.key, Role.ADMIN, NOW))
    to_alice = alice.session.describe(ROOM, "alice's view", NOW)
    to_bob = bob.session.describe(ROOM, "bob's view", NOW)
    alice.session.apply_log(ROOM, [to_alice.entry], NOW)
    body = room.relay.send(alice, "my log is longer")
    outcome = room.relay.deliver(alice, body, carol)
    (behind,) = [e for e in outcome.events if isinstance(e, LogBehind)]
    assert (behind.sender, behind.held, behind.named) == (alice.key, 4, 5)
    assert carol.session.log_ahead(ROOM) is not None
    # served bob's entry at that position instead: not the log alice signed
    events = carol.session.apply_log(ROOM, [to_bob.entry], NOW, start=4).events
    assert [type(e) for e in events] == [RoomChanged, LogForked]
    assert carol.session.log_ahead(ROOM) is None


def test_two_members_naming_different_logs_beyond_ours_is_a_fork(room: Room) -> None:
    alice, bob, carol = room["alice"], room["bob"], room["carol"]
    room.relay.append(alice, alice.session.set_role(ROOM, bob.key, Role.ADMIN, NOW))
    alice.session.apply_log(ROOM, [alice.session.describe(ROOM, "a", NOW).entry], NOW)
    bob.session.apply_log(ROOM, [bob.session.describe(ROOM, "b", NOW).entry], NOW)
    room.relay.deliver(alice, room.relay.send(alice, "from alice's log"), carol)
    outcome = room.relay.deliver(bob, room.relay.send(bob, "from bob's log"), carol)
    assert [type(e) for e in outcome.events] == [LogForked, MessageRejected]


def test_an_entry_served_out_of_place_is_rejected(room: Room) -> None:
    carol = room["carol"]
    log = room.relay.log
    outcome = carol.session.apply_log(ROOM, [log[1]], NOW, start=3)
    (rejected,) = [e for e in outcome.events if isinstance(e, LogRejected)]
    assert rejected.reason == "the relay served entry 1 as entry 3"


def test_equivocating_sender_cannot_show_members_different_texts() -> None:
    """Mallory gives alice and bob different keys for one chain and signs one body.

    XChaCha20-Poly1305 does not commit to its key, so a ciphertext crafted to open under
    two keys (a Poly1305 multi-key collision) would read differently for each. With the
    signed key commitment, bob rejects the body for its commitment, before any AEAD.
    """
    alice, bob, mallory = Party("alice"), Party("bob"), Party("mallory")
    relay = Relay(alice, bob, mallory)
    for party in (alice, bob, mallory):
        relay.join(party)
    honest = mallory.session.encrypt(ROOM, Text("hi", (), NOW), NOW)
    relay.route(mallory, honest.directs)
    header = parse_body(honest.body).header
    other_ck = bytes(32)
    lie = Share(mallory.key, bob.key, ROOM, NOW, header.chain_id, 0, other_ck)
    # bob first receives the lying share (his is installed first, so it stands)
    bob_fresh = Party("bob")
    relay.add(bob_fresh)
    relay.record(bob_fresh, bob_fresh.session.enter_room(ROOM, [alice.member, mallory.member], NOW))
    bob_fresh.session.receive_direct(
        mallory.key, seal_direct(mallory.identity.sign, lie, bob_fresh.prekey), NOW
    )
    relay.deliver(mallory, honest.body, alice)
    outcome = relay.deliver(mallory, honest.body, bob_fresh)
    assert texts(alice) == ["hi"]
    assert outcome.messages == []
    assert "key commitment" in outcome.events[0].reason  # type: ignore[union-attr]


def test_joins_validate_through_their_tags(room: Room) -> None:
    alice, bob = room["alice"], room["bob"]
    validated = [e.member for e in events_of(alice, MemberValidated)]
    assert bob.key in validated
    assert msgspec.json.encode(sorted(alice.session.validated_members(ROOM)))


def test_a_member_that_missed_a_rotation_asks_for_the_secret(room: Room) -> None:
    alice, bob, carol = room["alice"], room["bob"], room["carol"]
    statement = alice.session.kick(ROOM, carol.key, NOW)
    # the relay appends the kick but bob's room_key never arrives (lost mailbox)
    room.relay.log.append(statement.entry)
    for member in room.relay.members:
        room.relay.record(member, member.session.apply_log(ROOM, [statement.entry], NOW))
    assert events_of(bob, RoomKeyMissing)
    assert bob.session.room_secret(ROOM).secret != statement.secret.secret  # type: ignore[union-attr]
    room.relay.record(bob, bob.session.request_room_key(ROOM, NOW))  # routed to alice
    assert bob.session.room_secret(ROOM).secret == statement.secret.secret  # type: ignore[union-attr]
    # carol, kicked, asks too: the log says she is no member, so nobody answers
    before = len(carol.outcomes)
    carol_requests = carol.session.request_room_key(ROOM, NOW)
    assert carol_requests.directs == []  # she knows she was kicked: she does not ask
    forged = RoomKeyRequest(carol.key, alice.key, ROOM, NOW, statement_epoch(alice))
    body = seal_direct(carol.session._identity.sign, forged, alice.session.current_prekey(NOW))
    answered = alice.session.receive_direct(carol.key, body, NOW)
    assert answered.directs == []
    assert len(carol.outcomes) == before


def statement_epoch(party: Party) -> int:
    state = party.session.log_state(ROOM)
    assert state is not None
    return state.epoch


def test_a_peer_validated_before_the_log_started_gets_the_chain_once_listed() -> None:
    # bob, invited to alice's direct conversation, enters (its join envelope validates
    # it to alice) before her create entry is appended; alice writes before bob's join
    # entry lists him: once it does, he gets her chain from index 0
    secret = RoomSecret.generate()
    alice, bob = Party("alice"), Party("bob")
    relay = Relay(alice, bob)
    relay.members.append(alice)
    relay.record(
        alice, alice.session.enter_room(ROOM, [alice.member], NOW, secret=secret, peer=bob.key)
    )
    relay.join(bob, secret)
    relay.append(alice, alice.session.create_log(ROOM, NOW))
    body = relay.send(alice, "before your join entry")
    relay.append(bob, bob.session.join_log(ROOM, NOW))
    relay.deliver(alice, body, bob)
    assert texts(bob) == ["before your join entry"]


def test_a_chain_shared_before_the_new_secret_came_is_shared_again_with_it(room: Room) -> None:
    # bob (an admin) bans carol; alice applies the ban before bob's sealed new secret
    # reaches her and writes at once: her new chain's share to bob carries a proof of the
    # old epoch, which bob, already at the new one, refuses. Once the secret comes alice
    # shares the chain again, proven with it, so bob reads her message then, not only
    # after his key request times out.
    alice, bob, carol = room["alice"], room["bob"], room["carol"]
    room.relay.append(alice, alice.session.set_role(ROOM, bob.key, Role.ADMIN, NOW))
    statement = bob.session.ban(ROOM, carol.key, NOW)
    room.relay.log.append(statement.entry)
    for member in room.relay.members:
        room.relay.record(member, member.session.apply_log(ROOM, [statement.entry], NOW))
    body = room.relay.send(alice, "after the ban")
    assert events_of(bob, DirectRejected)  # the share with the old epoch's proof
    room.relay.deliver(alice, body, bob)
    assert texts(bob) == []  # it waits for its key
    room.relay.route(bob, statement.directs)  # the new secret reaches alice
    assert texts(bob) == ["after the ban"]
    assert texts(carol) == []
