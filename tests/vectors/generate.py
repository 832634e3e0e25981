"""Write the known-answer vectors of the crypto core to tests/vectors/*.json.

Run from the repository root:  uv run python tests/vectors/generate.py

All inputs are fixed, so every output is reproducible, except the sealed box of the
direct body (libsodium picks its ephemeral key): that vector is checked by opening it
with the given prekey secret. Bytes are lowercase hex. tests/crypto/test_vectors.py
checks the files against the implementation and, where the construction is plain
BLAKE2b or SHA-512, against Python's hashlib as an independent implementation.
"""

import json
from pathlib import Path

import msgspec

from e2echat.crypto import (
    Delete,
    Edit,
    Identity,
    Reaction,
    Read,
    RoomSecret,
    Text,
    Typing,
    encode_payload,
    kdf,
    message_id,
    safety_number,
)
from e2echat.crypto.chain import advance
from e2echat.crypto.direct import DirectInvite, Share, direct_transcript, seal_direct
from e2echat.crypto.files import CHUNK_SIZE, encrypt_file
from e2echat.crypto.identity import INTERACTIVE
from e2echat.crypto.message import seal_body
from e2echat.crypto.payload import File
from e2echat.crypto.prekeys import PrekeyRecord, SignedPrekey
from e2echat.crypto.primitives import x25519_public
from e2echat.crypto.roomlog import Kind, Role, apply_entry, encode_entry
from e2echat.crypto.safety import safety_half
from e2echat.crypto.statements import (
    name_transcript,
    sign_name,
    sign_successor,
    successor_transcript,
)
from e2echat.protocol.transcripts import prekey_transcript

HERE = Path(__file__).parent
CREATED = 1_800_000_000_000


def seq(start: int, size: int = 32) -> bytes:
    return bytes((start + i) % 256 for i in range(size))


def hexed(value: object) -> object:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {key: hexed(item) for key, item in value.items()}
    if isinstance(value, list):
        return [hexed(item) for item in value]
    return value


def kdf_vectors() -> dict[str, object]:
    room_secret = seq(0x40)
    password_salt = seq(0xA0, 16)
    return {
        "room_secret": room_secret,
        "relay_token": kdf.relay_token(room_secret),
        "verifier": kdf.verifier(kdf.relay_token(room_secret)),
        "join_key": kdf.join_key(room_secret),
        "password": "correct horse battery staple",
        "password_salt": password_salt,
        "argon2id_opslimit": INTERACTIVE.opslimit,
        "argon2id_memlimit": INTERACTIVE.memlimit,
        "password_room": "ops",
        "password_argon2id_salt": kdf.password_salt(password_salt, "ops"),
        "password_room_secret": RoomSecret.from_password(
            "correct horse battery staple", password_salt, room="ops"
        ).secret,
    }


def chain_vectors() -> dict[str, object]:
    ck0 = seq(0x00)
    steps = [
        {"index": i, "ck": advance(ck0, i), "mk": kdf.message_key(advance(ck0, i))}
        for i in (0, 1, 2, 3, 99, 100)
    ]
    return {"ck0": ck0, "steps": steps}


def message_vectors() -> dict[str, object]:
    sender = Identity(seq(0x10))
    ck = seq(0x00)
    room_id, chain_id, index, nonce = seq(0x80, 16), seq(0x90, 16), 3, seq(0xC0, 24)
    payload = encode_payload(Text("hello @bob", (Identity(seq(0x20)).public_key,), CREATED))
    log_length, log_head = 2, seq(0xE0)
    body = seal_body(
        sender.sign,
        room_id,
        sender.public_key,
        chain_id,
        index,
        kdf.message_key(advance(ck, index)),
        payload,
        nonce,
        log_length=log_length,
        log_head=log_head,
    )
    return {
        "sender_seed": seq(0x10),
        "sender": sender.public_key,
        "room_id": room_id,
        "chain_id": chain_id,
        "ck0": ck,
        "index": index,
        "nonce": nonce,
        "message_key": kdf.message_key(advance(ck, index)),
        "key_commitment": kdf.key_commitment(kdf.message_key(advance(ck, index))),
        "log_length": log_length,
        "log_head": log_head,
        "payload_json": payload.decode(),
        "body": body,
    }


