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


class RegistrationTokens:
    """Every registration token's rules, by digest."""

    def __init__(self, by_digest: dict[str, TokenRules] | None = None) -> None:
        self.by_digest = by_digest or {}

    def issue(self, uses: int | None, expires: int | None, now: int) -> str:
        """A new random token (shown once); ``uses`` None for unlimited."""
        token = secrets.token_urlsafe(24)
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

    def revoke(self, prefix: str) -> str | None:
        """Drop the one token whose id starts with ``prefix`` (4+ hex digits); its digest,
        or None if not exactly one matches."""
        found = [d for d in self.by_digest if d.startswith(prefix.lower())]
        if len(found) != 1 or len(prefix) < 4:
            return None
        del self.by_digest[found[0]]
        return found[0]

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
