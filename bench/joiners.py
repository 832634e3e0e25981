"""The joiners of bench_joins.py: new identities that join a secret room over the wire,
as the library does, and the process that plays a share of them.

bench_joins.py starts ``--workers`` of these processes (``python bench/joiners.py``),
so that playing the joiners takes more than one core, as the joiners would on their
own machines. A worker is driven by one JSON object per line on its stdin and answers
``connect``, ``join`` and ``close`` with one line on its stdout:

- ``{"op": "connect", "url": ..., "numbers": [...], "rooms": [...], "invites": [...]}``:
  new joiners (named by their numbers), one per room (with its invite), connected and
  authenticated at once; answers their keys (hex).
- ``{"op": "join", "lanes": L}``: the joiners join, L at a time; each lane's next joiner
  starts once the last one is validated; answers the ``log_conflict`` answers it met.
- ``{"op": "validated", "key": ...}``: the room's owner validated this joiner (from
  bench_joins.py, which watches the owner's events); no answer.
- ``{"op": "close"}``: every joiner disconnects; answers once all are closed.
"""

import asyncio
import json
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

import msgspec
from nacl.public import PrivateKey
from nacl.signing import SigningKey
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

from e2echat.client.contention import LogContention
from e2echat.crypto.roomlog import Kind, encode_entry, entry_hash, parse_entry
from e2echat.crypto.roomsecret import Invite
from e2echat.protocol import (
    SUBPROTOCOL,
    Challenge,
    ClientFrame,
    Hello,
    JoinRoom,
    LogAppend,
    LogEntries,
    LogRequest,
    Ok,
    RoomReply,
    SignedPrekey,
    Welcome,
    decode_relay_frame,
    encode_frame,
    hello_transcript,
    prekey_transcript,
)
from e2echat.protocol.constants import MAX_LOG_PAGE, ErrorCode


class _Peek(msgspec.Struct):
    """What a joiner reads of every frame first."""

    type: str
    id: str | None = None
    code: str | None = None
    message: str | None = None


_PEEK = msgspec.json.Decoder(_Peek)


class _RoomId(msgspec.Struct):
    id: bytes


class _JoinReply(msgspec.Struct):
    """Of the join reply, the room's id."""

    room: _RoomId


LIGHT: dict[type[Any], type[Any]] = {RoomReply: _JoinReply}
T = TypeVar("T")


class RefusedError(RuntimeError):
    """The relay's ``error`` answer to a joiner's request."""

    def __init__(self, code: str | None, message: str) -> None:
        super().__init__(message)
        self.code = code


class Joiner:
    """One new identity that joins a secret room over the wire, as the library does."""

    def __init__(self, index: int) -> None:
        self.name = f"j{index:05d}"
        self.signing = SigningKey.generate()
        self.key = bytes(self.signing.verify_key)
        self.conn: ClientConnection | None = None
        self.frames: asyncio.Queue[str | bytes] = asyncio.Queue()
        self.reader: asyncio.Task[None] | None = None

    async def _read(self, conn: ClientConnection) -> None:
        """Read every frame as it comes, as a client does (a connection that stops reading
        holds the relay's pushes, and then its close, in the socket)."""
        async for raw in conn:
            self.frames.put_nowait(raw)

    async def recv(self, kind: type[T], request: str | None) -> T:
        """The next ``kind`` frame (answering ``request`` if given); others are skipped.

        Each frame is read for its type and id first, and only the one awaited is decoded,
        to the fields the joiner uses (``LIGHT``): the other members' pushes and the join
        reply's member list are what a real client reads on its own machine, once; here
        they would make the load generator, which plays every joiner on two cores, O(n)
        per join."""
        tag = kind.__struct_config__.tag  # type: ignore[attr-defined]
        while True:
            raw = await self.frames.get()
            peek = _PEEK.decode(raw)
            if peek.type == "error" and (request is None or peek.id == request):
                raise RefusedError(
                    peek.code, f"relay refused {request}: {peek.code} {peek.message}"
                )
            if peek.type == tag and (request is None or peek.id == request):
                decoded = LIGHT.get(kind)
                if decoded is None:
                    return cast(T, decode_relay_frame(raw, max_frame=1 << 26))
                return cast(T, msgspec.json.decode(raw, type=decoded))

    async def request(self, frame: ClientFrame, kind: type[T]) -> T:
        assert self.conn is not None
        await self.conn.send(encode_frame(frame), text=True)
        return await self.recv(kind, frame.id)  # type: ignore[attr-defined]

    async def connect(self, url: str) -> None:
        self.conn = await connect(
            url, subprotocols=[Subprotocol(SUBPROTOCOL)], compression=None, max_size=None
        )
        self.reader = asyncio.create_task(self._read(self.conn))
        challenge = await self.recv(Challenge, None)
        assert isinstance(challenge, Challenge)
        prekey_public = bytes(PrivateKey.generate().public_key)
        prekey_sig = self.signing.sign(prekey_transcript(1, prekey_public)).signature
        transcript = hello_transcript(
            challenge.relay, challenge.nonce, self.key, self.name, 1, prekey_public, prekey_sig
        )
        hello = Hello(
            key=self.key,
            name=self.name,
            prekey=SignedPrekey(id=1, key=prekey_public, sig=prekey_sig),
            sig=self.signing.sign(transcript).signature,
        )
        assert self.conn is not None
        await self.conn.send(encode_frame(hello), text=True)
        await self.recv(Welcome, None)

    async def join(self, room: str, invite: Invite) -> int:
        """``join_room``, the whole log, then our tagged ``join`` entry at its head; the
        ``log_conflict`` answers met on the way (another joiner took the position)."""
        secret = invite.secret
        join = JoinRoom(name=room, token=secret.relay_token, id="j")
        reply = cast(_JoinReply, await self.request(join, RoomReply))
        room_id = reply.room.id
        log: list[bytes] = []
        await self._fetch_log(room_id, log)
        contention, conflicts = LogContention(), 0
        while True:
            head = parse_entry(log[-1])
            entry = encode_entry(
                lambda data: self.signing.sign(data).signature,
                join_key=secret.join_key,
                kind=Kind.JOIN,
                room_id=room_id,
                seq=len(log),
                prev=entry_hash(log[-1]),
                author=self.key,
                created=int(time.time() * 1000),
                subject=self.key,
                epoch=head.epoch,
            )
            try:
                await self.request(LogAppend(room=room_id, entry=entry, id="a"), Ok)
                return conflicts
            except RefusedError as exc:
                if exc.code != ErrorCode.LOG_CONFLICT:
                    raise
            conflicts += 1
            # Another joiner took the position: wait as the library does, fetch, sign again.
            await asyncio.sleep(contention.next_delay())
            await self._fetch_log(room_id, log)

    async def _fetch_log(self, room_id: bytes, log: list[bytes]) -> None:
        """Extend ``log`` with every entry the relay holds beyond it, page by page."""
        while True:
            page = await self.request(LogRequest(room=room_id, after=len(log), id="l"), LogEntries)
            log += page.entries
            if len(page.entries) < MAX_LOG_PAGE:
                return

    async def close(self) -> None:
        if self.conn is not None:
            await self.conn.close()
        if self.reader is not None:
            await self.reader


