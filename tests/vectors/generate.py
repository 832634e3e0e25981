"""Write the known-answer vectors of docs/crypto.md to tests/vectors/*.json.

Run from the repository root:  uv run python tests/vectors/generate.py

Every input is fixed and every output comes from the implementation, so the files are
reproducible byte for byte (tests/crypto/test_vectors.py checks that the committed files
equal this script's output), with one exception: libsodium's secretstream draws a file's
header at random, so the file blobs are checked by opening them. Sealed boxes use a
given ephemeral key (``sealed_box``, the construction of crypto.md section 2), which the
implementation's ``seal_open`` opens. Bytes are lowercase hex; crypto.md's
"Known-answer vectors" section names every field.
"""

import base64
import json
import unicodedata
from pathlib import Path
from typing import Any

import nacl.bindings as sodium

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
from e2echat.crypto.direct import (
    DirectInvite,
    DirectPayload,
    Join,
    KeyRequest,
    RoomKey,
    RoomKeyRequest,
    Share,
    direct_transcript,
    encode_direct,
)
from e2echat.crypto.files import CHUNK_SIZE, encrypt_file
from e2echat.crypto.identity import INTERACTIVE, KdfLimits
from e2echat.crypto.message import PAD_BLOCK, seal_body
from e2echat.crypto.payload import File, Successor
from e2echat.crypto.prekeys import SignedPrekey
from e2echat.crypto.primitives import blake2b, pad, x25519_public
from e2echat.crypto.roomlog import Kind, Role, apply_entry, encode_entry
from e2echat.crypto.roomsecret import Invite
from e2echat.crypto.safety import fingerprint, format_safety_number, safety_half
from e2echat.crypto.statements import (
    name_transcript,
    sign_name,
    sign_successor,
    successor_transcript,
)
from e2echat.protocol import (
    Hello,
    PrekeyFound,
    PrekeyLookup,
    encode_frame,
    hello_transcript,
    prekey_transcript,
)
from e2echat.protocol.frames import SignedPrekey as WirePrekey

HERE = Path(__file__).parent
CREATED = 1_800_000_000_000
PASSWORD = "correct horse battery staple"
NON_ASCII_PASSWORD = "Gr\u00fc\u00dfe, J\u00fcrgen"
"""Typed in NFC; the same text in NFD derives another secret (no normalisation)."""


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


def sealed_box(recipient: bytes, message: bytes, ephemeral_secret: bytes) -> bytes:
    """libsodium's ``crypto_box_seal`` with a given ephemeral key: ``epk || box`` where
    ``box = crypto_box_easy(message, B2-192(epk || recipient), recipient, esk)``."""
    ephemeral = x25519_public(ephemeral_secret)
    nonce = blake2b(ephemeral + recipient, size=24)
    return ephemeral + sodium.crypto_box(message, nonce, recipient, ephemeral_secret)


def kdf_vectors() -> dict[str, object]:
    room_secret = seq(0x40)
    relay_salt = seq(0xA0, 16)
    nfd = unicodedata.normalize("NFD", NON_ASCII_PASSWORD)
    return {
        "room_secret": room_secret,
        "relay_token": kdf.relay_token(room_secret),
        "verifier": kdf.verifier(kdf.relay_token(room_secret)),
        "join_key": kdf.join_key(room_secret),
        "password": PASSWORD,
        "relay_salt": relay_salt,
        "argon2id_opslimit": INTERACTIVE.opslimit,
        "argon2id_memlimit": INTERACTIVE.memlimit,
        "password_room": "ops",
        "password_salt": kdf.password_salt(relay_salt, "ops"),
        "password_room_secret": RoomSecret.from_password(PASSWORD, relay_salt, room="ops").secret,
        "password_nfc": NON_ASCII_PASSWORD,
        "password_nfc_utf8": NON_ASCII_PASSWORD.encode(),
        "password_nfc_room_secret": RoomSecret.from_password(
            NON_ASCII_PASSWORD, relay_salt, room="ops"
        ).secret,
        "password_nfd": nfd,
        "password_nfd_utf8": nfd.encode(),
        "password_nfd_room_secret": RoomSecret.from_password(nfd, relay_salt, room="ops").secret,
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
    """Every payload kind's exact JSON (the successor's statement is the one of
    statements.json), and an edit sealed as message 4 of the message vector's chain (the
    edit names message 3, its signer's own)."""
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
        Successor(sign_successor(sender, Identity(seq(0x20)), CREATED), CREATED + 9),
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
        "escapes_json": encode_payload(Text(ESCAPES, (), CREATED)).decode(),
        "noncanonical": noncanonical_payloads(kinds[0], kinds[1]),
        "edit_index": 4,
        "edit_nonce": nonce,
        "edit_body": edit_body,
    }


