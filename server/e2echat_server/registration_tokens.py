"""Registration tokens an operator makes (``admin token``): single- or multi-use, may expire.

With ``registration = "token"`` a key the relay does not know gets in only with a valid
token in its ``hello``, which spends one use. Only each token's BLAKE2b digest is kept
(in memory and in ``<data-dir>/registration-tokens.json``), so the file never holds a
usable token; a token is shown once, when it is made. A token is named by the first 12
hex digits of its digest (``id``). Pure except for `load` and `save`.
"""

import json
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Final

from nacl.encoding import RawEncoder
from nacl.hash import blake2b

TOKENS_FILE: Final = "registration-tokens.json"
ID_CHARS: Final = 12
_PERSON: Final = b"e2echat-register"


def digest(token: str) -> str:
    return blake2b(token.encode(), digest_size=32, person=_PERSON, encoder=RawEncoder).hex()


@dataclass(slots=True)
class TokenRules:
    """One token's rules: ``uses`` left (None: unlimited), ``expires`` (Unix ms, or None)."""

    uses: int | None
    expires: int | None
    created: int

    def valid(self, now: int) -> bool:
        return (self.uses is None or self.uses > 0) and (self.expires is None or now < self.expires)

    def dumps(self) -> str:
        """``uses|expires|created``, empty for None (as a shared store keeps it)."""
        return "|".join(
            "" if v is None else str(v) for v in (self.uses, self.expires, self.created)
        )

    @classmethod
    def loads(cls, text: str) -> "TokenRules":
        uses, expires, created = text.split("|")
        return cls(int(uses) if uses else None, int(expires) if expires else None, int(created))


def new_token() -> str:
    """A new random token: 192 bits, URL-safe."""
    return secrets.token_urlsafe(24)


class RegistrationTokens:
    """Every registration token's rules, by digest."""

    def __init__(self, by_digest: dict[str, TokenRules] | None = None) -> None:
        self.by_digest = by_digest or {}

    def issue(self, uses: int | None, expires: int | None, now: int) -> str:
        """A new random token (shown once); ``uses`` None for unlimited."""
        token = new_token()
        self.by_digest[digest(token)] = TokenRules(uses, expires, now)
        return token

    def valid(self, token: str, now: int) -> bool:
        rules = self.by_digest.get(digest(token))
        return rules is not None and rules.valid(now)

    def redeem(self, token: str, now: int) -> bool:
        """Spend one use of ``token`` if it is valid; False (changing nothing) if not."""
        rules = self.by_digest.get(digest(token))
        if rules is None or not rules.valid(now):
            return False
        if rules.uses is not None:
            rules.uses -= 1
        return True

    def match(self, prefix: str) -> str | None:
        """The digest of the one token whose id starts with ``prefix`` (4+ hex digits), or
        None if not exactly one does."""
        found = [d for d in self.by_digest if d.startswith(prefix.lower())]
        return found[0] if len(found) == 1 and len(prefix) >= 4 else None

    def revoke(self, prefix: str) -> str | None:
        """Drop the token `match` finds; its digest, or None."""
        found = self.match(prefix)
        if found is not None:
            del self.by_digest[found]
        return found

    def listed(self, now: int) -> list[dict[str, object]]:
        return [
            {"id": d[:ID_CHARS], **asdict(rules), "valid": rules.valid(now)}
            for d, rules in sorted(self.by_digest.items(), key=lambda item: item[1].created)
        ]

    def dumps(self) -> str:
        return (
            json.dumps({d: asdict(rules) for d, rules in self.by_digest.items()}, indent=1) + "\n"
        )

    @classmethod
    def loads(cls, text: str) -> "RegistrationTokens":
        data = json.loads(text)
        return cls({d: TokenRules(**fields) for d, fields in data.items()})


def load(path: Path | None) -> RegistrationTokens:
    """The tokens kept at ``path`` (none if there is no file)."""
    if path is None or not path.exists():
        return RegistrationTokens()
    return RegistrationTokens.loads(path.read_text(encoding="utf-8"))


def save(path: Path, tokens: RegistrationTokens) -> None:
    """Replace the file at ``path`` atomically, readable by the relay's user only."""
    temporary = path.with_name(path.name + ".new")
    temporary.write_text(tokens.dumps(), encoding="utf-8")
    temporary.chmod(0o600)
    temporary.replace(path)
