"""The operator's decisions about keys: bans and registration tokens, where they are kept.

One relay keeps them beside its database (``banned-keys``, ``registration-tokens.json``)
or, in memory, nowhere. Relays sharing a Redis keep them in it, so that a ban made on one
node holds on every node and a token is spent once across all of them::

    <prefix>:{operator}:banned   set    banned keys
    <prefix>:{operator}:tokens   hash   token digest -> "uses|expires|created"

A token is spent by one script (check and decrement in one step), so two nodes admitting
two keys with the last use of a token at the same moment admit one. A ban is published
on the relays' bus (`bus.KeyBanned`): every node closes the key's connection and refuses
it from then on; a node that starts reads the set.
"""

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final, Protocol, TypeVar

from e2echat_server import bus, registration_tokens
from e2echat_server.access import BANNED_FILE, read_keys, write_keys
from e2echat_server.registration_tokens import (
    TOKENS_FILE,
    RegistrationTokens,
    TokenRules,
    digest,
    new_token,
)
from e2echat_server.store import RedisStore

_T = TypeVar("_T")

# KEYS: tokens; ARGV: digest, now (ms). Spends one use of a valid token: 1, else 0.
_REDEEM: Final = """
local rules = redis.call('HGET', KEYS[1], ARGV[1])
if not rules then return 0 end
local uses, expires, created = string.match(rules, '^(%d*)|(%d*)|(%d+)$')
if not created then return 0 end
if expires ~= '' and tonumber(ARGV[2]) >= tonumber(expires) then return 0 end
if uses == '' then return 1 end
if tonumber(uses) <= 0 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], (tonumber(uses) - 1) .. '|' .. expires .. '|' .. created)
return 1
"""


class OperatorState(Protocol):
    """Banned keys and registration tokens, as every relay sharing this state sees them."""

    async def banned(self) -> frozenset[bytes]:
        """Every banned key (read at start)."""
        ...

    async def set_banned(self, key: bytes, banned: bool) -> bool:
        """Ban or unban ``key`` (other relays are told); False if it already was so."""
        ...

    async def issue_token(self, uses: int | None, expires: int | None, now: int) -> str:
        """A new token, shown once (``uses`` None: unlimited; ``expires`` Unix ms)."""
        ...

    async def redeem_token(self, token: str, now: int) -> bool:
        """Spend one use of ``token`` if it is valid now; False, changing nothing, if not."""
        ...

    async def revoke_token(self, prefix: str) -> str | None:
        """Drop the one token whose digest starts with ``prefix``; its digest, or None."""
        ...

    async def tokens(self) -> RegistrationTokens:
        """Every token's rules as they are now."""
        ...


class LocalOperatorState:
    """One relay's: in memory, and in files under ``state_dir`` if it has one."""

    def __init__(self, state_dir: Path | None) -> None:
        self._dir = state_dir
        self._banned: frozenset[bytes] = frozenset()
        self._tokens = RegistrationTokens()

    async def load(self) -> None:
        """Read the files kept by an earlier run (none: nothing banned, no tokens)."""
        if self._dir is None:
            return
        ban_file = self._dir / BANNED_FILE
        if ban_file.exists():
            self._banned = await asyncio.to_thread(read_keys, ban_file)
        self._tokens = await asyncio.to_thread(registration_tokens.load, self._dir / TOKENS_FILE)

    async def banned(self) -> frozenset[bytes]:
        return self._banned

    async def set_banned(self, key: bytes, banned: bool) -> bool:
        keys = self._banned | {key} if banned else self._banned - {key}
        if keys == self._banned:
            return False
        if self._dir is not None:
            await asyncio.to_thread(write_keys, self._dir / BANNED_FILE, keys)
        self._banned = keys
        return True

    async def issue_token(self, uses: int | None, expires: int | None, now: int) -> str:
        return await self._change(lambda tokens: tokens.issue(uses, expires, now))

    async def redeem_token(self, token: str, now: int) -> bool:
        if not self._tokens.valid(token, now):
            return False
        return await self._change(lambda tokens: tokens.redeem(token, now))

    async def revoke_token(self, prefix: str) -> str | None:
        if self._tokens.match(prefix) is None:
            return None
        return await self._change(lambda tokens: tokens.revoke(prefix))

    async def tokens(self) -> RegistrationTokens:
        return self._tokens

    async def _change(self, change: Callable[[RegistrationTokens], _T]) -> _T:
        """Apply ``change`` to a copy, write the copy, and only then keep it: a token file
        that cannot be written leaves the tokens as they were (and the error raised)."""
        changed = RegistrationTokens.loads(self._tokens.dumps())
        answer = change(changed)
        if self._dir is not None:
            path = self._dir / TOKENS_FILE
            await asyncio.to_thread(registration_tokens.save, path, changed)
        self._tokens = changed
        return answer


class RedisOperatorState:
    """Shared by every relay of one Redis (see the module docstring)."""

    def __init__(self, store: RedisStore) -> None:
        self._client = store.client
        self._node = store.node
        self._bus = store.keys.bus
        prefix = store.keys.prefix
        self._banned_key = f"{prefix}:{{operator}}:banned"
        self._tokens_key = f"{prefix}:{{operator}}:tokens"

    async def banned(self) -> frozenset[bytes]:
        return frozenset(await self._command("SMEMBERS", self._banned_key))

    async def set_banned(self, key: bytes, banned: bool) -> bool:
        change = "SADD" if banned else "SREM"
        notice = bus.encode(self._node, bus.KeyBanned(key, banned))
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.execute_command(change, self._banned_key, key)
            pipe.execute_command("PUBLISH", self._bus, notice)
            changed, _ = await pipe.execute()
        return bool(changed)

    async def issue_token(self, uses: int | None, expires: int | None, now: int) -> str:
        token = new_token()
        rules = TokenRules(uses, expires, now)
        await self._command("HSET", self._tokens_key, digest(token), rules.dumps())
        return token

    async def redeem_token(self, token: str, now: int) -> bool:
        return bool(await self._command("EVAL", _REDEEM, 1, self._tokens_key, digest(token), now))

    async def revoke_token(self, prefix: str) -> str | None:
        found = (await self.tokens()).match(prefix)
        if found is None or not await self._command("HDEL", self._tokens_key, found):
            return None
        return found

    async def tokens(self) -> RegistrationTokens:
        stored = await self._command("HGETALL", self._tokens_key)
        return RegistrationTokens(
            {d.decode(): TokenRules.loads(r.decode()) for d, r in stored.items()}
        )

    async def _command(self, *args: object) -> Any:
        return await self._client.execute_command(*args)  # type: ignore[no-untyped-call]
