"""The membership log alone: layout, chaining, authority rules, fork detection."""

import pytest

from e2echat.crypto import AuthorityError, Identity, LogError, LogForkError, RoomSecret
from e2echat.crypto.roomlog import (
    NO_HASH,
    NO_VERIFIER,
    Kind,
    LogHead,
    LogState,
    Role,
    apply_entry,
    compare_head,
    encode_entry,
    validate_log,
)

ROOM = bytes(range(16))
OWNER, ADMIN, ALICE, BOB = (Identity(bytes([n]) * 32) for n in (1, 2, 3, 4))
SECRET = RoomSecret(bytes(32))


def entry(
    state: LogState | None,
    author: Identity,
    kind: Kind,
    subject: Identity | None = None,
    **fields: object,
) -> bytes:
    return encode_entry(
        author.sign,
        kind=kind,
        room_id=ROOM,
        seq=state.length if state else 0,
        prev=state.head if state else NO_HASH,
        author=author.public_key,
        created=1,
        subject=(subject or author).public_key,
        epoch=fields.pop("epoch", state.epoch if state else 0),  # type: ignore[arg-type]
        **fields,  # type: ignore[arg-type]
    )


def step(state: LogState | None, wire: bytes) -> LogState:
    return apply_entry(state, wire, lambda _s: SECRET.join_key)[0]


def rotation(state: LogState) -> dict[str, object]:
    return {"epoch": state.epoch + 1, "verifier": RoomSecret.generate().verifier}


@pytest.fixture
def room() -> LogState:
    """Owner created a secret room; admin and alice joined; admin was appointed."""
    state = step(None, entry(None, OWNER, Kind.CREATE, role=Role.OWNER, verifier=SECRET.verifier))
    for joiner in (ADMIN, ALICE):
        state = step(state, entry(state, joiner, Kind.JOIN, join_key=SECRET.join_key))
    return step(state, entry(state, OWNER, Kind.ROLE, ADMIN, role=Role.ADMIN))


def test_roles_after_creation(room: LogState) -> None:
    assert room.role(OWNER.public_key) == Role.OWNER
    assert room.role(ADMIN.public_key) == Role.ADMIN
    assert room.role(ALICE.public_key) == Role.MEMBER
    assert room.role(BOB.public_key) is None
    assert room.length == 4
    assert room.secret


def test_admin_kicks_and_bans_member_with_a_new_epoch(room: LogState) -> None:
    kicked = step(room, entry(room, ADMIN, Kind.REMOVE, ALICE, **rotation(room)))
    assert ALICE.public_key not in kicked.members
    assert kicked.epoch == 1
    assert kicked.verifier != room.verifier
    banned = step(room, entry(room, ADMIN, Kind.BAN, BOB, **rotation(room)))
    assert BOB.public_key in banned.banned


@pytest.mark.parametrize(
    ("author", "kind", "subject", "message"),
    [
        (ALICE, Kind.REMOVE, ADMIN, "only an admin or owner can kick"),
        (ADMIN, Kind.REMOVE, OWNER, "higher role"),
        (ADMIN, Kind.BAN, OWNER, "higher role"),
        (ALICE, Kind.ROTATE, ALICE, "only an admin or owner can change"),
        (BOB, Kind.REMOVE, ALICE, "only an admin or owner can kick"),
    ],
)
def test_authority_rules_for_removals(
    room: LogState, author: Identity, kind: Kind, subject: Identity, message: str
) -> None:
    with pytest.raises(AuthorityError, match=message):
        step(room, entry(room, author, kind, subject, **rotation(room)))


def test_only_owners_appoint_and_demote(room: LogState) -> None:
    with pytest.raises(AuthorityError, match="only an owner"):
        step(room, entry(room, ADMIN, Kind.ROLE, ALICE, role=Role.ADMIN))
    with pytest.raises(AuthorityError, match="owner's role cannot"):
        step(room, entry(room, OWNER, Kind.ROLE, OWNER, role=Role.MEMBER))
    demoted = step(room, entry(room, OWNER, Kind.ROLE, ADMIN, role=Role.MEMBER))
    assert demoted.role(ADMIN.public_key) == Role.MEMBER
    with pytest.raises(AuthorityError, match="only an admin or owner can kick"):
        step(demoted, entry(demoted, ADMIN, Kind.REMOVE, ALICE, **rotation(demoted)))


