"""The known-answer vectors in tests/vectors/, against our code and against hashlib."""

import base64
import hashlib
import importlib.util
import json
import struct
import unicodedata
from pathlib import Path
from typing import Any

import nacl.bindings
import pytest

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
from e2echat.crypto.direct import (
    DirectInvite,
    Join,
    KeyRequest,
    RoomKey,
    RoomKeyRequest,
    Share,
    direct_transcript,
    encode_direct,
    open_direct,
)
from e2echat.crypto.errors import (
    CryptoError,
    InviteError,
    MalformedError,
    PayloadError,
    PrekeyError,
)
from e2echat.crypto.files import CHUNK_SIZE, blob_size, decrypt_file
from e2echat.crypto.identity import read_public_key
from e2echat.crypto.message import parse_body, seal_body
from e2echat.crypto.payload import File, Successor, check_signer
from e2echat.crypto.prekeys import SignedPrekey
from e2echat.crypto.primitives import argon2id, pad, seal, seal_open, unpad, verify, x25519_usable
from e2echat.crypto.roomlog import apply_entry
from e2echat.crypto.roomsecret import Invite
from e2echat.crypto.safety import fingerprint, format_safety_number
from e2echat.crypto.statements import open_name, open_successor, sign_name, sign_successor
from e2echat.protocol import (
    PrekeyFound,
    PrekeyLookup,
    decode_client_frame,
    decode_relay_frame,
    encode_frame,
    hello_transcript,
    prekey_transcript,
)
from e2echat.protocol import SignedPrekey as WirePrekey

VECTORS = Path(__file__).parent.parent / "vectors"


TEXT_FIELDS = {
    "escapes_json",
    "password_nfc",
    "password_nfd",
    "passphrase",
    "fingerprint",
    "safety_number_shown",
    "relay",
    "room",
    "invite",
    "hello_json",
    "payload_json",
    "unsupported_json",
    "inner_json",
    "invite_inner_json",
    "lookup_json",
    "found_json",
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
    lp = struct.pack(">I", 16) + v["relay_salt"] + struct.pack(">I", 3) + b"ops"
    salt = b2(lp, person=b"e2echat-pws-v1", size=16)
    assert kdf.password_salt(v["relay_salt"], v["password_room"]) == salt
    assert v["password_salt"] == salt
    derived = RoomSecret.from_password(
        v["password"], v["relay_salt"], room=v["password_room"], limits=limits
    )
    assert derived.secret == v["password_room_secret"]


def test_kdf_vector_passwords_are_not_normalised() -> None:
    """The same text in NFC and NFD is two passwords: the bytes are UTF-8 as typed."""
    v = load("kdf")
    assert unicodedata.normalize("NFC", v["password_nfd"]) == v["password_nfc"]
    for form in ("nfc", "nfd"):
        text = v[f"password_{form}"]
        assert text.encode() == v[f"password_{form}_utf8"]
        salt = kdf.password_salt(v["relay_salt"], v["password_room"])
        raw = argon2id(
            v[f"password_{form}_utf8"],
            salt,
            opslimit=v["argon2id_opslimit"],
            memlimit=v["argon2id_memlimit"],
        )
        assert raw == v[f"password_{form}_room_secret"]
        assert RoomSecret.from_password(text, v["relay_salt"], room="ops").secret == raw
    assert v["password_nfc_room_secret"] != v["password_nfd_room_secret"]


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
        Successor,
    ]
    assert kinds[-1].statement == load("statements")["successor_statement"]  # type: ignore[union-attr]
    assert [encode_payload(kind).decode() for kind in kinds] == v["kinds"]  # type: ignore[arg-type]
    assert kinds[1].reply_to == v["message_id"]  # type: ignore[union-attr]
    assert all(
        kind.target == v["message_id"]  # type: ignore[union-attr]
        for kind in kinds[2:]
        if not isinstance(kind, Typing | File | Successor)
    )  # type: ignore[union-attr]
    assert decode_payload(v["unsupported_json"].encode()) == Unsupported("poll", 1_800_000_000_000)
    escapes = decode_payload(v["escapes_json"].encode())
    assert isinstance(escapes, Text)
    assert escapes.body == '"\\/\b\f\n\r\t\x00\x1b\x1f\x7f \u00e9 \u2028 \U0001f600'
    assert v["escapes_json"].startswith('{"t":"text","body":"\\"\\\\/\\b\\f\\n\\r\\t\\u0000\\u001b')
    for text in v["noncanonical"]:
        with pytest.raises(PayloadError):
            decode_payload(text.encode())
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