ESCAPES = '"\\/\b\f\n\r\t\x00\x1b\x1f\x7f \u00e9 \u2028 \U0001f600'
"""Every character class of the string rule: the escaped ones and some written as is."""


def noncanonical_payloads(text: Text, reply: Text) -> list[str]:
    """Payloads a lax JSON reader accepts but that are not the canonical bytes of what
    they decode to (most decode to ``text`` itself): a receiver rejects every one."""
    canonical = encode_payload(text).decode()
    mention = base64.b64encode(text.mentions[0]).decode()
    unused_bits = mention[:-2] + chr(ord(mention[-2]) + 1) + "="
    swapped = (
        '{"body":"hello @bob","t":"text"' + canonical[len('{"t":"text","body":"hello @bob"') :]
    )
    ts = f'"ts":{text.ts}'
    return [
        canonical.replace(",", ", "),  # whitespace
        canonical + "\n",
        " " + canonical,
        swapped,  # another key order
        canonical.replace(ts, f'"ts":1,{ts}'),  # a key twice
        canonical.replace("hello", "\\u0068ello"),  # an escape that is not needed
        canonical.replace("@bob", "@b\\/ob"),  # "\/" for "/"
        canonical.replace("hello", "\\u00e9"),  # non-ASCII escaped
        canonical.replace(mention, unused_bits),  # base64 with non-zero unused bits
        canonical.replace(mention, mention.rstrip("=")),  # base64 without padding
        canonical[:-1] + ',"reply_to":null}',  # null for an omitted field
        canonical.replace(ts, ts + ".0"),  # a fraction
        canonical.replace(ts, '"ts":1.8e12'),  # an exponent
        canonical.replace(ts, f'"ts":0{text.ts}'),  # a leading zero
        encode_payload(reply).decode().replace('"reply_to"', '"reply_to" '),
        '{"question":"lunch?","t":"poll","ts":1800000000000}',  # unknown kind: t not first
        '{"t":"poll", "question":"lunch?","ts":1800000000000}',
        '{"t":"poll","question":"lunch?","ts":1800000000000,"n":1.5}',
        '{"t":"poll","question":"lunch?","ts":1800000000000,"n":9007199254740993}',
    ]


def direct_vectors() -> dict[str, object]:
    """One envelope of every kind from the message vector's sender to its recipient.

    The open-room ``share`` carries the message vector's own chain at that message's
    index, so its ``ck`` must open that body; the secret-room ``share`` carries the proof
    vector's proof."""
    sender, recipient = Identity(seq(0x10)), Identity(seq(0x20))
    prekey_secret = seq(0x30)
    prekey_public = x25519_public(prekey_secret)
    prekey_id = 7
    signed = SignedPrekey(
        prekey_id, prekey_public, recipient.sign(prekey_transcript(prekey_id, prekey_public))
    )
    room_id, chain_id, ck3 = seq(0x80, 16), seq(0x90, 16), advance(seq(0x00), 3)
    join_key, epoch, nonce, request_nonce = kdf.join_key(seq(0x40)), 3, seq(0xF0, 16), seq(0xF8, 16)
    me, you = sender.public_key, recipient.public_key
    proof = kdf.proof(join_key, room_id, epoch, me, you, nonce)
    request_proof = kdf.proof(join_key, room_id, epoch, me, you, request_nonce)
    payloads: list[DirectPayload] = [
        Share(me, you, room_id, CREATED, chain_id, 3, ck3),
        Share(me, you, room_id, CREATED, chain_id, 3, ck3, proof, epoch, nonce),
        Join(me, you, room_id, CREATED, proof, epoch, nonce),
        KeyRequest(me, you, room_id, CREATED, chain_id, request_proof, epoch, request_nonce),
        RoomKey(me, you, room_id, CREATED, 4, seq(0x60), seq(0xA0, 16)),
        RoomKeyRequest(me, you, room_id, CREATED, 4),
        DirectInvite(me, you, room_id, CREATED, "dm-0a1b2c", seq(0x60)),
    ]
    envelopes = []
    for number, payload in enumerate(payloads):
        inner = encode_direct(payload)
        inner_sig = sender.sign(direct_transcript(inner))
        ephemeral_secret = seq(0xB0 + number)
        ephemeral_public = x25519_public(ephemeral_secret)
        envelopes.append(
            {
                "t": payload.__struct_config__.tag,
                "inner_json": inner.decode(),
                "inner_sig": inner_sig,
                "ephemeral_secret": ephemeral_secret,
                "ephemeral_public": ephemeral_public,
                "seal_nonce": blake2b(ephemeral_public + prekey_public, size=24),
                "body": bytes([1, 2])
                + prekey_id.to_bytes(4, "big")
                + sealed_box(prekey_public, inner + inner_sig, ephemeral_secret),
            }
        )
    return {
        "sender_seed": seq(0x10),
        "sender_key": sender.public_key,
        "recipient_seed": seq(0x20),
        "recipient_key": recipient.public_key,
        "prekey_id": prekey_id,
        "prekey_secret": prekey_secret,
        "prekey_public": prekey_public,
        "prekey_sig": signed.sig,
        "now": CREATED,
        "envelopes": envelopes,
        "noncanonical_inner": noncanonical_inner(encode_direct(payloads[0]).decode()),
    }


