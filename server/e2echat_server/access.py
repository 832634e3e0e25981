"""Who may use the relay: the registration policy, who may create rooms, banned keys.

Pure decisions over sets of keys. ``registration``: ``open`` (any key, within the
per-address budget of new identities), ``token`` (as ``closed``, and new keys that
bring a valid registration token: see registration_tokens.py), ``closed`` (keys the
relay already knows, plus the allowlist) or ``allowlist`` (listed keys only, known or
not). ``room_creation``: ``anyone`` or ``allowlist``. A banned key is refused whatever
the policy. Keys are written as ``e2echat fingerprint`` prints them (hex, spaces
allowed) or in base64.
"""

import base64
import binascii
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Final

REGISTRATION_MODES: Final = ("open", "token", "closed", "allowlist")
ROOM_CREATION_MODES: Final = ("anyone", "allowlist")
KEY_SIZE: Final = 32
BANNED_FILE: Final = "banned-keys"
_HEX = re.compile(r"[0-9a-fA-F]{64}")


class KeyListError(ValueError):
    """A key file that cannot be read, or a line of it that is not a key; the message
    names the file (and the line)."""


def parse_key(text: str) -> bytes | None:
    """A 32-byte public key from hex (spaces allowed) or base64, or None."""
    compact = "".join(text.split())
    if _HEX.fullmatch(compact):
        return bytes.fromhex(compact)
    standard = compact.replace("-", "+").replace("_", "/").rstrip("=")
    try:
        raw = base64.b64decode(standard + "=" * (-len(standard) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if len(raw) == KEY_SIZE else None


def read_keys(path: Path | None) -> frozenset[bytes]:
    """The keys in a file, one a line; blank lines and ``#`` comments are skipped."""
    if path is None:
        return frozenset()
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise KeyListError(f"Cannot read the key file {path}: {exc.strerror}.") from None
    except UnicodeDecodeError:
        raise KeyListError(f"{path} is not a text file of keys (not UTF-8).") from None
    keys = set()
    for number, line in enumerate(lines, 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        key = parse_key(text)
        if key is None:
            raise KeyListError(f"{path}:{number} is not a public key (hex or base64).")
        keys.add(key)
    return frozenset(keys)


def write_keys(path: Path, keys: frozenset[bytes]) -> None:
    """Replace the key file at ``path`` atomically (hex, one a line, sorted)."""
    temporary = path.with_name(path.name + ".new")
    temporary.write_text("".join(f"{key.hex()}\n" for key in sorted(keys)), encoding="utf-8")
    temporary.replace(path)


@dataclass(frozen=True, slots=True)
class AccessPolicy:
    """The registration and room-creation rules with the keys they name."""

    registration: str = "open"
    room_creation: str = "anyone"
    allowed: frozenset[bytes] = frozenset()
    banned: frozenset[bytes] = frozenset()

    def refusal(self, key: bytes, known: bool) -> str | None:
        """Why ``key`` may not authenticate (``banned``, ``not_allowed``, ``closed``,
        ``token_needed``), or None if it may. ``known``: the relay already has it."""
        if key in self.banned:
            return "banned"
        if self.registration == "allowlist" and key not in self.allowed:
            return "not_allowed"
        if self.registration in ("closed", "token") and not known and key not in self.allowed:
            return "closed" if self.registration == "closed" else "token_needed"
        return None

    def may_create_room(self, key: bytes) -> bool:
        return self.room_creation == "anyone" or key in self.allowed
