"""Direct envelopes: sign-then-seal, recipient binding, sender and freshness checks."""

import msgspec
import pytest

from e2echat.crypto import (
    CryptoError,
    DecryptionError,
    DirectInvited,
    EnvelopeError,
    Identity,
    MalformedError,
    RoomSecret,
    SignatureError,
)
from e2echat.crypto.direct import (
    MAX_AGE_MS,
    MAX_SKEW_MS,
    Join,
    KeyRequest,
    Share,
    direct_prekey_id,
    direct_transcript,
    open_direct,
    seal_direct,
)
from e2echat.crypto.prekeys import PrekeyRecord, new_prekey
from e2echat.crypto.primitives import seal, seal_open
from tests.crypto.harness import Party

NOW = 1_800_000_000_000
ROOM = bytes(range(16))
ALICE, BOB, CAROL = (Identity(bytes([n]) * 32) for n in (1, 2, 3))
BOB_PREKEY = new_prekey(BOB, NOW, set())
CAROL_PREKEY = new_prekey(CAROL, NOW, set())


def share(to: bytes = BOB.public_key, created: int = NOW) -> Share:
    return Share(ALICE.public_key, to, ROOM, created, bytes(16), 3, bytes(range(32)), None)


def open_as(
    body: bytes,
    who: Identity = BOB,
    prekey: PrekeyRecord = BOB_PREKEY,
    sender: bytes = ALICE.public_key,
    now: int = NOW,
) -> object:
    return open_direct(
        body,
        prekey_public=prekey.signed.key,
        prekey_secret=prekey.secret,
        me=who.public_key,
        claimed_sender=sender,
        now=now,
    )


@pytest.mark.parametrize(
    "payload",
    [
        share(),
        Join(ALICE.public_key, BOB.public_key, ROOM, NOW, bytes(32)),
        KeyRequest(ALICE.public_key, BOB.public_key, ROOM, NOW, bytes(16), None),
    ],
)
def test_round_trip_of_every_kind(payload: object) -> None:
    body = seal_direct(ALICE.sign, payload, BOB_PREKEY.signed)  # type: ignore[arg-type]
    assert body[:2] == b"\x01\x02"
    assert direct_prekey_id(body) == BOB_PREKEY.id
    assert open_as(body) == payload


def test_relay_cannot_claim_another_sender() -> None:
    body = seal_direct(ALICE.sign, share(), BOB_PREKEY.signed)
    with pytest.raises(SignatureError):
        open_as(body, sender=CAROL.public_key)


def test_from_field_must_match_the_signer() -> None:
    lying = Share(CAROL.public_key, BOB.public_key, ROOM, NOW, bytes(16), 0, bytes(32), None)
    body = seal_direct(ALICE.sign, lying, BOB_PREKEY.signed)
    with pytest.raises(EnvelopeError, match="'from'"):
        open_as(body)


def test_forwarding_to_another_recipient_is_rejected() -> None:
    """Bob re-seals Alice's signed envelope to Carol: the signed ``to`` still says Bob."""
    body = seal_direct(ALICE.sign, share(), BOB_PREKEY.signed)
    opened = seal_open(BOB_PREKEY.signed.key, BOB_PREKEY.secret, body[6:])
    forwarded = (
        body[:2] + CAROL_PREKEY.id.to_bytes(4, "big") + seal(CAROL_PREKEY.signed.key, opened)
    )
    with pytest.raises(EnvelopeError, match="someone else"):
        open_as(forwarded, who=CAROL, prekey=CAROL_PREKEY)


@pytest.mark.parametrize(
    ("created", "message"),
    [(NOW - MAX_AGE_MS - 1, "too old"), (NOW + MAX_SKEW_MS + 1, "future")],
)
def test_freshness(created: int, message: str) -> None:
    body = seal_direct(ALICE.sign, share(created=created), BOB_PREKEY.signed)
    with pytest.raises(EnvelopeError, match=message):
        open_as(body)


def test_wrong_prekey_and_altered_bytes() -> None:
    body = seal_direct(ALICE.sign, share(), BOB_PREKEY.signed)
    with pytest.raises(DecryptionError):
        open_as(body, prekey=CAROL_PREKEY)
    for position in range(0, len(body), 7):
        altered = bytearray(body)
        altered[position] ^= 0x04
        with pytest.raises(CryptoError):
            open_as(bytes(altered))
    for cut in (0, 5, 6, 60, len(body) - 1):
        with pytest.raises(CryptoError):
            open_as(body[:cut])


def test_signed_but_malformed_inner_is_rejected() -> None:
    inner = msgspec.json.encode(share())[:-1] + b',"extra":1}'
    sealed = seal(BOB_PREKEY.signed.key, inner + ALICE.sign(direct_transcript(inner)))
    body = b"\x01\x02" + BOB_PREKEY.id.to_bytes(4, "big") + sealed
    with pytest.raises(MalformedError):
        open_as(body)


def test_share_repr_hides_chain_key() -> None:
    assert bytes(range(32)).hex() not in repr(share())
    assert "redacted" in repr(share())


def test_an_invitation_is_kept_until_its_room_is_entered_then_ignored() -> None:
    alice, bob = Party("alice"), Party("bob")
    secret = RoomSecret.generate()
    sent = alice.session.invite_direct(bob.key, bob.prekey, ROOM, "dm-ab", secret.secret, NOW)
    assert sent.recipient == bob.key
    invited = DirectInvited(alice.key, ROOM, "dm-ab", secret.secret)
    assert bob.session.receive_direct(alice.key, sent.body, NOW).events == [invited]
    assert bob.session.pending_invites() == [invited]
    assert "secret" not in repr(invited)
    bob.session.enter_room(ROOM, [alice.member], NOW, secret=secret, peer=alice.key)
    bob.session.invite_done(ROOM, NOW)
    assert bob.session.pending_invites() == []
    again = bob.session.receive_direct(alice.key, sent.body, NOW)  # a second copy
    assert again.events == []
    assert again.directs == []
    bob.session.leave_room(ROOM)
    replayed = bob.session.receive_direct(alice.key, sent.body, NOW + 1000)  # after leaving
    assert replayed.events == []
    assert bob.session.pending_invites() == []
    bob.session.tick(NOW + MAX_AGE_MS + MAX_SKEW_MS)  # by then a copy is stale anyway
    assert bob.store.get("invited", ROOM) is None


def test_an_invitation_is_only_sealed_to_the_peers_own_prekey() -> None:
    alice, bob, carol = Party("alice"), Party("bob"), Party("carol")
    with pytest.raises(CryptoError):  # carol's prekey is not signed by bob's key
        alice.session.invite_direct(bob.key, carol.prekey, ROOM, "dm-ab", bytes(32), NOW)
    sent = alice.session.invite_direct(bob.key, bob.prekey, ROOM, "dm-ab", bytes(32), NOW)
    handed = carol.session.receive_direct(alice.key, sent.body, NOW)  # a copy to carol
    assert [type(e).__name__ for e in handed.events] == ["DirectRejected"]
    assert carol.session.pending_invites() == []