def noncanonical_inner(share: str) -> list[str]:
    """The open-room share's ``inner`` in forms a lax reader accepts: refused even when
    correctly signed, since ``inner`` must be its kind's canonical bytes."""
    return [
        share.replace(":", ": "),
        share.replace(',"proof":null,"epoch":0,"nonce":null', ""),  # defaults left out
        share.replace(',"epoch":0', ""),
        share.replace('{"t":"share",', "{").replace("}", ',"t":"share"}'),
        share.replace('"index":3', '"index":5,"index":3'),
        share.replace('"index":3', '"index":3.0'),
    ]


def proof_vectors() -> dict[str, object]:
    """The direct vector's sender proving to its recipient (the public keys, not seeds)."""
    join_key = kdf.join_key(seq(0x40))
    room_id = seq(0x80, 16)
    prover, recipient = Identity(seq(0x10)).public_key, Identity(seq(0x20)).public_key
    epoch, nonce = 3, seq(0xF0, 16)
    return {
        "room_secret": seq(0x40),
        "join_key": join_key,
        "room_id": room_id,
        "epoch": epoch,
        "prover_seed": seq(0x10),
        "prover_key": prover,
        "recipient_seed": seq(0x20),
        "recipient_key": recipient,
        "nonce": nonce,
        "proof": kdf.proof(join_key, room_id, epoch, prover, recipient, nonce),
    }


def log_vectors() -> dict[str, object]:
    """A log with an entry of every kind: create (secret room), join (tagged), role,
    ban (epoch 1), admit (tagged by the admitter), leave, rotate to a password (epoch 2,
    a 16-byte salt), remove (epoch 3) and describe."""
    owner, joiner, guest = Identity(seq(0x10)), Identity(seq(0x20)), Identity(seq(0x30))
    room_id = seq(0x80, 16)
    secrets = [RoomSecret(seq(start)) for start in (0x40, 0x60, 0xA0, 0xC0)]
    salt = seq(0xE0, 16)
    steps: list[tuple[Identity, dict[str, object]]] = [
        (
            owner,
            {
                "kind": Kind.CREATE,
                "subject": owner.public_key,
                "role": Role.OWNER,
                "verifier": secrets[0].verifier,
                "description": "ops room",
            },
        ),
        (
            joiner,
            {"kind": Kind.JOIN, "subject": joiner.public_key, "join_key": secrets[0].join_key},
        ),
        (owner, {"kind": Kind.ROLE, "subject": joiner.public_key, "role": Role.ADMIN}),
        (
            joiner,
            {
                "kind": Kind.BAN,
                "subject": guest.public_key,
                "epoch": 1,
                "verifier": secrets[1].verifier,
            },
        ),
        (
            joiner,
            {
                "kind": Kind.ADMIT,
                "subject": guest.public_key,
                "epoch": 1,
                "join_key": secrets[1].join_key,
            },
        ),
        (guest, {"kind": Kind.LEAVE, "subject": guest.public_key, "epoch": 1}),
        (
            owner,
            {
                "kind": Kind.ROTATE,
                "subject": owner.public_key,
                "epoch": 2,
                "verifier": secrets[2].verifier,
                "salt": salt,
            },
        ),
        (
            owner,
            {
                "kind": Kind.REMOVE,
                "subject": joiner.public_key,
                "epoch": 3,
                "verifier": secrets[3].verifier,
            },
        ),
        (
            owner,
            {
                "kind": Kind.DESCRIBE,
                "subject": owner.public_key,
                "epoch": 3,
                "description": "ops room, v2",
            },
        ),
    ]
    join_keys = {secret.verifier: secret.join_key for secret in secrets}
    seeds = {owner.public_key: seq(0x10), joiner.public_key: seq(0x20), guest.public_key: seq(0x30)}
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
        state, entry = apply_entry(state, wire, lambda s: join_keys[s.verifier])
        entries.append(
            {
                "author_seed": seeds[author.public_key],
                "kind": int(entry.kind),
                "subject": entry.subject,
                "role": int(entry.role),
                "epoch": entry.epoch,
                "verifier": entry.verifier,
                "salt": entry.salt,
                "description": entry.description,
                "tag": entry.tag,
                "wire": wire,
                "hash": entry.hash,
            }
        )
    assert state is not None
    return {
        "room_id": room_id,
        "secrets": [secret.secret for secret in secrets],
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
        "safety_number_shown": format_safety_number(safety_number(key_a, key_b)),
    }


