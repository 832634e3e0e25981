"""Signed prekeys: verification, weekly rotation, grace period and deletion."""

import msgspec
import pytest

from e2echat.crypto import DirectRejected, Identity, PrekeyError, SignedPrekey, Text
from e2echat.crypto.policy import DAY
from e2echat.crypto.prekeys import new_prekey

from .harness import NOW, ROOM, Party, Relay

OWNER = Identity(bytes(32))


def test_signed_prekey_verifies_only_for_its_owner_and_fields() -> None:
    signed = new_prekey(OWNER, NOW, set()).signed
    signed.verify(OWNER.public_key)
    with pytest.raises(PrekeyError):
        signed.verify(Identity(b"\x01" * 32).public_key)
    for field, value in [("id", signed.id ^ 1), ("key", bytes(32)), ("sig", bytes(64))]:
        with pytest.raises(PrekeyError):
            msgspec.structs.replace(signed, **{field: value}).verify(OWNER.public_key)


def test_prekey_wire_form_is_strict() -> None:
    signed = new_prekey(OWNER, NOW, set()).signed
    data = msgspec.json.encode(signed)
    assert msgspec.json.decode(data, type=SignedPrekey) == signed
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(data.replace(b'"id":', b'"x":1,"id":'), type=SignedPrekey)
    assert "secret" not in repr(new_prekey(OWNER, NOW, set()))


def test_current_prekey_is_stable_until_rotation() -> None:
    alice = Party("alice")
    assert alice.session.current_prekey(NOW + DAY) == alice.prekey
    assert alice.session.tick(NOW + 6 * DAY).publish_prekey is None
    rotated = alice.session.tick(NOW + 7 * DAY).publish_prekey
    assert rotated is not None
    assert rotated.id != alice.prekey.id
    assert alice.session.current_prekey(NOW + 7 * DAY) == rotated


def test_old_prekey_opens_during_grace_and_is_deleted_after() -> None:
    alice, bob = Party("alice"), Party("bob")
    relay = Relay(alice, bob)
    relay.join(alice)
    relay.join(bob)
    # a share sealed to alice's first prekey, held back by the "mailbox"
    held = bob.session.encrypt(ROOM, Text("x", (), NOW), NOW).directs
    assert [d.recipient for d in held] == [alice.key]
    alice.session.tick(NOW + 7 * DAY)
    opened = alice.session.receive_direct(bob.key, held[0].body, NOW + 7 * DAY)
    assert opened.events == []
    alice.session.tick(NOW + 21 * DAY)
    late = alice.session.receive_direct(bob.key, held[0].body, NOW + 21 * DAY)
    assert isinstance(late.events[0], DirectRejected)
    assert "unknown or deleted prekey" in late.events[0].reason
