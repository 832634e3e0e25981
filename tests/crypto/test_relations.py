"""Edits, deletes, reactions and unknown kinds through real room sessions.

Only a message's signer may edit or delete it: the target id names the signer and the
edit's own signature names its sender, so a receiver checks the rule from signed bytes
alone. A refused relation is reported and changes no state, and a relay that rewrites
the target inside a body breaks the signature.
"""

import pytest

from e2echat.crypto import (
    Decrypted,
    Delete,
    Edit,
    MessageRejected,
    Reaction,
    RoomPayload,
    Text,
    Unsupported,
)
from e2echat.crypto import session as session_module

from .harness import NOW, ROOM, Party, Relay


def room() -> tuple[Relay, Party, Party, Party]:
    alice, bob, mallory = Party("alice"), Party("bob"), Party("mallory")
    relay = Relay(alice, bob, mallory)
    for party in (alice, bob, mallory):
        relay.join(party)
    return relay, alice, bob, mallory


def send(relay: Relay, sender: Party, payload: RoomPayload, to: Party) -> list[object]:
    outgoing = sender.session.encrypt(ROOM, payload, NOW)
    relay.route(sender, outgoing.directs)
    outcome = relay.deliver(sender, outgoing.body, to)
    return [*outcome.messages, *outcome.events]


def original(relay: Relay, alice: Party, bob: Party) -> Decrypted:
    (message,) = send(relay, alice, Text("meet at 10", (), NOW), bob)
    assert isinstance(message, Decrypted)
    return message


def test_the_sender_edits_and_deletes_its_own_message() -> None:
    relay, alice, bob, _ = room()
    target = original(relay, alice, bob).message_id
    (edit,) = send(relay, alice, Edit(target, "meet at 11", (), NOW + 1), bob)
    assert isinstance(edit, Decrypted)
    assert edit.payload == Edit(target, "meet at 11", (), NOW + 1)
    (delete,) = send(relay, alice, Delete(target, NOW + 2), bob)
    assert isinstance(delete, Decrypted)
    assert delete.payload == Delete(target, NOW + 2)


@pytest.mark.parametrize("kind", ["edit", "delete"])
def test_a_member_cannot_edit_or_delete_someone_elses_message(kind: str) -> None:
    relay, alice, bob, mallory = room()
    target = original(relay, alice, bob).message_id
    send(relay, mallory, Text("hello", (), NOW), bob)  # Bob holds Mallory's chain
    forged = Edit(target, "meet at midnight", (), NOW) if kind == "edit" else Delete(target, NOW)
    outgoing = mallory.session.encrypt(ROOM, forged, NOW)
    before = bob.store.snapshot()
    outcome = bob.session.receive(ROOM, mallory.key, outgoing.body, NOW, 5)
    assert outcome.messages == []
    assert outcome.events == [
        MessageRejected(ROOM, mallory.key, 5, f"an {kind} names another sender's message")
    ]
    assert bob.store.snapshot() == before


def test_any_member_may_react() -> None:
    relay, alice, bob, mallory = room()
    target = original(relay, alice, bob).message_id
    send(relay, bob, Text("hi", (), NOW), mallory)
    (reaction,) = send(relay, mallory, Reaction(target, "👍", True, NOW), bob)
    assert isinstance(reaction, Decrypted)
    assert reaction.payload.target == target


def test_a_relay_rewriting_the_target_breaks_the_signature() -> None:
    relay, alice, bob, _ = room()
    first = original(relay, alice, bob).message_id
    outgoing = alice.session.encrypt(ROOM, Delete(first, NOW), NOW)
    tampered = bytearray(outgoing.body)
    tampered[200] ^= 1  # inside the ciphertext, where the target is
    before = bob.store.snapshot()
    outcome = bob.session.receive(ROOM, alice.key, bytes(tampered), NOW, 9)
    assert [type(e) for e in outcome.events] == [MessageRejected]
    assert outcome.messages == []
    assert bob.store.snapshot() == before


def test_a_future_kind_is_delivered_as_unsupported(monkeypatch: pytest.MonkeyPatch) -> None:
    relay, alice, bob, _ = room()
    original(relay, alice, bob)
    monkeypatch.setattr(
        session_module, "encode_payload", lambda _: b'{"t":"poll","question":"lunch?","ts":5}'
    )
    (message,) = send(relay, alice, Text("ignored", (), NOW), bob)
    assert isinstance(message, Decrypted)
    assert message.payload == Unsupported("poll", 5)
    monkeypatch.undo()
    (after,) = send(relay, alice, Text("still fine", (), NOW), bob)
    assert isinstance(after, Decrypted)
    assert after.payload.body == "still fine"
