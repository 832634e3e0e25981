"""The known-answer vectors in tests/vectors/, against our code and against hashlib."""

import base64
import hashlib
import json
import struct
from pathlib import Path
from typing import Any

from e2echat.crypto import (
    Delete,
    Edit,
    Identity,
    KdfLimits,
    Reaction,
    Read,
    RoomSecret,
    Text,
    Typing,
    Unsupported,
    decode_payload,
    encode_payload,
    kdf,
    safety_number,
)
from e2echat.crypto.chain import advance
from e2echat.crypto.direct import DirectInvite, Share, direct_transcript, open_direct
from e2echat.crypto.files import CHUNK_SIZE, blob_size, decrypt_file
from e2echat.crypto.message import parse_body, seal_body
from e2echat.crypto.payload import File, check_signer
from e2echat.crypto.prekeys import SignedPrekey
from e2echat.crypto.primitives import seal_open, verify
from e2echat.crypto.roomlog import apply_entry
from e2echat.crypto.statements import open_name, open_successor, sign_name, sign_successor

VECTORS = Path(__file__).parent.parent / "vectors"


TEXT_FIELDS = {
    "payload_json",
    "unsupported_json",
    "inner_json",
    "invite_inner_json",
    "password",
    "password_room",
    "half_a",
    "half_b",
    "safety_number",
    "name",
}


def load(name: str) -> dict[str, Any]:
    """A vector file with its hex strings decoded to bytes."""
    raw = json.loads((VECTORS / f"{name}.json").read_text())
    return {
        key: bytes.fromhex(value) if isinstance(value, str) and key not in TEXT_FIELDS else value
        for key, value in raw.items()
    }


def b2(data: bytes, key: bytes = b"", person: bytes = b"", size: int = 32) -> bytes:
    """Independent BLAKE2b from hashlib (person zero-padded, as in libsodium)."""
    return hashlib.blake2b(data, key=key, person=person, digest_size=size).digest()


def test_kdf_vector() -> None:
    v = load("kdf")
    rs = v["room_secret"]
    assert kdf.relay_token(rs) == v["relay_token"] == b2(b"relay-token", rs, b"e2echat-rt-v1")
    assert kdf.verifier(v["relay_token"]) == v["verifier"] == b2(v["relay_token"])
    assert kdf.join_key(rs) == v["join_key"] == b2(b"join", rs, b"e2echat-join-v1")
    limits = KdfLimits(v["argon2id_opslimit"], v["argon2id_memlimit"])
    lp = struct.pack(">I", 16) + v["password_salt"] + struct.pack(">I", 3) + b"ops"
    salt = b2(lp, person=b"e2echat-pws-v1", size=16)
    assert kdf.password_salt(v["password_salt"], v["password_room"]) == salt
    assert v["password_argon2id_salt"] == salt
    derived = RoomSecret.from_password(
        v["password"], v["password_salt"], room=v["password_room"], limits=limits
    )
    assert derived.secret == v["password_room_secret"]


def test_chain_vector() -> None:
    v = load("chain")
    ck = v["ck0"]
    for step in v["steps"]:
        step_ck = bytes.fromhex(step["ck"])
        assert advance(v["ck0"], step["index"]) == step_ck
        assert kdf.message_key(step_ck) == bytes.fromhex(step["mk"])
        assert b2(b"\x01", step_ck, b"e2echat-mk-v1") == bytes.fromhex(step["mk"])
    for _ in range(3):
        ck = b2(b"\x02", ck, b"e2echat-ck-v1")
    assert ck == bytes.fromhex(v["steps"][3]["ck"])


def test_message_vector() -> None:
    v = load("message")
    sender = Identity(v["sender_seed"])
    assert sender.public_key == v["sender"]
    mk = kdf.message_key(advance(v["ck0"], v["index"]))
    assert mk == v["message_key"]
    payload = v["payload_json"].encode()
    body = seal_body(
        sender.sign,
        v["room_id"],
        sender.public_key,
        v["chain_id"],
        v["index"],
        mk,
        payload,
        v["nonce"],
        log_length=v["log_length"],
        log_head=v["log_head"],
    )
    assert body == v["body"]
    commitment = b2(mk, person=b"e2echat-kc-v1")
    assert kdf.key_commitment(mk) == v["key_commitment"] == commitment
    header = struct.pack(
        ">BB16s32s16sI24s32sI32s",
        1,
        1,
        v["room_id"],
        v["sender"],
        v["chain_id"],
        v["index"],
        v["nonce"],
        commitment,
        v["log_length"],
        v["log_head"],
    )
    assert body.startswith(header)
    parsed = parse_body(body)
    parsed.verify()
    assert isinstance(decode_payload(parsed.decrypt(mk)), Text)
    label = b"e2echat/v1/msg"
    transcript = b"".join(struct.pack(">I", len(p)) + p for p in (label, header, body[162:-64]))
    verify(v["sender"], transcript, body[-64:])