def payload_vectors() -> dict[str, object]:
    """Every payload kind's exact JSON, and an edit sealed as message 4 of the message
    vector's chain (the edit names message 3, its signer's own)."""
    sender, mentioned = Identity(seq(0x10)), Identity(seq(0x20)).public_key
    chain_id, nonce = seq(0x90, 16), seq(0xD0, 24)
    target = message_id(sender.public_key, chain_id, 3)
    kinds = [
        Text("hello @bob", (mentioned,), CREATED),
        Text("yes", (), CREATED + 1, reply_to=target),
        Edit(target, "hello @bob, edited", (mentioned,), CREATED + 2),
        Delete(target, CREATED + 3),
        Reaction(target, "\N{THUMBS UP SIGN}", True, CREATED + 4),
        Reaction(target, "\N{THUMBS UP SIGN}", False, CREATED + 5),
        Typing(True, CREATED + 6),
        Read(target, CREATED + 7),
        File(seq(0xE0, 16), seq(0x60), seq(0x70), 5, "notes.txt", "text/plain", CREATED + 8),
    ]
    edit = encode_payload(kinds[2])
    edit_body = seal_body(
        sender.sign,
        seq(0x80, 16),
        sender.public_key,
        chain_id,
        4,
        kdf.message_key(advance(seq(0x00), 4)),
        edit,
        nonce,
    )
    return {
        "sender": sender.public_key,
        "chain_id": chain_id,
        "index": 3,
        "message_id": target,
        "kinds": [encode_payload(kind).decode() for kind in kinds],
        "unsupported_json": '{"t":"poll","question":"lunch?","ts":1800000000000}',
        "edit_index": 4,
        "edit_nonce": nonce,
        "edit_body": edit_body,
    }


def direct_vectors() -> dict[str, object]:
    sender, recipient = Identity(seq(0x10)), Identity(seq(0x20))
    prekey_secret = seq(0x30)
    prekey_public = x25519_public(prekey_secret)
    prekey_id = 7
    signed = SignedPrekey(
        prekey_id, prekey_public, recipient.sign(prekey_transcript(prekey_id, prekey_public))
    )
    record = PrekeyRecord(prekey_id, prekey_secret, signed, CREATED)
    share = Share(
        sender.public_key, recipient.public_key, seq(0x80, 16), CREATED, seq(0x90, 16), 5, seq(0x50)
    )
    inner = msgspec.json.encode(share)
    invite = DirectInvite(
        sender.public_key, recipient.public_key, seq(0x80, 16), CREATED, "dm-0a1b2c", seq(0x60)
    )
    invite_inner = msgspec.json.encode(invite)
    return {
        "sender_seed": seq(0x10),
        "recipient_seed": seq(0x20),
        "prekey_id": prekey_id,
        "prekey_secret": record.secret,
        "prekey_public": prekey_public,
        "prekey_sig": signed.sig,
        "inner_json": inner.decode(),
        "inner_sig": sender.sign(direct_transcript(inner)),
        "now": CREATED,
        "body": seal_direct(sender.sign, share, signed),
        "invite_inner_json": invite_inner.decode(),
        "invite_inner_sig": sender.sign(direct_transcript(invite_inner)),
        "invite_body": seal_direct(sender.sign, invite, signed),
    }


def proof_vectors() -> dict[str, object]:
    join_key = kdf.join_key(seq(0x40))
    room_id, prover, verifier = seq(0x80, 16), seq(0x10), seq(0x20)
    epoch, nonce = 3, seq(0xF0, 16)
    return {
        "join_key": join_key,
        "room_id": room_id,
        "epoch": epoch,
        "prover": prover,
        "verifier": verifier,
        "nonce": nonce,
        "proof": kdf.proof(join_key, room_id, epoch, prover, verifier, nonce),
    }


