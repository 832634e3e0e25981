"""The admin socket: a running relay answers its operator over a local Unix socket.

No network port: whoever may open the socket file (mode 0600, the relay's user) is the
operator. One request per connection, one JSON line each way:
``{"command": "users", "args": []}`` → ``{"ok": true, "result": ...}`` or
``{"ok": false, "error": "..."}``. Answers carry metadata only (keys as hex, names,
counts), never a body, a token verifier or a salt. `e2echat-server admin` is the client.
"""

import asyncio
import contextlib
import json
import os
import socket
import stat
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Final, TypeVar

from e2echat.protocol import CloseCode, ProtocolError, validate_display_text
from e2echat.protocol.constants import MAX_ERROR_MESSAGE_CHARS, ROOM_ID_BYTES
from e2echat_server.access import parse_key
from e2echat_server.clock import now_ms
from e2echat_server.directory import Room
from e2echat_server.logs import LOGGER, event, fingerprint
from e2echat_server.registration_tokens import ID_CHARS
from e2echat_server.relay import Relay
from e2echat_server.version import __version__

_T = TypeVar("_T")
SOCKET_NAME: Final = "admin.sock"
MAX_REQUEST: Final = 64 * 1024
KICKED_REASON: Final = "Closed by the relay's operator."
DELETED_REASON: Final = "The relay's operator deleted this room."
_PREFIX_MIN: Final = 8  # hex digits of a key prefix an operator may type


class AdminError(Exception):
    """A request the relay cannot do; the message is for the operator."""


def default_socket(data_dir: Path) -> Path:
    return data_dir / SOCKET_NAME


