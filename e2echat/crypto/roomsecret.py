"""Room secrets of secret rooms, what is derived from them, invites and proofs.

A room secret (32 bytes) comes from a random invite or from a password stretched with
Argon2id and the salt the relay stores. The relay only ever gets ``relay_token`` (to
let a joiner in) and ``verifier`` (to check it); confidentiality rests on the
membership proofs, keyed with ``join_key``, which travel only inside sealed envelopes.
"""

import base64
import binascii
import hmac
import re

from e2echat.crypto import kdf
from e2echat.crypto.errors import InviteError, ProofError
from e2echat.crypto.identity import INTERACTIVE, SALT_SIZE, KdfLimits
from e2echat.crypto.primitives import KEY_SIZE, argon2id, random_bytes

ROOM_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
_RELAY = re.compile(r"wss?://[^\s#/]+(/[^\s#]*)?")


class RoomSecret:
    """The 32-byte secret of a secret room, with its derived values. Repr is redacted."""

    __slots__ = ("_join_key", "_relay_token", "_secret")

    def __init__(self, secret: bytes) -> None:
        if len(secret) != KEY_SIZE:
            raise InviteError("a room secret is 32 bytes")
        self._secret = secret
        self._relay_token = kdf.relay_token(secret)
        self._join_key = kdf.join_key(secret)

    @classmethod
    def generate(cls) -> "RoomSecret":
        """A random secret for a new invite-only room."""
        return cls(random_bytes(KEY_SIZE))

    @classmethod
    def from_password(
        cls, password: str, salt: bytes, *, room: str, limits: KdfLimits = INTERACTIVE
    ) -> "RoomSecret":
        """The secret of password room ``room``: Argon2id(password, password_salt(salt, room))."""
        if len(salt) != SALT_SIZE:
            raise InviteError("a room password salt is 16 bytes")
        if not password:
            raise InviteError("a room password must not be empty")
        if ROOM_NAME.fullmatch(room) is None:
            raise InviteError("a password room needs a valid room name")
        return cls(
            argon2id(
                password.encode(),
                kdf.password_salt(salt, room),
                opslimit=limits.opslimit,
                memlimit=limits.memlimit,
            )
        )

    @staticmethod
    def new_salt() -> bytes:
        """A fresh 16-byte salt for a new password room."""
        return random_bytes(SALT_SIZE)

    @property
    def secret(self) -> bytes:
        """The raw secret (for invites and persistence only)."""
        return self._secret

    @property
    def relay_token(self) -> bytes:
        """Sent in ``join_room``: lets the relay admit us, decrypts nothing."""
        return self._relay_token

    @property
    def verifier(self) -> bytes:
        """Sent in ``create_room``: the relay's check of relay tokens."""
        return kdf.verifier(self._relay_token)

    @property
    def join_key(self) -> bytes:
        """The key of membership proofs."""
        return self._join_key

    def __repr__(self) -> str:
        return "RoomSecret(<redacted>)"

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("a RoomSecret is not picklable")


PROOF_NONCE_SIZE = 16


def make_proof(
    join_key: bytes, room_id: bytes, epoch: int, prover: bytes, recipient: bytes
) -> tuple[bytes, bytes]:
    """``(proof, nonce)``: ``prover``'s fresh membership proof for ``room_id`` at
    ``epoch``, addressed to ``recipient``."""
    nonce = random_bytes(PROOF_NONCE_SIZE)
    return kdf.proof(join_key, room_id, epoch, prover, recipient, nonce), nonce


def check_proof(
    join_key: bytes,
    room_id: bytes,
    epoch: int,
    prover: bytes,
    recipient: bytes,
    proof: bytes | None,
    nonce: bytes | None,
) -> None:
    """Raise ``ProofError`` unless ``proof`` is right; constant-time comparison.

    Whether ``nonce`` is fresh (never accepted before from ``prover``) is the caller's
    check: it needs the replay cache.
    """
    if proof is None or nonce is None:
        raise ProofError("membership proof is missing")
    expected = kdf.proof(join_key, room_id, epoch, prover, recipient, nonce)
    if not hmac.compare_digest(expected, proof):
        raise ProofError("membership proof does not check")


class Invite:
    """A shareable invite ``<relay url>/<room>#<secret>`` (secret: base64url, no padding).

    The fragment after ``#`` is never sent by URL-handling software, and the relay never
    sees it: the secret stays between the people who pass the invite around.
    """

    __slots__ = ("relay", "room", "secret")

    def __init__(self, relay: str, room: str, secret: RoomSecret) -> None:
        relay = relay.rstrip("/")
        if not _RELAY.fullmatch(relay):
            raise InviteError("invite relay must be a ws:// or wss:// URL")
        if not ROOM_NAME.fullmatch(room):
            raise InviteError("invite room name is not a valid room name")
        self.relay = relay
        self.room = room
        self.secret = secret

    def __str__(self) -> str:
        encoded = base64.urlsafe_b64encode(self.secret.secret).rstrip(b"=").decode()
        return f"{self.relay}/{self.room}#{encoded}"

    def __repr__(self) -> str:
        return f"Invite(relay={self.relay!r}, room={self.room!r}, secret=<redacted>)"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Invite) and hmac.compare_digest(
            str(self).encode(), str(other).encode()
        )

    __hash__ = None  # type: ignore[assignment]

    @classmethod
    def parse(cls, text: str) -> "Invite":
        """Strictly parse an invite string; ``InviteError`` says what is wrong."""
        location, sep, encoded = text.strip().rpartition("#")
        if not sep:
            raise InviteError("invite has no secret (nothing after '#')")
        relay, slash, room = location.rpartition("/")
        if not slash or not relay:
            raise InviteError("invite must look like wss://host/room#secret")
        if len(encoded) != 43 or not re.fullmatch(r"[A-Za-z0-9_-]+", encoded):
            raise InviteError("invite secret is not 43 base64url characters")
        try:
            secret = base64.urlsafe_b64decode(encoded + "=")
        except (binascii.Error, ValueError):
            raise InviteError("invite secret is not valid base64url") from None
        if base64.urlsafe_b64encode(secret).rstrip(b"=").decode() != encoded:
            raise InviteError("invite secret is not canonical base64url")
        invite = cls(relay, room, RoomSecret(secret))
        if not hmac.compare_digest(str(invite).encode(), text.strip().encode()):
            # e.g. a doubled slash, which the constructor would silently normalise
            raise InviteError("invite is not in canonical form")
        return invite