@dataclass
class Worker:
    """The joiners of one worker process, and which of them the owner has validated."""

    joiners: list[Joiner] = field(default_factory=list)
    rooms: list[tuple[str, Invite]] = field(default_factory=list)
    validated: defaultdict[bytes, asyncio.Event] = field(
        default_factory=lambda: defaultdict(asyncio.Event)
    )

    async def connect(
        self, url: str, numbers: list[int], rooms: list[str], invites: list[str]
    ) -> Any:
        self.joiners = [Joiner(number) for number in numbers]
        self.rooms = [
            (room, Invite.parse(invite)) for room, invite in zip(rooms, invites, strict=True)
        ]
        self.validated.clear()
        await asyncio.gather(*(joiner.connect(url) for joiner in self.joiners))
        return [joiner.key.hex() for joiner in self.joiners]

    async def join(self, lanes: int) -> Any:
        work = list(zip(self.joiners, self.rooms, strict=True))

        async def lane(index: int) -> int:
            conflicts = 0
            for joiner, (room, invite) in work[index::lanes]:
                conflicts += await joiner.join(room, invite)
                async with asyncio.timeout(60):
                    await self.validated[joiner.key].wait()
            return conflicts

        return sum(await asyncio.gather(*(lane(i) for i in range(lanes))))

    async def close(self) -> Any:
        await asyncio.gather(*(joiner.close() for joiner in self.joiners))
        return len(self.joiners)


class WorkerProcess:
    """bench_joins.py's handle on one worker: its commands and their answers."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.pid = process.pid

    @classmethod
    async def start(cls) -> "WorkerProcess":
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            __file__,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        return cls(process)

    def tell(self, op: str, **arguments: Any) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps({"op": op, **arguments}).encode() + b"\n")

    async def call(self, op: str, **arguments: Any) -> Any:
        """Send a command and wait for its answer (one at a time per worker)."""
        assert self.process.stdout is not None
        self.tell(op, **arguments)
        line = await self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"joiner worker {self.pid} exited ({await self.process.wait()})")
        answer = json.loads(line)
        if "failed" in answer:
            raise RuntimeError(f"joiner worker {self.pid}: {op} failed: {answer['failed']}")
        return answer["answer"]

    async def stop(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        await self.process.wait()


async def serve() -> None:
    """Answer the commands on stdin (see the module's docstring) until it closes."""
    loop = asyncio.get_running_loop()
    commands = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(commands), sys.stdin)
    worker = Worker()
    running: set[asyncio.Task[None]] = set()

    async def answer(reply: Any) -> None:
        try:
            line = {"answer": await reply}
        except Exception as exc:  # the bench stops with it, not waits for an answer
            line = {"failed": f"{type(exc).__name__}: {exc}"}
        sys.stdout.write(json.dumps(line) + "\n")
        sys.stdout.flush()

    while line := await commands.readline():
        command = json.loads(line)
        op = command.pop("op")
        if op == "validated":
            worker.validated[bytes.fromhex(command["key"])].set()
            continue
        handler = {"connect": worker.connect, "join": worker.join, "close": worker.close}[op]
        task = asyncio.create_task(answer(handler(**command)))  # "validated" keeps coming
        running.add(task)
        task.add_done_callback(running.discard)
    await asyncio.gather(*running)


if __name__ == "__main__":
    asyncio.run(serve())
