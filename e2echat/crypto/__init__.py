"""The cryptography core of e2echat: pure code, no network, no event loop, no database.

Identities and safety numbers, signed prekeys, direct envelopes, sender chains, room
secrets and invites, and ``CryptoSession``, the sans-I/O room-session layer the client
drives. The normative spec and threat model are in docs/crypto.md.
"""

from e2echat.crypto.errors import (
    ChainError,
    CryptoError,
    DecryptionError,
    EnvelopeError,
    InviteError,
    KeyFileError,
    MalformedError,
    PassphraseError,
    PayloadError,
    PrekeyError,
    ProofError,
    ReplayError,
    SignatureError,
)
from e2echat.crypto.events import (
    Decrypted,
    DirectRejected,
    Event,
    KeyChanged,
    MemberUnverified,
    MemberValidated,
    MessageDeferred,
    MessageRejected,
    Outcome,
    Outgoing,
    OutgoingDirect,
    ReplayRejected,
    Undecryptable,
)
from e2echat.crypto.identity import (
    INTERACTIVE,
    MODERATE,
    Identity,
    KdfLimits,
    UnencryptedKeyWarning,
    read_public_key,
)
from e2echat.crypto.payload import (
    Delete,
    Edit,
    Reaction,
    Read,
    Received,
    RoomPayload,
    Text,
    Typing,
    Unsupported,
    check_emoji,
    decode_payload,
    encode_payload,
    message_id,
)
from e2echat.crypto.policy import DEFAULT_POLICY, Policy
from e2echat.crypto.prekeys import SignedPrekey
from e2echat.crypto.records import TrustRecord
from e2echat.crypto.roomsecret import Invite, RoomSecret
from e2echat.crypto.safety import fingerprint, format_safety_number, safety_number
from e2echat.crypto.session import CryptoSession, Member
from e2echat.crypto.store import CryptoStore, MemoryStore, Write

__all__ = [
    "DEFAULT_POLICY",
    "INTERACTIVE",
    "MODERATE",
    "ChainError",
    "CryptoError",
    "CryptoSession",
    "CryptoStore",
    "Decrypted",
    "DecryptionError",
    "Delete",
    "DirectRejected",
    "Edit",
    "EnvelopeError",
    "Event",
    "Identity",
    "Invite",
    "InviteError",
    "KdfLimits",
    "KeyChanged",
    "KeyFileError",
    "MalformedError",
    "Member",
    "MemberUnverified",
    "MemberValidated",
    "MemoryStore",
    "MessageDeferred",
    "MessageRejected",
    "Outcome",
    "Outgoing",
    "OutgoingDirect",
    "PassphraseError",
    "PayloadError",
    "Policy",
    "PrekeyError",
    "ProofError",
    "Reaction",
    "Read",
    "Received",
    "ReplayError",
    "ReplayRejected",
    "RoomPayload",
    "RoomSecret",
    "SignatureError",
    "SignedPrekey",
    "Text",
    "TrustRecord",
    "Typing",
    "Undecryptable",
    "UnencryptedKeyWarning",
    "Unsupported",
    "Write",
    "check_emoji",
    "decode_payload",
    "encode_payload",
    "fingerprint",
    "format_safety_number",
    "message_id",
    "read_public_key",
    "safety_number",
]