def test_banned_key_cannot_join_until_admitted(room: LogState) -> None:
    new = RoomSecret.generate()
    banned = step(room, entry(room, ADMIN, Kind.BAN, ALICE, epoch=1, verifier=new.verifier))
    with pytest.raises(AuthorityError, match="banned"):
        step(banned, entry(banned, ALICE, Kind.JOIN, join_key=new.join_key))
    admit = entry(banned, OWNER, Kind.ADMIT, ALICE, join_key=new.join_key)
    with pytest.raises(LogError, match="join tag"):
        step(banned, admit)  # tagged with the new secret: the old one no longer checks
    admitted = apply_entry(banned, admit, lambda _s: new.join_key)[0]
    assert ALICE.public_key in admitted.members
    assert ALICE.public_key not in admitted.banned


def test_join_tag_must_prove_the_current_secret(room: LogState) -> None:
    wrong = entry(room, BOB, Kind.JOIN, join_key=RoomSecret.generate().join_key)
    with pytest.raises(LogError, match="join tag"):
        step(room, wrong)
    untagged = entry(room, BOB, Kind.JOIN)
    with pytest.raises(LogError, match="join tag"):
        step(room, untagged)
    # a validator without the secret (the relay) cannot check tags, only the rest
    assert apply_entry(room, untagged)[0].role(BOB.public_key) == Role.MEMBER


def test_forged_reordered_and_replayed_entries_are_rejected(room: LogState) -> None:
    good = entry(room, ADMIN, Kind.DESCRIBE, description="hello")
    forged = bytearray(good)
    forged[-80] ^= 1  # inside the signed entry
    with pytest.raises(LogError, match="signature"):
        step(room, bytes(forged))
    with pytest.raises(LogError, match="position"):
        step(step(room, good), good)  # replayed at the next position
    stale = entry(room, ADMIN, Kind.DESCRIBE, description="other")
    after = step(room, good)
    reordered = encode_entry(
        ADMIN.sign,
        kind=Kind.DESCRIBE,
        room_id=ROOM,
        seq=after.length,
        prev=room.head,  # claims the old head
        author=ADMIN.public_key,
        created=1,
        subject=ADMIN.public_key,
        epoch=0,
    )
    with pytest.raises(LogError, match="does not follow"):
        step(after, reordered)
    assert stale != good


def test_rotation_rules(room: LogState) -> None:
    with pytest.raises(AuthorityError, match="new epoch"):
        step(room, entry(room, ADMIN, Kind.ROTATE, epoch=5, verifier=SECRET.verifier))
    with pytest.raises(AuthorityError, match="secret room rotates"):
        step(room, entry(room, ADMIN, Kind.ROTATE, epoch=1, verifier=NO_VERIFIER))
    with pytest.raises(LogError, match="another epoch"):
        step(room, entry(room, ADMIN, Kind.DESCRIBE, epoch=3))


def test_a_log_starts_with_create_and_rejects_malformed_bytes(room: LogState) -> None:
    with pytest.raises(LogError, match="starts with a create"):
        step(None, entry(None, ALICE, Kind.JOIN))
    with pytest.raises(LogError, match="length"):
        step(room, b"\x01" * 40)
    with pytest.raises(LogError, match="empty log"):
        validate_log([])


def test_fork_detection_by_head_hash(room: LogState) -> None:
    ours = step(room, entry(room, ADMIN, Kind.DESCRIBE, description="ours"))
    theirs = step(room, entry(room, ADMIN, Kind.DESCRIBE, description="theirs"))
    hashes = {room.length: room.head}
    assert compare_head(room.position, ours.position, hashes.__getitem__)
    assert compare_head(ours.position, ours.position, hashes.__getitem__)
    assert not compare_head(LogHead(9, NO_HASH), ours.position, hashes.__getitem__)
    with pytest.raises(LogForkError, match="position 5"):
        compare_head(theirs.position, ours.position, hashes.__getitem__)
