"""Benchmark of a new chain's key shares: the first message into a 1,000-member room.

Run:  uv run python bench/bench_shares.py [--members 1000] [--workers 2]

A relay subprocess with its default limits and its default durable store (SQLite in a
fresh data directory; only the per-address limits raised, new identities and
connections, as every member connects from 127.0.0.1). Two senders are library ``Client``s in this
process: ``batched`` talks to the relay directly, so its shares go in ``directs``
frames; ``single`` goes through a proxy that removes ``max_directs`` from the relay's
challenge, so the same library falls back to one ``direct`` per member, paced to the
relay's 30 frames/s (the path of every share before ``directs``: the baseline). The
other ``--members`` minus 2 members are light (see ``Member``: a real identity and the
library's engine, without a ``Client``), spread over ``--workers`` processes; each
decrypts for real (its share, then the message) and reports the moment it read the
message (``time.monotonic``, one clock for all processes of the machine).

Each sender, in turn, sends its first message into the open room: a new chain, shared
with each member first. The figures are the times from the send to the median, the
90th-percentile and the last member's read, and the relay's and the members' CPU
seconds over it.
"""

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import TypeVar

import msgspec
from relay_process import cpu_seconds, start_relay
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.typing import Subprotocol

import e2echat
from e2echat.client.engine import Engine
from e2echat.client.pubsub import Subscription
from e2echat.crypto.session import CryptoSession
from e2echat.protocol import (
    SUBPROTOCOL,
    Challenge,
    ClientFrame,
    JoinRoom,
    LogEntries,
    LogRequest,
    MemberJoined,
    MemberLeft,
    Presence,
    RelayFrame,
    RoomReply,
    Welcome,
    decode_relay_frame,
    encode_frame,
)
from e2echat.store import MEMORY, Store

F = TypeVar("F")

ROOM = "big"
JOINS_AT_ONCE = 20
"""Joins a worker has under way at once (their round trips overlap)."""
RAISED_LIMITS = (
    "--new-keys-burst",  # every member is a new identity from 127.0.0.1 ...
    "100000",
    "--max-conn-per-ip",  # ... with a connection of its own
    "100000",
)
"""The relay's only limits not at their defaults: the per-address ones."""


async def hide_directs(upstream: str, downstream: ServerConnection) -> None:
    """Forward one client to the relay, its challenge without the ``directs`` limits."""
    async with connect(upstream, subprotocols=[Subprotocol(SUBPROTOCOL)], compression=None) as up:

        async def forward() -> None:
            async for raw in downstream:
                await up.send(raw)

        async def back() -> None:
            async for raw in up:
                frame = decode_relay_frame(raw)
                if isinstance(frame, Challenge):
                    limits = msgspec.structs.replace(
                        frame.limits, max_directs=None, share_rate=None, share_burst=None
                    )
                    raw = encode_frame(msgspec.structs.replace(frame, limits=limits)).decode()
                await downstream.send(raw)

        tasks = [asyncio.create_task(forward()), asyncio.create_task(back())]
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            task.cancel()


def client(url: str, identity: e2echat.Identity, name: str, home: Path) -> e2echat.Client:
    return e2echat.Client(url, identity=identity, name=name, store=home / f"{name}.sqlite3")