def envelopes() -> list[dict[str, Any]]:
    return [
        {k: bytes.fromhex(x) if k not in ("t", "inner_json") else x for k, x in e.items()}
        for e in load("direct")["envelopes"]
    ]


def open_vector(v: dict[str, Any], body: bytes) -> object:
    return open_direct(
        body,
        prekey_public=v["prekey_public"],
        prekey_secret=v["prekey_secret"],
        me=v["recipient_key"],
        claimed_sender=v["sender_key"],
        now=v["now"],
    )


def test_direct_vectors_open_and_spell_out_their_bytes() -> None:
    """Every kind: the signature over the transcript, the sealed box rebuilt from its
    ephemeral key (nonce = BLAKE2b-192(epk || pk)), and the envelope opened by our code."""
    v = load("direct")
    sender, recipient = Identity(v["sender_seed"]), Identity(v["recipient_seed"])
    assert (sender.public_key, recipient.public_key) == (v["sender_key"], v["recipient_key"])
    SignedPrekey(v["prekey_id"], v["prekey_public"], v["prekey_sig"]).verify(recipient.public_key)
    kinds = []
    for e in envelopes():
        inner = e["inner_json"].encode()
        kinds.append(e["t"])
        verify(sender.public_key, lp(b"e2echat/v1/direct") + lp(inner), e["inner_sig"])
        assert sender.sign(direct_transcript(inner)) == e["inner_sig"]
        epk = e["ephemeral_public"]
        assert nacl.bindings.crypto_scalarmult_base(e["ephemeral_secret"]) == epk
        assert b2(epk + v["prekey_public"], size=24) == e["seal_nonce"]
        box = nacl.bindings.crypto_box(
            inner + e["inner_sig"], e["seal_nonce"], v["prekey_public"], e["ephemeral_secret"]
        )
        assert e["body"] == b"\x01\x02" + struct.pack(">I", v["prekey_id"]) + epk + box
        assert seal_open(v["prekey_public"], v["prekey_secret"], e["body"][6:]) == (
            inner + e["inner_sig"]
        )
        payload = open_vector(v, e["body"])
        assert encode_direct(payload) == inner  # type: ignore[arg-type]
        fields = json.loads(inner)
        assert list(fields)[:5] == ["t", "from", "to", "room_id", "created"]
        assert fields["from"] == base64.b64encode(v["sender_key"]).decode()
        assert fields["to"] == base64.b64encode(v["recipient_key"]).decode()
    assert kinds == ["share", "share", "join", "key_request", "room_key", "room_key_request", "dm"]


def test_direct_share_vector_opens_the_message_vector() -> None:
    """``ck`` is the chain key of message ``index`` (the first message is index 0): the
    open-room share's key opens the message vector's body, and one step off does not."""
    v, message = load("direct"), load("message")
    share = open_vector(v, envelopes()[0]["body"])
    assert isinstance(share, Share)
    assert share.proof is None
    assert (share.room_id, share.chain_id, share.index) == (
        message["room_id"],
        message["chain_id"],
        message["index"],
    )
    assert share.ck == advance(message["ck0"], message["index"])
    parsed = parse_body(message["body"])
    assert parsed.decrypt(kdf.message_key(share.ck)).decode() == message["payload_json"]
    for wrong in (kdf.next_chain_key(share.ck), advance(message["ck0"], message["index"] - 1)):
        with pytest.raises(CryptoError):
            parsed.decrypt(kdf.message_key(wrong))