class AdminSocket:
    """Serves the admin commands of ``relay`` at ``path`` until closed."""

    def __init__(self, relay: Relay, path: Path) -> None:
        self._relay = relay
        self.path = path
        self._server: asyncio.Server | None = None
        self._started = asyncio.get_running_loop().time()
        self._commands: dict[str, Callable[[list[str]], Awaitable[Any]]] = {
            "stats": self.stats,
            "users": self.users,
            "rooms": self.rooms,
            "connections": self.connections,
            "kick": self.kick,
            "ban": self.ban,
            "unban": self.unban,
            "delete": self.delete,
            "token": self.token,
            "tokens": self.tokens,
            "revoke": self.revoke,
        }

    async def start(self) -> None:
        """Listen at ``path``, replacing a stale socket file, readable by this user only.
        Raises OSError if another relay answers there."""
        with contextlib.suppress(FileNotFoundError):
            if stat.S_ISSOCK(self.path.lstat().st_mode):
                if _answers(self.path):
                    raise OSError(f"the admin socket {self.path} is in use by another relay")
                self.path.unlink()  # left by a relay that did not stop cleanly
        old = os.umask(0o177)  # created 0600: never readable by others, not even briefly
        try:
            self._server = await asyncio.start_unix_server(
                self._serve, self.path, limit=MAX_REQUEST
            )
        finally:
            os.umask(old)
        self.path.chmod(0o600)
        event(LOGGER, "admin_listening", path=str(self.path))

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()

    async def __aenter__(self) -> "AdminSocket":
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            answer = await self.answer(await reader.readline())
            writer.write(json.dumps(answer).encode() + b"\n")
            await writer.drain()
        except (ConnectionError, ValueError):  # ValueError: a line over the limit
            pass
        finally:
            writer.close()

    async def answer(self, line: bytes) -> dict[str, Any]:
        """The reply to one request line."""
        try:
            request = json.loads(line)
            command, args = request["command"], request.get("args", [])
            if not isinstance(command, str) or not isinstance(args, list):
                raise TypeError
            if not all(isinstance(arg, str) for arg in args):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            return {"ok": False, "error": 'Send one JSON line: {"command": ..., "args": [...]}.'}
        handler = self._commands.get(command)
        if handler is None:
            known = ", ".join(sorted(self._commands))
            return {"ok": False, "error": f"Unknown command {command!r}; known: {known}."}
        try:
            result = await handler(args)
        except AdminError as exc:
            return {"ok": False, "error": str(exc)}
        event(LOGGER, "admin", command=command)
        return {"ok": True, "result": result}

    # Commands ----------------------------------------------------------------------

    async def stats(self, args: list[str]) -> dict[str, Any]:
        _arity(args, 0)
        relay, metrics = self._relay, self._relay.metrics
        return {
            "version": __version__,
            "uptime_s": round(asyncio.get_running_loop().time() - self._started, 3),
            "connections": metrics.connections,
            "authenticated": metrics.authenticated,
            "users": len(relay.directory.users),
            "rooms": len(relay.directory.rooms),
            "messages_in": metrics.messages_in,
            "directs_in": metrics.directs_in,
            "refusals": dict(sorted(metrics.refusals.counts.items())),
        }

    async def users(self, args: list[str]) -> list[dict[str, Any]]:
        _arity(args, 0)
        directory = self._relay.directory
        return [
            {
                "key": user.key.hex(),
                "name": user.name,
                "online": user.sessions > 0,
                "rooms": len(directory.rooms_of.get(user.key, ())),
                "mailbox": user.mailbox_count,
                "last_seen": user.last_seen,
            }
            for user in sorted(directory.users.values(), key=lambda u: (u.name, u.key))
        ]

    async def rooms(self, args: list[str]) -> list[dict[str, Any]]:
        _arity(args, 0)
        return [
            {
                "id": room.record.id.hex(),
                "name": room.record.name,
                "access": room.record.access_kind,
                "listed": room.record.listed,
                "members": len(room.members),
                "messages": room.seq,
                "created": room.record.created,
            }
            for room in sorted(self._relay.directory.rooms.values(), key=lambda r: r.record.name)
        ]

    async def connections(self, args: list[str]) -> list[dict[str, Any]]:
        _arity(args, 0)
        now, directory = asyncio.get_running_loop().time(), self._relay.directory
        return [
            {
                "key": session.key.hex(),
                "name": directory.users[session.key].name if session.key in directory.users else "",
                "peer": session.ip,
                "seconds": round(now - session.started, 3),
                "frames": session.frames_in,
            }
            for session in self._relay.sessions.connected()
        ]

    async def kick(self, args: list[str]) -> dict[str, Any]:
        key = self._key(args)
        session = self._relay.sessions.live(key)
        if session is not None:
            await session.conn.close(CloseCode.POLICY, KICKED_REASON)
        event(LOGGER, "kicked", key=fingerprint(key), connected=session is not None)
        return {"key": key.hex(), "kicked": session is not None}

    async def ban(self, args: list[str]) -> dict[str, Any]:
        key = self._key(args)
        return {"key": key.hex(), "changed": await _answer(self._relay.ban(key))}

    async def unban(self, args: list[str]) -> dict[str, Any]:
        key = self._key(args)
        return {"key": key.hex(), "changed": await _answer(self._relay.ban(key, banned=False))}

    def _stored(self, operation: str, work: Awaitable[_T]) -> Awaitable[_T]:
        """A call to the operator state, timed and failing as every store call does."""
        return _answer(self._relay.engine.call(operation, work))

    async def delete(self, args: list[str]) -> dict[str, Any]:
        """Delete a room for everyone: ``[ROOM, REASON]`` (ROOM: its name or hex id;
        REASON: text for its members, empty for the default)."""
        _arity(args, 2)
        room = await self._room(args[0])
        reason = args[1] or DELETED_REASON
        if len(reason) > MAX_ERROR_MESSAGE_CHARS:
            raise AdminError(f"The reason is over {MAX_ERROR_MESSAGE_CHARS} characters.")
        try:
            validate_display_text(reason, "reason")
        except ProtocolError as exc:
            raise AdminError(exc.message) from None
        members = await _answer(self._relay.delete_room(room.record.id, reason))
        return {"id": room.record.id.hex(), "name": room.record.name, "members": members}

    async def _room(self, text: str) -> Room:
        """The room an argument names: its name, or its id in hex."""
        directory = self._relay.directory
        for attempt in range(2):
            room_id = directory.by_name.get(text)
            if room_id is None and len(text) == 2 * ROOM_ID_BYTES:
                with contextlib.suppress(ValueError):
                    room_id = bytes.fromhex(text)
            room = directory.rooms.get(room_id) if room_id is not None else None
            if room is not None:
                return room
            if not attempt:  # made on another relay a moment ago? its notice may be due
                await self._relay.engine.broker.catch_up()
        raise AdminError(f"There is no room named {text!r} (or with that id).")

    async def token(self, args: list[str]) -> dict[str, Any]:
        """A new token: ``[USES, EXPIRES_IN_S]`` (0: unlimited uses, never expires)."""
        _arity(args, 2)
        try:
            uses, expires_in = int(args[0]), int(args[1])
        except ValueError:
            raise AdminError("USES and EXPIRES_IN are whole numbers.") from None
        if uses < 0 or expires_in < 0:
            raise AdminError("USES and EXPIRES_IN are 0 (no limit) or more.")
        now = now_ms()
        expires = now + expires_in * 1000 if expires_in else None
        operator = self._relay.operator
        token = await self._stored("token", operator.issue_token(uses or None, expires, now))
        event(LOGGER, "token_issued", uses=uses or "unlimited", expires=expires or "never")
        return {"token": token, "uses": uses or None, "expires": expires}

    async def tokens(self, args: list[str]) -> list[dict[str, object]]:
        _arity(args, 0)
        tokens = await self._stored("tokens", self._relay.operator.tokens())
        return tokens.listed(now_ms())

    async def revoke(self, args: list[str]) -> dict[str, Any]:
        _arity(args, 1)
        found = await self._stored("revoke", self._relay.operator.revoke_token(args[0]))
        if found is None:
            raise AdminError(f"No one token has an id starting with {args[0]!r}.")
        return {"id": found[:ID_CHARS], "revoked": True}

    def _key(self, args: list[str]) -> bytes:
        """The one key an argument names: a whole key, or a hex prefix of a known one."""
        _arity(args, 1)
        text = "".join(args[0].split()).lower()
        key = parse_key(text)
        if key is not None:
            return key
        if len(text) < _PREFIX_MIN or any(c not in "0123456789abcdef" for c in text):
            raise AdminError(
                f"Name a key: its fingerprint, base64, or at least {_PREFIX_MIN} hex digits."
            )
        candidates = set(self._relay.directory.users) | self._relay.banned
        found = [k for k in candidates if k.hex().startswith(text)]
        if not found:
            raise AdminError(f"No key the relay knows starts with {text}.")
        if len(found) > 1:
            raise AdminError(f"{len(found)} known keys start with {text}; give more digits.")
        return found[0]


async def _answer(work: Awaitable[_T]) -> _T:
    """``work``'s result; a refusal or a store that failed (an unreachable Redis, say)
    becomes the operator's error message instead of a dropped admin connection."""
    try:
        return await work
    except ProtocolError as exc:
        raise AdminError(exc.message) from None


def _answers(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True


def _arity(args: list[str], count: int) -> None:
    if len(args) != count:
        raise AdminError(f"This command takes {count} argument(s), not {len(args)}.")


def request(path: Path, command: str, args: list[str], timeout_s: float = 10.0) -> Any:
    """Send one command to the relay at ``path`` and return its result (AdminError if
    refused, OSError if no relay listens there)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(timeout_s)
        conn.connect(str(path))
        conn.sendall(json.dumps({"command": command, "args": args}).encode() + b"\n")
        with conn.makefile("rb") as answers:
            line = answers.readline(16 * 1024 * 1024)
    if not line:
        raise AdminError("The relay closed the admin connection without an answer.")
    answer = json.loads(line)
    if not answer.get("ok"):
        raise AdminError(str(answer.get("error")))
    return answer["result"]
