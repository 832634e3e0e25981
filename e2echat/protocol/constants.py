"""Protocol v1 constants: the subprotocol name, default limits, error and close codes."""

from enum import IntEnum, StrEnum

PROTOCOL_VERSION = 1
SUBPROTOCOL = "e2echat.v1"

# Default limits (a relay may configure lower ones and announces its own in `challenge`).
MAX_FRAME = 64 * 1024
MAX_BODY = 47 * 1024  # base64 of 47 KiB plus a frame's other fields fits in MAX_FRAME
MAX_MEMBERS = 1000
MAX_ROOMS_PER_USER = 200
HISTORY_COUNT = 10_000
HISTORY_AGE_S = 30 * 86_400
MAILBOX_MAX = 10_000
RATE = 30
BURST = 60
HANDSHAKE_TIMEOUT_S = 10
MAX_CONN_PER_IP = 256
MAX_SIGNAL_BODY = 1024  # an ephemeral body (typing): one pad block of ciphertext fits
SIGNAL_RATE = 2  # ephemeral frames per second per connection, at most ...
SIGNAL_BURST = 10  # ... after a burst of this many; more are dropped
MAX_DIRECTS = 128  # sealed envelopes one `directs` frame may carry
SHARE_RATE = 500  # envelopes per second per connection in `directs` frames, sustained ...
SHARE_BURST = 1000  # ... after a burst of this many (a 1,000-member room's shares at once)

# Hard caps of the wire format itself: no relay may configure past these.
# Relay frames may exceed MAX_FRAME: a member list of a 1,000-member room is ~330 KB.
MAX_RELAY_FRAME = 16 * 1024 * 1024
MAX_MEMBERS_CAP = 100_000
MAX_NAME_CHARS = 32
MAX_ROOM_NAME_CHARS = 32
MAX_DESCRIPTION_CHARS = 200
MAX_STATUS_TEXT_CHARS = 64
MAX_REQUEST_ID_CHARS = 64
MAX_ERROR_MESSAGE_CHARS = 500
MAX_RELAY_NAME_CHARS = 64
MAX_SYNC_LIMIT = 1000
MAX_LIST_ITEMS = 10_000
MAX_SEQ = 2**53 - 1  # the largest integer every JSON implementation keeps exactly
MAX_PREKEY_ID = 2**32 - 1

KEY_BYTES = 32
SIG_BYTES = 64
NONCE_BYTES = 32
ROOM_ID_BYTES = 16
SALT_BYTES = 16
TOKEN_BYTES = 32
BLOB_ID_BYTES = 16
MAX_BLOB_SIZE = 2**40  # the file format's own cap (docs/crypto.md section 12)
BLOB_PATH = "/blob"  # the blob endpoint, on the relay's own port
# A 1 GiB file with its 272 KiB of chunk tags fits; relays configure their own.
MAX_BLOB_SIZE_DEFAULT = 1024**3 + 1024**2
BLOB_QUOTA_DEFAULT = 4 * 1024**3
BLOB_TICKET_S = 300


class ErrorCode(StrEnum):
    """The `code` of an `error` frame."""

    BAD_FRAME = "bad_frame"
    UNSUPPORTED = "unsupported"
    UNAUTHENTICATED = "unauthenticated"
    AUTH_FAILED = "auth_failed"
    NAME_TAKEN = "name_taken"
    NO_SUCH_ROOM = "no_such_room"
    ROOM_FULL = "room_full"
    FORBIDDEN = "forbidden"
    NOT_MEMBER = "not_member"
    TOO_LARGE = "too_large"
    RATE_LIMITED = "rate_limited"
    UNAVAILABLE = "unavailable"
    INTERNAL = "internal"
    NO_SUCH_BLOB = "no_such_blob"
    QUOTA_EXCEEDED = "quota_exceeded"
    LOG_CONFLICT = "log_conflict"
    """A membership-log entry that does not follow the stored head (fetch and re-sign)."""


class CloseCode(IntEnum):
    """WebSocket close codes the relay uses."""

    NORMAL = 1000
    GOING_AWAY = 1001
    INVALID_DATA = 1007  # a text frame that is not UTF-8 (the WebSocket layer's check)
    POLICY = 1008
    TOO_LARGE = 1009
    INTERNAL_ERROR = 1011  # a relay bug outside any request: that connection alone
    TRY_AGAIN_LATER = 1013  # the relay cannot serve now (its store failed, Redis lost)
    AUTH_FAILED = 4401
    HANDSHAKE_TIMEOUT = 4408
    REPLACED = 4409
    RATE_LIMIT = 4429


BANNED_FROM_ROOM = "You are banned from this room."
"""The ``message`` of the ``forbidden`` that answers a banned key's ``join_room``
(docs/protocol.md section 5): the one ``forbidden`` of a join a client tells apart."""

MAX_LOG_ENTRY = 795
"""Bytes of one membership-log entry: 267 fixed, a 16-byte salt, a 512-byte description."""
MAX_LOG_PAGE = 256
"""Entries in one `log` frame."""