def test_direct_vectors_carry_the_proof_vector() -> None:
    """The secret-room share and the join carry proof.json's proof, the key request a
    proof of its own nonce; each checks for the envelope's sender and recipient."""
    v, proof = load("direct"), load("proof")
    items = envelopes()
    share, join, request = (open_vector(v, items[n]["body"]) for n in (1, 2, 3))
    assert isinstance(share, Share)
    assert isinstance(join, Join)
    assert isinstance(request, KeyRequest)
    for payload in (share, join, request):
        assert payload.epoch == proof["epoch"]
        assert payload.nonce is not None
        assert payload.proof is not None
        made = kdf.proof(
            proof["join_key"],
            payload.room_id,
            payload.epoch,
            payload.sender,
            payload.to,
            payload.nonce,
        )
        assert made == payload.proof
    assert share.proof == join.proof == proof["proof"]
    assert share.nonce == proof["nonce"] != request.nonce


def test_direct_vectors_of_room_keys_and_invitations() -> None:
    v = load("direct")
    items = envelopes()
    room_key, room_key_request, invite = (open_vector(v, items[n]["body"]) for n in (4, 5, 6))
    assert isinstance(room_key, RoomKey)
    assert isinstance(room_key_request, RoomKeyRequest)
    assert (room_key.epoch, len(room_key.secret), len(room_key.salt)) == (4, 32, 16)
    assert room_key_request.epoch == 4
    assert isinstance(invite, DirectInvite)
    assert (invite.name, invite.secret) == ("dm-0a1b2c", bytes(range(0x60, 0x80)))


def test_direct_vectors_refuse_noncanonical_inner_json() -> None:
    """Signed by the right key and sealed to the right prekey, yet refused: ``inner`` is
    not its payload's canonical bytes."""
    v = load("direct")
    sender, prekey = Identity(v["sender_seed"]), v["prekey_public"]
    assert v["noncanonical_inner"]
    for text in v["noncanonical_inner"]:
        inner = text.encode()
        body = b"\x01\x02" + struct.pack(">I", v["prekey_id"])
        body += seal(prekey, inner + sender.sign(direct_transcript(inner)))
        with pytest.raises(MalformedError):
            open_vector(v, body)


def test_proof_vector() -> None:
    v = load("proof")
    assert kdf.join_key(v["room_secret"]) == v["join_key"]
    assert Identity(v["prover_seed"]).public_key == v["prover_key"]
    assert Identity(v["recipient_seed"]).public_key == v["recipient_key"]
    data = (
        v["room_id"]
        + struct.pack(">I", v["epoch"])
        + v["prover_key"]
        + v["recipient_key"]
        + v["nonce"]
    )
    expected = b2(data, v["join_key"], b"e2echat-prf-v1")
    made = kdf.proof(
        v["join_key"], v["room_id"], v["epoch"], v["prover_key"], v["recipient_key"], v["nonce"]
    )
    assert made == v["proof"] == expected


def test_log_vector() -> None:
    """Each entry, one of every kind: its layout field by field, signature, hash with
    hashlib, tag (a MAC of everything before it under the epoch's join key), the chain."""
    v = load("log")
    secrets = [RoomSecret(bytes.fromhex(secret)) for secret in v["secrets"]]
    join_keys = {secret.verifier: secret.join_key for secret in secrets}
    assert [item["kind"] for item in v["entries"]] == [1, 2, 7, 6, 3, 4, 8, 5, 9]
    state = None
    prev = bytes(32)
    for position, item in enumerate(v["entries"]):
        wire = bytes.fromhex(item["wire"])
        author = Identity(bytes.fromhex(item["author_seed"])).public_key
        fixed = struct.unpack_from(">BB16sI32s32sQ32sBI32s", wire)
        assert fixed[:6] == (1, item["kind"], v["room_id"], position, prev, author)
        assert fixed[7:] == (
            bytes.fromhex(item["subject"]),
            item["role"],
            item["epoch"],
            bytes.fromhex(item["verifier"]),
        )
        rest = wire[struct.calcsize(">BB16sI32s32sQ32sBI32s") :]
        salt, description = bytes.fromhex(item["salt"]), item["description"].encode()
        tag = bytes.fromhex(item["tag"])
        assert rest == lp(salt) + lp(description) + tag + rest[-64:]
        assert len(wire) == 267 + len(salt) + len(description)
        entry, signature = wire[:-64], wire[-64:]
        verify(author, struct.pack(">I", 14) + b"e2echat/v1/log" + lp(entry), signature)
        assert b2(wire, person=b"e2echat-log-v1") == bytes.fromhex(item["hash"])
        if item["kind"] in (2, 3):  # join, admit
            current = state.verifier if state is not None else b""
            assert tag == b2(entry[:-32], join_keys[current], b"e2echat-jtag-v1")
        else:
            assert tag == bytes(32)
        state, parsed = apply_entry(state, wire, lambda s: join_keys[s.verifier])
        assert parsed.hash == bytes.fromhex(item["hash"])
        prev = parsed.hash
    assert state is not None
    assert state.head == v["final_head"]
    assert state.epoch == v["final_epoch"] == 3
    assert state.verifier == secrets[3].verifier
    assert len(bytes.fromhex(v["entries"][6]["salt"])) == 16  # the rotation to a password
    assert state.salt == b""  # the kick after it made a random secret
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
    groups = [v["safety_number"][i : i + 5] for i in range(0, 60, 5)]
    lines = [" ".join(groups[i : i + 4]) for i in range(0, 12, 4)]
    assert v["safety_number_shown"] == "\n".join(lines)
    assert format_safety_number(v["safety_number"]) == v["safety_number_shown"]