def log_vectors() -> dict[str, object]:
    """A log of five entries: create (secret room), join, role, remove, describe."""
    owner, joiner = Identity(seq(0x10)), Identity(seq(0x20))
    room_id = seq(0x80, 16)
    secret0, secret1 = RoomSecret(seq(0x40)), RoomSecret(seq(0x60))
    steps: list[tuple[Identity, dict[str, object]]] = [
        (
            owner,
            {
                "kind": Kind.CREATE,
                "subject": owner.public_key,
                "role": Role.OWNER,
                "verifier": secret0.verifier,
                "description": "ops room",
            },
        ),
        (joiner, {"kind": Kind.JOIN, "subject": joiner.public_key, "join_key": secret0.join_key}),
        (owner, {"kind": Kind.ROLE, "subject": joiner.public_key, "role": Role.ADMIN}),
        (
            owner,
            {
                "kind": Kind.REMOVE,
                "subject": joiner.public_key,
                "epoch": 1,
                "verifier": secret1.verifier,
            },
        ),
        (
            owner,
            {
                "kind": Kind.DESCRIBE,
                "subject": owner.public_key,
                "epoch": 1,
                "description": "ops room, v2",
            },
        ),
    ]
    entries, state = [], None
    for position, (author, fields) in enumerate(steps):
        wire = encode_entry(
            author.sign,
            room_id=room_id,
            seq=position,
            prev=state.head if state is not None else bytes(32),
            author=author.public_key,
            created=CREATED + position,
            **fields,  # type: ignore[arg-type]
        )
        state, entry = apply_entry(state, wire, lambda _s: secret0.join_key)
        entries.append(
            {
                "author_seed": seq(0x10) if author is owner else seq(0x20),
                "kind": int(entry.kind),
                "wire": wire,
                "hash": entry.hash,
            }
        )
    assert state is not None
    return {
        "room_id": room_id,
        "secret_epoch0": secret0.secret,
        "secret_epoch1": secret1.secret,
        "entries": entries,
        "final_epoch": state.epoch,
        "final_head": state.head,
    }


def safety_vectors() -> dict[str, object]:
    key_a, key_b = Identity(seq(0x10)).public_key, Identity(seq(0x20)).public_key
    return {
        "key_a": key_a,
        "key_b": key_b,
        "half_a": safety_half(key_a),
        "half_b": safety_half(key_b),
        "safety_number": safety_number(key_a, key_b),
    }


def file_plaintext(size: int) -> bytes:
    """The vector plaintexts: byte i is (7 * i) mod 251."""
    return bytes(7 * i % 251 for i in range(size))


def file_vectors() -> dict[str, object]:
    # secretstream draws its header at random, so these are checked by opening them.
    cases = []
    for size in (5, CHUNK_SIZE + 3):
        key = seq(0x60 + len(cases))
        blob, digest = encrypt_file(key, file_plaintext(size))
        cases.append({"key": key, "size": size, "blob": blob, "hash": digest})
    return {"plaintext": "byte i is (7 * i) mod 251", "chunk_size": CHUNK_SIZE, "cases": cases}


def statement_vectors() -> dict[str, object]:
    old, new = Identity(seq(0x10)), Identity(seq(0x20))
    name = "r\u00f6bert"  # non-ASCII on purpose: the name is signed as UTF-8 bytes
    return {
        "old_seed": seq(0x10),
        "old": old.public_key,
        "new_seed": seq(0x20),
        "new": new.public_key,
        "issued": CREATED,
        "name": name,
        "name_transcript": name_transcript(old.public_key, name, CREATED),
        "name_statement": sign_name(old, name, CREATED),
        "successor_transcript": successor_transcript(old.public_key, new.public_key, CREATED),
        "successor_statement": sign_successor(old, new, CREATED),
    }


VECTORS = {
    "kdf": kdf_vectors,
    "chain": chain_vectors,
    "message": message_vectors,
    "payload": payload_vectors,
    "direct": direct_vectors,
    "proof": proof_vectors,
    "log": log_vectors,
    "safety": safety_vectors,
    "file": file_vectors,
    "statements": statement_vectors,
}


def main() -> None:
    for name, build in VECTORS.items():
        path = HERE / f"{name}.json"
        path.write_text(json.dumps(hexed(build()), indent=2) + "\n")
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
