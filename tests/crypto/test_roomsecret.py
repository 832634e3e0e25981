"""Room secrets, invites and membership proofs."""

import pickle

import pytest

from e2echat.crypto import INTERACTIVE, Invite, InviteError, KdfLimits, ProofError, RoomSecret
from e2echat.crypto.kdf import verifier
from e2echat.crypto.roomsecret import check_proof, make_proof

CHEAP = KdfLimits(1, 8192)
SALT = bytes(16)
ROOM = bytes(range(16))
A, B = bytes(range(32)), bytes(range(32, 64))


def test_password_secret_depends_on_password_and_salt() -> None:
    first = RoomSecret.from_password("hunter2", SALT, room="ops", limits=CHEAP)
    assert (
        first.secret == RoomSecret.from_password("hunter2", SALT, room="ops", limits=CHEAP).secret
    )
    assert (
        first.secret != RoomSecret.from_password("hunter3", SALT, room="ops", limits=CHEAP).secret
    )
    assert (
        first.secret
        != RoomSecret.from_password("hunter2", b"\x01" * 16, room="ops", limits=CHEAP).secret
    )


def test_same_salt_in_two_rooms_gives_two_secrets() -> None:
    """A relay that hands every room the same salt gains no shared dictionary."""
    ops = RoomSecret.from_password("hunter2", SALT, room="ops", limits=CHEAP)
    dev = RoomSecret.from_password("hunter2", SALT, room="dev", limits=CHEAP)
    assert ops.secret != dev.secret


def test_real_interactive_limits_once() -> None:
    secret = RoomSecret.from_password("correct horse", SALT, room="ops", limits=INTERACTIVE)
    assert len(secret.secret) == 32


def test_bad_password_inputs() -> None:
    with pytest.raises(InviteError):
        RoomSecret.from_password("", SALT, room="ops", limits=CHEAP)
    with pytest.raises(InviteError):
        RoomSecret.from_password("pw", b"short", room="ops", limits=CHEAP)
    with pytest.raises(InviteError):
        RoomSecret.from_password("pw", SALT, room="Not A Room", limits=CHEAP)
    with pytest.raises(InviteError):
        RoomSecret(b"x" * 31)


def test_derived_values_are_distinct_and_verifier_checks_token() -> None:
    secret = RoomSecret(bytes(32))
    values = {secret.secret, secret.relay_token, secret.join_key, secret.verifier}
    assert len(values) == 4
    assert verifier(secret.relay_token) == secret.verifier
    assert len(RoomSecret.new_salt()) == 16


def test_proof_binds_room_epoch_prover_verifier_and_nonce() -> None:
    key = RoomSecret(bytes(32)).join_key
    proof, nonce = make_proof(key, ROOM, 2, A, B)
    check_proof(key, ROOM, 2, A, B, proof, nonce)
    again, other_nonce = make_proof(key, ROOM, 2, A, B)
    assert again != proof  # fresh every time
    assert other_nonce != nonce
    for args in [
        (key, ROOM, 2, B, A, proof, nonce),
        (key, bytes(16), 2, A, B, proof, nonce),
        (bytes(32), ROOM, 2, A, B, proof, nonce),
        (key, ROOM, 1, A, B, proof, nonce),
        (key, ROOM, 2, A, B, proof, other_nonce),
    ]:
        with pytest.raises(ProofError, match="does not check"):
            check_proof(*args)
    with pytest.raises(ProofError, match="missing"):
        check_proof(key, ROOM, 2, A, B, None, nonce)


def test_invite_round_trip_and_redaction() -> None:
    secret = RoomSecret.generate()
    invite = Invite("wss://chat.example.org/", "general", secret)
    text = str(invite)
    assert text.startswith("wss://chat.example.org/general#")
    parsed = Invite.parse(text)
    assert (parsed.relay, parsed.room, parsed.secret.secret) == (
        "wss://chat.example.org",
        "general",
        secret.secret,
    )
    assert parsed == invite
    assert text.split("#")[1] not in repr(invite)
    assert "redacted" in repr(secret)
    with pytest.raises(TypeError):
        pickle.dumps(secret)


@pytest.mark.parametrize(
    "text",
    [
        "wss://host/room",
        "wss://host/room#short",
        "http://host/room#" + "A" * 43,
        "wss://host/Bad Room#" + "A" * 43,
        "wss://host/room#" + "A" * 42 + "!",
        "wss://host/room#" + "A" * 42 + "B",
        "room#" + "A" * 43,
    ],
)
def test_invite_parse_rejects(text: str) -> None:
    with pytest.raises(InviteError):
        Invite.parse(text)