def test_identity_vector(tmp_path: Path) -> None:
    """Both file layouts spelled out with struct, and loaded by our code."""
    v = load("identity")
    assert Identity(v["seed"]).public_key == v["public_key"]
    hexed = v["public_key"].hex()
    assert v["fingerprint"] == " ".join(hexed[i : i + 4] for i in range(0, 64, 4))
    assert fingerprint(v["public_key"]) == v["fingerprint"]
    prefix = b"e2echat-identity" + b"\x01"
    assert v["plain_file"] == prefix + b"\x00" + v["public_key"] + v["seed"]
    header = (
        prefix
        + b"\x01"
        + v["public_key"]
        + struct.pack(">IQ", v["opslimit"], v["memlimit"])
        + v["salt"]
        + v["nonce"]
    )
    assert len(v["encrypted_file"]) == 150
    assert v["encrypted_file"].startswith(header)
    key = argon2id(
        v["passphrase"].encode(), v["salt"], opslimit=v["opslimit"], memlimit=v["memlimit"]
    )
    assert key == v["file_key"]
    sealed = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_encrypt(
        v["seed"], header, v["nonce"], key
    )
    assert v["encrypted_file"] == header + sealed
    (tmp_path / "plain").write_bytes(v["plain_file"])
    (tmp_path / "encrypted").write_bytes(v["encrypted_file"])
    assert Identity.load(tmp_path / "plain").public_key == v["public_key"]
    assert Identity.load(tmp_path / "encrypted", v["passphrase"]).public_key == v["public_key"]
    assert read_public_key(tmp_path / "encrypted") == v["public_key"]
    nfd = unicodedata.normalize("NFD", v["passphrase"])
    assert nfd != v["passphrase"]
    with pytest.raises(CryptoError):
        Identity.load(tmp_path / "encrypted", nfd)


def test_invite_vector() -> None:
    v = load("invite")
    secret = base64.urlsafe_b64encode(v["room_secret"]).rstrip(b"=").decode()
    assert v["invite"] == f"{v['relay']}/{v['room']}#{secret}"
    assert str(Invite(v["relay"], v["room"], RoomSecret(v["room_secret"]))) == v["invite"]
    for text in [v["invite"], *v["accepted"]]:
        parsed = Invite.parse(text)
        assert (parsed.relay, parsed.room, parsed.secret.secret) == (
            v["relay"],
            v["room"],
            v["room_secret"],
        )
    for text in v["rejected"]:
        with pytest.raises(InviteError):
            Invite.parse(text)