def identity_vectors() -> dict[str, object]:
    """Both identity file layouts of one seed (the encrypted one at libsodium's minimum
    Argon2id cost, so that it is quick to check) and the key's fingerprint."""
    identity = Identity(seq(0x10))
    limits = KdfLimits(
        sodium.crypto_pwhash_argon2id_OPSLIMIT_MIN, sodium.crypto_pwhash_argon2id_MEMLIMIT_MIN
    )
    salt, nonce, passphrase = seq(0x50, 16), seq(0x60, 24), "p\u00e4ssw\u00f6rd"
    return {
        "seed": seq(0x10),
        "public_key": identity.public_key,
        "fingerprint": fingerprint(identity.public_key),
        "plain_file": identity.plain_file(),
        "passphrase": passphrase,
        "opslimit": limits.opslimit,
        "memlimit": limits.memlimit,
        "salt": salt,
        "nonce": nonce,
        "file_key": sodium.crypto_pwhash_alg(
            32,
            passphrase.encode(),
            salt,
            limits.opslimit,
            limits.memlimit,
            sodium.crypto_pwhash_ALG_ARGON2ID13,
        ),
        "encrypted_file": identity.encrypted_file(passphrase, limits, salt, nonce),
    }


def invite_vectors() -> dict[str, object]:
    """An invite string and strings that must be refused (each is one rule of section 6)."""
    secret = RoomSecret(seq(0x40))
    invite = str(Invite("wss://chat.example.org/e2e", "ops", secret))
    encoded = invite.rpartition("#")[2]
    return {
        "relay": "wss://chat.example.org/e2e",
        "room": "ops",
        "room_secret": secret.secret,
        "invite": invite,
        "accepted": [f"  {invite}\n", f"\t{invite} "],
        "rejected": [
            invite.replace("/ops#", "//ops#"),  # not canonical: doubled slash
            invite.replace("/e2e/", "/e2e//"),
            invite + "=",  # padding
            invite[:-1],  # 42 characters
            # the last character carries 2 unused bits, which must be zero
            invite.replace("#" + encoded, "#" + encoded[:-1] + chr(ord(encoded[-1]) + 1)),
            invite.replace("wss://", "https://"),
            invite.replace("/ops#", "/Ops#"),
            invite.replace("#", " #"),  # inner whitespace
        ],
    }


def pad_vectors() -> dict[str, object]:
    """``pad`` at the block edges, and padded inputs a receiver must refuse."""
    cases = [
        {"data": seq(0x41, size), "padded": pad(seq(0x41, size), PAD_BLOCK)}
        for size in (0, 1, 255, 256, 300)
    ]
    return {
        "block": PAD_BLOCK,
        "cases": cases,
        "rejected": [
            bytes(PAD_BLOCK),  # no 0x80 marker
            seq(0x41, 100) + b"\x80" + bytes(154) + b"\x01",  # a non-zero byte after the marker
            seq(0x41, 10) + b"\x80" + bytes(2 * PAD_BLOCK - 11),  # padding longer than a block
            seq(0x41, 255) + b"\x80" + b"\x00",  # not a multiple of the block
            b"",
        ],
    }


