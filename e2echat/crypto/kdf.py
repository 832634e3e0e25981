"""Every key derivation of the protocol, each with its own BLAKE2b personalisation.

``KDF(k, label) = BLAKE2b-256(label, key=k, person=<person of that use>)``: the label is
the hashed data and the person string (at most 16 bytes, zero-padded by libsodium)
separates the uses, so no derived value can stand in for another. The exact bytes are
normative (docs/crypto.md, tests/vectors/kdf.json).
"""

import struct

from e2echat.crypto.primitives import blake2b
from e2echat.protocol.transcripts import length_prefixed

MESSAGE_KEY_PERSON = b"e2echat-mk-v1"
CHAIN_KEY_PERSON = b"e2echat-ck-v1"
RELAY_TOKEN_PERSON = b"e2echat-rt-v1"
JOIN_KEY_PERSON = b"e2echat-join-v1"
PROOF_PERSON = b"e2echat-prf-v1"
PASSWORD_SALT_PERSON = b"e2echat-pws-v1"
KEY_COMMITMENT_PERSON = b"e2echat-kc-v1"
JOIN_TAG_PERSON = b"e2echat-jtag-v1"

MESSAGE_KEY_INPUT = b"\x01"
CHAIN_KEY_INPUT = b"\x02"
RELAY_TOKEN_LABEL = b"relay-token"
JOIN_KEY_LABEL = b"join"


def message_key(chain_key: bytes) -> bytes:
    """``mk_i``: the AEAD key of message ``i`` from chain key ``ck_i``."""
    return blake2b(MESSAGE_KEY_INPUT, key=chain_key, person=MESSAGE_KEY_PERSON)


def next_chain_key(chain_key: bytes) -> bytes:
    """``ck_{i+1}`` from ``ck_i``; one-way, so a chain key never reveals earlier ones."""
    return blake2b(CHAIN_KEY_INPUT, key=chain_key, person=CHAIN_KEY_PERSON)


def key_commitment(message_key_: bytes) -> bytes:
    """``kc_i = B2(mk_i)``: carried in the signed header, so the signature binds the key.

    XChaCha20-Poly1305 does not commit to its key: a sender holding two keys can make
    one ciphertext open under both. With ``kc`` signed, every receiver that accepts a
    message used the one key whose hash the sender signed, and so reads the same text.
    """
    return blake2b(message_key_, person=KEY_COMMITMENT_PERSON)


def relay_token(room_secret: bytes) -> bytes:
    """What a joiner shows the relay; reveals nothing that decrypts."""
    return blake2b(RELAY_TOKEN_LABEL, key=room_secret, person=RELAY_TOKEN_PERSON)


def verifier(token: bytes) -> bytes:
    """What the relay stores to check a relay token: plain BLAKE2b-256, no key or person."""
    return blake2b(token)


def join_key(room_secret: bytes) -> bytes:
    """The key of membership proofs; never leaves the members' devices."""
    return blake2b(JOIN_KEY_LABEL, key=room_secret, person=JOIN_KEY_PERSON)


def proof(
    join_key_: bytes, room_id: bytes, epoch: int, prover: bytes, recipient: bytes, nonce: bytes
) -> bytes:
    """``prover``'s proof to ``recipient`` that it knows the secret of ``room_id``'s
    ``epoch``, made fresh by ``nonce`` (16 random bytes, accepted once by the recipient).

    The inputs are fixed-size (16 + 4 + 32 + 32 + 16 bytes), so plain concatenation is
    unambiguous; binding both keys means a proof shown to one member is useless to anyone
    else, binding the epoch kills every proof of a member once it is removed, and the
    nonce makes each proof one-time, so a replayed envelope validates nothing.
    """
    data = room_id + struct.pack(">I", epoch) + prover + recipient + nonce
    return blake2b(data, key=join_key_, person=PROOF_PERSON)


def join_tag(join_key_: bytes, entry_prefix: bytes) -> bytes:
    """The tag of a membership-log ``join`` entry: a MAC, under the epoch's join key, of
    the entry's bytes before the tag (room, position, previous hash, author, epoch).

    It proves the joiner knew the room secret of that epoch, at that one position of
    the log (the previous hash is inside), so it can never be moved or replayed.
    """
    return blake2b(entry_prefix, key=join_key_, person=JOIN_TAG_PERSON)


def password_salt(relay_salt: bytes, room_name: str) -> bytes:
    """The 16-byte Argon2id salt of a password room: the relay's salt bound to the room name.

    The relay hands out the salt; were it used as is, a relay could give every room the
    same salt and test one precomputed dictionary against all their relay tokens. Binding
    the name (chosen by users, unique per relay) forces a separate dictionary per room.
    """
    return blake2b(
        length_prefixed(relay_salt, room_name.encode()), person=PASSWORD_SALT_PERSON, size=16
    )