def test_payload_vector() -> None:
    v = load("payload")
    assert v["message_id"] == v["sender"] + v["chain_id"] + struct.pack(">I", v["index"])
    kinds = [decode_payload(json.encode()) for json in v["kinds"]]
    assert [type(kind) for kind in kinds] == [
        Text,
        Text,
        Edit,
        Delete,
        Reaction,
        Reaction,
        Typing,
        Read,
        File,
    ]
    assert [encode_payload(kind).decode() for kind in kinds] == v["kinds"]  # type: ignore[arg-type]
    assert kinds[1].reply_to == v["message_id"]  # type: ignore[union-attr]
    assert all(
        kind.target == v["message_id"]  # type: ignore[union-attr]
        for kind in kinds[2:]
        if not isinstance(kind, Typing | File)
    )  # type: ignore[union-attr]
    assert decode_payload(v["unsupported_json"].encode()) == Unsupported("poll", 1_800_000_000_000)
    message = load("message")
    mk = kdf.message_key(advance(message["ck0"], v["edit_index"]))
    parsed = parse_body(v["edit_body"])
    parsed.verify()
    assert parsed.header.nonce == v["edit_nonce"]
    assert parsed.header.index == v["edit_index"]
    assert parsed.decrypt(mk).decode() == v["kinds"][2]
    check_signer(decode_payload(parsed.decrypt(mk)), parsed.header.sender)
    sender = Identity(message["sender_seed"])
    resealed = seal_body(
        sender.sign,
        message["room_id"],
        sender.public_key,
        v["chain_id"],
        v["edit_index"],
        mk,
        v["kinds"][2].encode(),
        v["edit_nonce"],
    )
    assert resealed == v["edit_body"]


def test_direct_vector() -> None:
    v = load("direct")
    sender, recipient = Identity(v["sender_seed"]), Identity(v["recipient_seed"])
    SignedPrekey(v["prekey_id"], v["prekey_public"], v["prekey_sig"]).verify(recipient.public_key)
    inner = v["inner_json"].encode()
    assert sender.sign(direct_transcript(inner)) == v["inner_sig"]
    assert v["body"][:6] == b"\x01\x02" + struct.pack(">I", v["prekey_id"])
    opened = seal_open(v["prekey_public"], v["prekey_secret"], v["body"][6:])
    assert opened == inner + v["inner_sig"]
    payload = open_direct(
        v["body"],
        prekey_public=v["prekey_public"],
        prekey_secret=v["prekey_secret"],
        me=recipient.public_key,
        claimed_sender=sender.public_key,
        now=v["now"],
    )
    assert isinstance(payload, Share)
    assert payload.index == 5


def test_direct_invite_vector() -> None:
    v = load("direct")
    sender, recipient = Identity(v["sender_seed"]), Identity(v["recipient_seed"])
    inner = v["invite_inner_json"].encode()
    assert json.loads(inner) == {
        "t": "dm",
        "from": base64.b64encode(sender.public_key).decode(),
        "to": base64.b64encode(recipient.public_key).decode(),
        "room_id": base64.b64encode(bytes(range(0x80, 0x90))).decode(),
        "created": v["now"],
        "name": "dm-0a1b2c",
        "secret": base64.b64encode(bytes(range(0x60, 0x80))).decode(),
    }
    assert sender.sign(direct_transcript(inner)) == v["invite_inner_sig"]
    assert seal_open(v["prekey_public"], v["prekey_secret"], v["invite_body"][6:]) == (
        inner + v["invite_inner_sig"]
    )
    payload = open_direct(
        v["invite_body"],
        prekey_public=v["prekey_public"],
        prekey_secret=v["prekey_secret"],
        me=recipient.public_key,
        claimed_sender=sender.public_key,
        now=v["now"],
    )
    assert isinstance(payload, DirectInvite)
    assert (payload.name, payload.secret) == ("dm-0a1b2c", bytes(range(0x60, 0x80)))