def prekey_vectors() -> dict[str, object]:
    """Signed prekey bytes, and X25519 public keys a client must refuse: every encoding of
    a point of small order (X25519 of it is all zeros for any clamped scalar)."""
    identity = Identity(seq(0x20))
    secret = seq(0x30)
    public = x25519_public(secret)
    p = 2**255 - 19
    small = [
        0,
        1,
        0x00B8495F16056286FDB1329CEB8D09DA6AC49FF1FAE35616AEB8413B7C7AEBE0,
        0x57119FD0DD4E22D8868E1C58C45C44045BEF839C55B1D0B1248C50A3BC959C5F,
        p - 1,
        p,
        p + 1,
    ]
    encodings = [u.to_bytes(32, "little") for u in small]
    encodings += [(u + 2**255).to_bytes(32, "little") for u in small if u + 2**255 < 2**256]
    return {
        "owner_seed": seq(0x20),
        "owner_key": identity.public_key,
        "id": 7,
        "secret": secret,
        "public": public,
        "transcript": prekey_transcript(7, public),
        "sig": identity.sign(prekey_transcript(7, public)),
        "low_order": encodings,
    }


def prekey_lookup_vectors() -> dict[str, object]:
    """The prekey vector's prekey as ``prekey_lookup`` / ``prekey_found`` carry it, and
    the same prekey signed by another key: what a relay substituting a prekey can offer."""
    owner, other = Identity(seq(0x20)), Identity(seq(0x40))
    public = x25519_public(seq(0x30))
    transcript = prekey_transcript(7, public)
    wire = WirePrekey(id=7, key=public, sig=owner.sign(transcript))
    lookup = PrekeyLookup(key=owner.public_key, id="p1")
    found = PrekeyFound(key=owner.public_key, prekey=wire, id="p1")
    return {
        "owner_key": owner.public_key,
        "lookup_json": encode_frame(lookup).decode(),
        "found_json": encode_frame(found).decode(),
        "substitute_seed": seq(0x40),
        "substitute_key": other.public_key,
        "substitute_sig": other.sign(transcript),
    }


def hello_vectors() -> dict[str, object]:
    """A ``hello`` answering a given ``challenge`` (protocol.md section 4)."""
    identity = Identity(seq(0x10))
    relay, nonce, name = "e2echat", seq(0xC0), "al\u00efce"
    prekey_public = x25519_public(seq(0x30))
    signed = identity.sign(prekey_transcript(1, prekey_public))
    transcript = hello_transcript(relay, nonce, identity.public_key, name, 1, prekey_public, signed)
    sig = identity.sign(transcript)
    frame = Hello(
        key=identity.public_key,
        name=name,
        prekey=WirePrekey(id=1, key=prekey_public, sig=signed),
        sig=sig,
    )
    return {
        "seed": seq(0x10),
        "key": identity.public_key,
        "relay": relay,
        "nonce": nonce,
        "name": name,
        "prekey_id": 1,
        "prekey_public": prekey_public,
        "prekey_sig": signed,
        "transcript": transcript,
        "sig": sig,
        "hello_json": encode_frame(frame).decode(),
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
    "identity": identity_vectors,
    "invite": invite_vectors,
    "pad": pad_vectors,
    "prekey": prekey_vectors,
    "prekey_lookup": prekey_lookup_vectors,
    "hello": hello_vectors,
}


def build(name: str) -> object:
    """The JSON value of vector file ``name``, as written."""
    return json.loads(json.dumps(hexed(VECTORS[name]())))


RANDOM_FIELDS = {"file": ("blob", "hash")}
"""Fields of ``cases`` drawn at random (secretstream's header): checked by opening."""


def deterministic(name: str, value: Any) -> Any:
    """``value`` (a vector file's JSON) with its random fields blanked."""
    fields = RANDOM_FIELDS.get(name, ())
    if fields:
        value = {**value, "cases": [{**case, **dict.fromkeys(fields)} for case in value["cases"]]}
    return value


def main() -> None:
    for name in VECTORS:
        path = HERE / f"{name}.json"
        value = build(name)
        if path.exists() and deterministic(name, json.loads(path.read_text())) == deterministic(
            name, value
        ):
            continue  # unchanged (a file blob is kept: a new one differs only at random)
        path.write_text(json.dumps(value, indent=2) + "\n")
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
