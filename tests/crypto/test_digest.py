"""Outcomes name the exact body bytes they judged, so a client can tell a resent copy of
a message it delivered (the same bytes) from a replay with other bytes."""

from e2echat.crypto import Text
from e2echat.crypto.events import ReplayRejected
from e2echat.crypto.message import body_digest

from .harness import NOW, ROOM, Party, Relay


def test_decrypted_and_replayed_bodies_carry_their_digest() -> None:
    alice, bob = Party("alice"), Party("bob")
    relay = Relay(alice, bob)
    relay.join(alice)
    relay.join(bob)
    body = relay.send(alice, "once")
    (delivered,) = relay.deliver(alice, body, bob, seq=1).messages
    (replayed,) = relay.deliver(alice, body, bob, seq=2).events
    assert isinstance(replayed, ReplayRejected)
    assert delivered.digest == replayed.digest == body_digest(body)
    assert body_digest(body[:-1] + bytes([body[-1] ^ 1])) != body_digest(body)


def test_a_message_that_waited_for_its_key_carries_its_digest() -> None:
    """Two copies arrive before the share: they wait as one, and decrypt once."""
    alice, bob = Party("alice"), Party("bob")
    relay = Relay(alice, bob)
    relay.join(alice)
    relay.join(bob)
    outgoing = alice.session.encrypt(ROOM, Text("early", (), NOW), NOW)
    relay.deliver(alice, outgoing.body, bob, seq=1)
    relay.deliver(alice, outgoing.body, bob, seq=2)
    relay.route(alice, outgoing.directs)
    opened = bob.outcomes[-1]
    assert [m.digest for m in opened.messages] == [body_digest(outgoing.body)]
    assert opened.events == []