class Member:
    """A light member: a real identity and the library's own protocol and crypto core
    (``Engine``, in-memory store) on one WebSocket, without the ``Client`` around it.

    It joins the open room as the library does, but enters it knowing only the
    ``senders`` of the roster the relay lists, and then hands the engine every frame
    but the roster pushes of later joiners (``member_joined``, presence): it needs no
    other member to read the senders, and checking each listed member's signed prekey
    and name (what a real joiner does, once, on its own machine) is O(members) a join,
    which made building the room O(members²) across the workers: 1,000 members took
    285 s, most of it these checks (see "Membership changes")."""

    def __init__(self, name: str, senders: frozenset[bytes]) -> None:
        identity = e2echat.Identity.generate()
        self.known = senders | {identity.public_key}
        store = Store(MEMORY, identity)
        self.engine = Engine(
            identity, name, store, CryptoSession(identity, store), lambda: int(time.time() * 1000)
        )

    async def join(self, url: str) -> ClientConnection:
        ws = await connect(url, subprotocols=[Subprotocol(SUBPROTOCOL)], compression=None)
        challenge = decode_relay_frame(await ws.recv())
        assert isinstance(challenge, Challenge)
        await self.send(ws, [self.engine.hello(challenge)])
        welcome = decode_relay_frame(await ws.recv())
        assert isinstance(welcome, Welcome), welcome
        await self.send(ws, self.engine.welcome(welcome).frames)
        await self.send(ws, [JoinRoom(name=ROOM, id="j")])
        reply = await self.reply(ws, RoomReply, "j")
        await self.send(ws, [LogRequest(room=reply.room.id, id="l")])
        log = await self.reply(ws, LogEntries, "l")
        listed = [m for m in reply.room.members if m.key in self.known]
        room = msgspec.structs.replace(reply.room, members=listed)
        entered = self.engine.enter_room(room, "open", None, log=log.entries)
        await self.send(ws, entered.frames)
        return ws

    async def reply(self, ws: ClientConnection, kind: type[F], request: str) -> F:
        while True:
            frame = decode_relay_frame(await ws.recv())
            if isinstance(frame, kind) and getattr(frame, "id", None) == request:
                return frame
            await self.handle(ws, frame)

    async def handle(self, ws: ClientConnection, frame: RelayFrame) -> list[str]:
        """Feed ``frame`` to the engine (roster pushes aside); the texts it read."""
        if isinstance(frame, MemberJoined | MemberLeft | Presence):
            return []
        out = self.engine.receive(frame)
        await self.send(ws, out.frames)
        return [message.text for message in out.messages]

    @staticmethod
    async def send(ws: ClientConnection, frames: list[ClientFrame]) -> None:
        for frame in frames:
            await ws.send(encode_frame(frame).decode())


async def members(url: str, senders: frozenset[bytes], names: list[str]) -> None:
    """A worker: join every member, say ``ready``, then report each message read.

    Each member reads its connection from the moment it has joined, as a client does: a
    connection left unread while later members join fills its receive queue with their
    roster pushes, stops reading its socket, leaves the relay's keepalive pings
    unanswered, and is closed by the relay 40 s later. A closed connection is reported
    (``closed``), so the run fails at once instead of waiting for a read that cannot come.
    """
    readers: list[asyncio.Task[None]] = []
    joined: list[ClientConnection] = []

    async def read(name: str, member: Member, ws: ClientConnection) -> None:
        async for raw in ws:
            for text in await member.handle(ws, decode_relay_frame(raw)):
                print(f"read {text} {time.monotonic():.6f}", flush=True)
        print(f"closed {name} {ws.close_code} {ws.close_reason!r}", flush=True)

    async def join(name: str) -> None:
        member = Member(name, senders)
        ws = await member.join(url)
        joined.append(ws)
        readers.append(asyncio.create_task(read(name, member, ws)))

    for start in range(0, len(names), JOINS_AT_ONCE):
        await asyncio.gather(*map(join, names[start : start + JOINS_AT_ONCE]))
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until closed
    for task in readers:
        task.cancel()
    for ws in joined:
        await ws.close()