def test_proof_vector() -> None:
    v = load("proof")
    data = v["room_id"] + struct.pack(">I", v["epoch"]) + v["prover"] + v["verifier"] + v["nonce"]
    expected = b2(data, v["join_key"], b"e2echat-prf-v1")
    made = kdf.proof(
        v["join_key"], v["room_id"], v["epoch"], v["prover"], v["verifier"], v["nonce"]
    )
    assert made == v["proof"] == expected


def test_log_vector() -> None:
    """Each entry: layout by hand, signature, hash with hashlib, tag, and the chain."""
    v = load("log")
    secret0 = RoomSecret(v["secret_epoch0"])
    state = None
    prev = bytes(32)
    for position, item in enumerate(v["entries"]):
        wire = bytes.fromhex(item["wire"])
        author = Identity(bytes.fromhex(item["author_seed"])).public_key
        fixed = struct.unpack_from(">BB16sI32s32sQ32sBI32s", wire)
        assert fixed[:6] == (1, item["kind"], v["room_id"], position, prev, author)
        entry, signature = wire[:-64], wire[-64:]
        verify(author, struct.pack(">I", 14) + b"e2echat/v1/log" + lp(entry), signature)
        assert b2(wire, person=b"e2echat-log-v1") == bytes.fromhex(item["hash"])
        if item["kind"] == 2:  # join: the tag is a MAC of everything before it
            assert entry[-32:] == b2(entry[:-32], secret0.join_key, b"e2echat-jtag-v1")
        state, parsed = apply_entry(state, wire, lambda _s: secret0.join_key)
        assert parsed.hash == bytes.fromhex(item["hash"])
        prev = parsed.hash
    assert state is not None
    assert state.head == v["final_head"]
    assert state.epoch == v["final_epoch"] == 1
    assert state.verifier == RoomSecret(v["secret_epoch1"]).verifier
    assert state.description == "ops room, v2"


def lp(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def _signal_half(key: bytes) -> str:
    digest = b"\x00\x00" + key + key
    for _ in range(5200):
        digest = hashlib.sha512(digest + key).digest()
    return "".join(
        f"{int.from_bytes(digest[i : i + 5], 'big') % 100000:05d}" for i in range(0, 30, 5)
    )


def test_safety_vector() -> None:
    v = load("safety")
    assert _signal_half(v["key_a"]) == v["half_a"]
    assert _signal_half(v["key_b"]) == v["half_b"]
    assert safety_number(v["key_a"], v["key_b"]) == v["safety_number"]
    assert v["safety_number"] == "".join(sorted([v["half_a"], v["half_b"]]))


def test_file_vector() -> None:
    raw = json.loads((VECTORS / "file.json").read_text())
    assert raw["chunk_size"] == CHUNK_SIZE
    assert len(raw["cases"]) == 2
    for case in raw["cases"]:
        key, blob, digest = (bytes.fromhex(case[k]) for k in ("key", "blob", "hash"))
        size = case["size"]
        assert len(blob) == blob_size(size)
        assert b2(blob, person=b"e2echat-blob-v1") == digest
        assert decrypt_file(key, size, digest, blob) == bytes(7 * i % 251 for i in range(size))


def test_statement_vectors() -> None:
    """Name and successor statements: the transcripts spelled out with struct, the
    signatures checked, and our signing reproducing the bytes (Ed25519 is deterministic)."""
    v = load("statements")
    old, new = Identity(v["old_seed"]), Identity(v["new_seed"])
    assert (old.public_key, new.public_key) == (v["old"], v["new"])

    def lp(part: bytes) -> bytes:
        return struct.pack(">I", len(part)) + part

    issued = struct.pack(">Q", v["issued"])
    name = v["name"].encode()
    assert v["name_transcript"] == lp(b"e2echat/v1/name") + lp(v["old"]) + lp(issued) + lp(name)
    statement = v["name_statement"]
    assert statement[:9] == b"\x01" + issued
    assert statement[73:] == name
    verify(v["old"], v["name_transcript"], statement[9:73])
    assert sign_name(old, v["name"], v["issued"]) == statement
    assert open_name(v["old"], statement) == (v["old"], v["name"], v["issued"])

    assert v["successor_transcript"] == (
        lp(b"e2echat/v1/successor") + lp(v["old"]) + lp(v["new"]) + lp(issued)
    )
    successor = v["successor_statement"]
    assert len(successor) == 201
    assert successor[:73] == b"\x01" + v["old"] + v["new"] + issued
    verify(v["old"], v["successor_transcript"], successor[73:137])
    verify(v["new"], v["successor_transcript"], successor[137:])
    assert sign_successor(old, new, v["issued"]) == successor
    assert open_successor(successor) == (v["old"], v["new"], v["issued"])