def test_pad_vector() -> None:
    v = load("pad")
    block = v["block"]
    for case in v["cases"]:
        data, padded = bytes.fromhex(case["data"]), bytes.fromhex(case["padded"])
        size = (len(data) // block + 1) * block
        assert padded == data + b"\x80" + bytes(size - len(data) - 1)
        assert pad(data, block) == padded
        assert unpad(padded, block) == data
    for rejected in v["rejected"]:
        with pytest.raises(MalformedError):
            unpad(bytes.fromhex(rejected), block)


def test_prekey_vector() -> None:
    v = load("prekey")
    owner = Identity(v["owner_seed"])
    assert owner.public_key == v["owner_key"]
    assert nacl.bindings.crypto_scalarmult_base(v["secret"]) == v["public"]
    assert v["transcript"] == prekey_transcript(v["id"], v["public"])
    assert v["transcript"] == lp(b"e2echat/v1/prekey") + lp(struct.pack(">I", v["id"])) + lp(
        v["public"]
    )
    SignedPrekey(v["id"], v["public"], v["sig"]).verify(v["owner_key"])
    assert x25519_usable(v["public"])
    for point in v["low_order"]:
        assert not x25519_usable(bytes.fromhex(point))


def test_hello_vector() -> None:
    v = load("hello")
    identity = Identity(v["seed"])
    assert identity.public_key == v["key"]
    assert identity.sign(prekey_transcript(v["prekey_id"], v["prekey_public"])) == v["prekey_sig"]
    transcript = b"".join(
        lp(part)
        for part in (
            b"e2echat/v1/hello",
            v["relay"].encode(),
            v["nonce"],
            v["key"],
            v["name"].encode(),
            struct.pack(">I", v["prekey_id"]),
            v["prekey_public"],
            v["prekey_sig"],
        )
    )
    assert transcript == v["transcript"]
    assert (
        hello_transcript(
            v["relay"],
            v["nonce"],
            v["key"],
            v["name"],
            v["prekey_id"],
            v["prekey_public"],
            v["prekey_sig"],
        )
        == transcript
    )
    verify(v["key"], transcript, v["sig"])
    frame = decode_client_frame(v["hello_json"])
    assert json.loads(v["hello_json"]) == {
        "type": "hello",
        "key": base64.b64encode(v["key"]).decode(),
        "name": v["name"],
        "prekey": {
            "id": v["prekey_id"],
            "key": base64.b64encode(v["prekey_public"]).decode(),
            "sig": base64.b64encode(v["prekey_sig"]).decode(),
        },
        "sig": base64.b64encode(v["sig"]).decode(),
    }
    assert frame.sig == v["sig"]  # type: ignore[union-attr]


def _generator() -> Any:
    spec = importlib.util.spec_from_file_location("vector_generator", VECTORS / "generate.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_vectors_are_the_generators_output() -> None:
    """`uv run python tests/vectors/generate.py` reproduces every committed file."""
    generator = _generator()
    committed = sorted(path.stem for path in VECTORS.glob("*.json"))
    assert committed == sorted(generator.VECTORS)
    for name in generator.VECTORS:
        raw = json.loads((VECTORS / f"{name}.json").read_text())
        expected = generator.deterministic(name, generator.build(name))
        assert generator.deterministic(name, raw) == expected, name


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


def test_prekey_lookup_vector() -> None:
    """The lookup frames byte for byte, carrying the prekey vector's prekey, and the same
    prekey signed by another key (a relay's substitute), which the owner's key refuses."""
    v, p = load("prekey_lookup"), load("prekey")
    assert v["owner_key"] == p["owner_key"] == Identity(p["owner_seed"]).public_key
    wire = WirePrekey(id=p["id"], key=p["public"], sig=p["sig"])
    lookup = PrekeyLookup(key=v["owner_key"], id="p1")
    found = PrekeyFound(key=v["owner_key"], prekey=wire, id="p1")
    assert encode_frame(lookup).decode() == v["lookup_json"]
    assert encode_frame(found).decode() == v["found_json"]
    assert decode_client_frame(v["lookup_json"]) == lookup
    assert decode_relay_frame(v["found_json"]) == found
    SignedPrekey(p["id"], p["public"], p["sig"]).verify(v["owner_key"])
    other = Identity(v["substitute_seed"])
    assert other.public_key == v["substitute_key"]
    assert other.sign(p["transcript"]) == v["substitute_sig"]
    substitute = SignedPrekey(p["id"], p["public"], v["substitute_sig"])
    substitute.verify(v["substitute_key"])  # a good signature, of the wrong key
    with pytest.raises(PrekeyError, match="does not verify"):
        substitute.verify(v["owner_key"])