async def spawn(url: str, senders: list[bytes], names: list[str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "members",
        url,
        ",".join(key.hex() for key in senders),
        *names,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )


async def line_of(worker: asyncio.subprocess.Process) -> list[str]:
    assert worker.stdout is not None
    line = await worker.stdout.readline()
    if not line:
        raise RuntimeError("a member process ended")
    words = line.decode().split()
    if words[:1] == ["closed"]:
        raise RuntimeError(f"the relay closed a member's connection: {line.decode().strip()}")
    return words


async def timed_first_message(
    sender: e2echat.Room, text: str, workers: list[asyncio.subprocess.Process], readers: int
) -> list[float]:
    """Seconds from ``sender``'s send of ``text`` until each of the ``readers`` members
    read it, in order."""
    start = time.monotonic()

    async def reads(worker: asyncio.subprocess.Process, count: int) -> list[float]:
        times = []
        while len(times) < count:
            words = await line_of(worker)
            if words[:2] == ["read", text]:
                times.append(float(words[2]) - start)
        return times

    counts = split_counts(readers, len(workers))
    reading = asyncio.gather(*(reads(w, n) for w, n in zip(workers, counts, strict=True)))
    await sender.send(text)
    async with asyncio.timeout(600):
        times = sorted(t for worker in await reading for t in worker)
    return times


async def every_member_validated(events: Subscription[e2echat.Event], count: int) -> None:
    async with asyncio.timeout(1800):
        async for event in events:
            count -= isinstance(event, e2echat.MemberValidated)
            if count <= 0:
                return


def split_counts(total: int, parts: int) -> list[int]:
    return [total // parts + (i < total % parts) for i in range(parts)]


async def run(count: int, workers_count: int, home: Path) -> dict[str, float]:
    process, url = await start_relay("--data-dir", str(home / "relay"), *RAISED_LIMITS)
    workers: list[asyncio.subprocess.Process] = []
    identities = [e2echat.Identity.generate() for _ in range(2)]
    senders = [identity.public_key for identity in identities]
    try:
        async with serve(
            lambda conn: hide_directs(url, conn),
            "127.0.0.1",
            0,
            subprotocols=[Subprotocol(SUBPROTOCOL)],
            compression=None,
        ) as proxy:
            proxy_url = f"ws://127.0.0.1:{proxy.sockets[0].getsockname()[1]}/"
            async with (
                client(url, identities[0], "batched", home) as batched,
                client(proxy_url, identities[1], "single", home) as single,
            ):
                batched_room = await batched.create(ROOM)
                single_room = await single.join(ROOM)
                readers = count - 2
                seen = [c.events() for c in (batched, single)]
                names = [f"m{i:04d}" for i in range(readers)]
                build = time.monotonic()
                start = 0
                for n in split_counts(readers, workers_count):
                    workers.append(await spawn(url, senders, names[start : start + n]))
                    start += n
                for worker in workers:
                    assert await line_of(worker) == ["ready"]
                for events in seen:  # each sender knows every member: it shares with all
                    await every_member_validated(events, readers)
                built = time.monotonic() - build
                print(f"{count} members in {built:.0f} s", file=sys.stderr)
                result: dict[str, float] = {"members": count, "build_s": built}
                for label, room in (("batched", batched_room), ("single", single_room)):
                    pids = [process.pid, *(w.pid for w in workers)]
                    before = [cpu_seconds(pid) for pid in pids]
                    times = await timed_first_message(room, f"first-{label}", workers, readers)
                    result[f"{label}_s"] = times[-1]
                    result[f"{label}_median_s"] = times[len(times) // 2]
                    result[f"{label}_p90_s"] = times[len(times) * 9 // 10]
                    after = [cpu_seconds(pid) for pid in pids]
                    result[f"{label}_relay_cpu_s"] = after[0] - before[0]
                    result[f"{label}_members_cpu_s"] = sum(after[1:]) - sum(before[1:])
                    print(f"{label}: {result[f'{label}_s']:.2f} s", file=sys.stderr)
                return result
    finally:
        for worker in workers:
            if worker.stdin is not None:
                worker.stdin.close()
        for worker in workers:
            await worker.wait()
        process.terminate()
        await process.wait()


def report(result: dict[str, float]) -> None:
    n = int(result["members"])
    print(f"open room of {n:,} members, relay with default limits, durable SQLite store")
    print(f"room built in {result['build_s']:.0f} s (not part of the figures)")
    print(
        f"{'first message of a new chain':36} {'median read':>12} {'p90 read':>10}"
        f" {'last read':>10} {'relay CPU':>10} {'members CPU':>12}"
    )
    for label, text in (
        ("batched", "shares in `directs`"),
        ("single", "one `direct` a share (baseline)"),
    ):
        print(
            f"{text:36} {result[f'{label}_median_s']:10.2f} s {result[f'{label}_p90_s']:8.2f} s"
            f" {result[f'{label}_s']:8.2f} s {result[f'{label}_relay_cpu_s']:8.2f} s"
            f" {result[f'{label}_members_cpu_s']:10.2f} s"
        )
    print(f"baseline / batched: {result['single_s'] / result['batched_s']:.1f}x the time")


def main() -> None:
    if sys.argv[1:2] == ["members"]:
        url, senders, *names = sys.argv[2:]
        asyncio.run(members(url, frozenset(map(bytes.fromhex, senders.split(","))), names))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="e2echat-bench-shares-") as home:
        result = asyncio.run(run(args.members, args.workers, Path(home)))
    report(result)


if __name__ == "__main__":
    main()
