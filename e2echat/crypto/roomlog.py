"""The membership log as members validate it: the protocol's rules plus the join tags.

The layout and authority rules are in ``e2echat.protocol.roomlog`` (the relay runs them
too); a member additionally checks, with the room secret of the current epoch, that each
``join`` or ``admit`` was tagged by someone who knew it. Spec: docs/crypto.md section 13.
"""

import hmac
from collections.abc import Callable

import msgspec

from e2echat.crypto import kdf
from e2echat.crypto.revised import revised
from e2echat.protocol.roomlog import (
    EMPTY_HEAD,
    NO_HASH,
    NO_VERIFIER,
    ROTATING,
    TAGGED,
    AuthorityError,
    Kind,
    LogEntry,
    LogError,
    LogForkError,
    LogHead,
    LogState,
    Role,
    SignFn,
    compare_head,
    entry_hash,
    parse_entry,
    require_rotator,
)
from e2echat.protocol.roomlog import apply_entry as _apply_rules
from e2echat.protocol.roomlog import encode_entry as _encode

JoinKeyFor = Callable[[LogState], bytes | None]
"""The join key of the state's epoch if the validator knows it (None: not checkable)."""

__all__ = [
    "EMPTY_HEAD",
    "NO_HASH",
    "NO_VERIFIER",
    "ROTATING",
    "TAGGED",
    "AuthorityError",
    "JoinKeyFor",
    "Kind",
    "LogEntry",
    "LogError",
    "LogForkError",
    "LogHead",
    "LogState",
    "Role",
    "apply_entry",
    "compare_head",
    "encode_entry",
    "entry_hash",
    "parse_entry",
    "require_rotator",
    "validate_log",
]


def apply_entry(
    state: LogState | None, wire: bytes, join_key_for: JoinKeyFor = lambda _state: None
) -> tuple[LogState, LogEntry]:
    """``protocol.roomlog.apply_entry`` with join tags checked whenever ``join_key_for``
    knows the join key of the epoch (members of the current epoch always do); the new
    state's roles remember the key they changed (``Revised``), so storing it writes one."""

    def check_tag(current: LogState, entry: LogEntry) -> None:
        join_key = join_key_for(current)
        if join_key is None:
            return
        if not hmac.compare_digest(kdf.join_tag(join_key, entry.before_tag), entry.tag):
            raise LogError("join tag does not prove the room secret of this epoch")

    after, entry = _apply_rules(state, wire, check_tag)
    # an entry changes the role of its subject (of its author: a create) and no other's
    touched = {entry.author, entry.subject}
    members = revised(
        state.members if state is not None else {},
        {key: after.members[key] for key in touched if key in after.members},
        [key for key in touched if key not in after.members],
    )
    return msgspec.structs.replace(after, members=members), entry


def validate_log(wires: list[bytes], join_key_for: JoinKeyFor = lambda _state: None) -> LogState:
    """Validate a whole log from its create entry; raises on the first bad entry."""
    state: LogState | None = None
    for wire in wires:
        state, _ = apply_entry(state, wire, join_key_for)
    if state is None:
        raise LogError("an empty log")
    return state


def encode_entry(sign: SignFn, *, join_key: bytes | None = None, **fields: object) -> bytes:
    """The signed bytes of an entry; ``join_key`` tags a secret-room join or admit."""
    tag_of = None if join_key is None else (lambda before: kdf.join_tag(join_key, before))
    return _encode(sign, tag_of=tag_of, **fields)  # type: ignore[arg-type]
