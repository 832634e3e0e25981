"""Benchmark of joins into a large secret room: relay CPU per join as the room grows,
and the wall time to build it.

Run:  uv run python bench/bench_joins.py [--members 2000] [--batch 50] [--plot PATH]

The relay is a subprocess with its default limits and its durable default store
(SQLite in a temporary ``--data-dir``), except two: the new identities one address may
register (every joiner is a new key from 127.0.0.1) and the members a room may have
(the default is 1,000; the room here grows to ``--members``, and one more joins last).

The owner is a library ``Client`` (this process), online throughout: it creates the
invite room and validates every join as any member does (the signed entry's signature,
chain, authority and join tag, then it shares its chain with the joiner). The joiners
speak the protocol themselves, as the library does on the wire: authenticate (``hello``),
``join_room`` with the invite's relay token, fetch the membership log from the start
(``log``, every page), sign a ``join`` entry tagged with the invite's join key at the
head and ``log_append`` it. They do not validate the fetched log's signatures, and
decode of the relay's frames only the fields they use (the join reply's room id, not
its member list; the log pages; not the pushes of other joins): a joiner does that on
its own machine, once, and here it would make the load generator, one process playing
every joiner, O(n) per join. The relay sends every byte as it would to a library
client. Each joiner closes its connection after its batch, so the room's other members
are offline: fan-out goes to the owner and the batch still connected.

Joins go in batches of ``--batch``: the batch connects and authenticates (all at once,
as independent users do), then joins one after another, each waiting until the owner
has validated it (``MemberValidated``), then disconnects (all at once). Relay CPU
(user + system, from /proc/PID/stat) is read around the joins of a batch only, so
connecting and authenticating are not counted as joins (they are given per connection
apart); the load generator's CPU (this process: joiners and owner) likewise. The
same-run baseline is a batch of the same joins into rooms that hold only their owner
(one room per joiner, at most 20: the owner creates them within its connection's
burst). The build time counts everything: every batch's connects, joins and
disconnects.

At the end one library ``Client`` joins the full room (it validates the whole log):
its wall time and the relay's CPU for it.
"""

import argparse
import asyncio
import os
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

import msgspec
from bench_rooms import new_client
from nacl.public import PrivateKey
from nacl.signing import SigningKey
from relay_process import cpu_seconds, start_relay
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

import e2echat
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
from e2echat.protocol.constants import MAX_LOG_PAGE

BASELINE_ROOMS = 20
"""Rooms of the baseline: the owner creates them, two frames each (`create_room`, then
its `create` entry), within its connection's burst of 60 frames."""


def own_cpu() -> float:
    return time.process_time()


def engine_cpu() -> float:
    """CPU seconds of the library clients' engine threads (the owner's, during the curve):
    the part of the load generator's CPU that is the owner's, not the joiners'."""
    return sum(
        cpu_seconds(os.getpid(), thread.native_id)
        for thread in threading.enumerate()
        if thread.name.startswith("e2echat-engine") and thread.native_id is not None
    )


async def start_joins_relay(data: Path, members: int) -> tuple[asyncio.subprocess.Process, str]:
    profile = os.environ.get("BENCH_RELAY_PROFILE")  # a path: the relay runs under cProfile
    return await start_relay(
        "--data-dir",
        str(data),
        "--new-keys-burst",  # every joiner is a new identity from 127.0.0.1
        "100000",
        "--max-members",  # the default is 1,000
        str(max(members + 1, 1000)),  # and the library client that joins last
        python_options=["-m", "cProfile", "-o", profile] if profile else [],
    )


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
        they would make the load generator, which plays every joiner on one core, O(n)
        per join."""
        tag = kind.__struct_config__.tag  # type: ignore[attr-defined]
        while True:
            raw = await self.frames.get()
            peek = _PEEK.decode(raw)
            if peek.type == "error":
                raise RuntimeError(f"relay refused {request}: {peek.code} {peek.message}")
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

    async def join(self, room: str, invite: Invite) -> None:
        """``join_room``, the whole log, then our tagged ``join`` entry at its head."""
        secret = invite.secret
        join = JoinRoom(name=room, token=secret.relay_token, id="j")
        reply = cast(_JoinReply, await self.request(join, RoomReply))
        room_id = reply.room.id
        log: list[bytes] = []
        while True:
            page = await self.request(LogRequest(room=room_id, after=len(log), id="l"), LogEntries)
            log += page.entries
            if len(page.entries) < MAX_LOG_PAGE:
                break
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
        await self.request(LogAppend(room=room_id, entry=entry, id="a"), Ok)

    async def close(self) -> None:
        if self.conn is not None:
            await self.conn.close()
        if self.reader is not None:
            await self.reader


@dataclass
class Batch:
    size_after: int  # members once the batch has joined
    joins: int
    relay_cpu: float  # seconds, joins only
    local_cpu: float  # seconds of this process (owner + joiners), joins only
    owner_cpu: float  # seconds of the owner's engine thread (in ``local_cpu``), joins only
    wall: float  # seconds, joins only
    connect_relay_cpu: float  # seconds, connecting and authenticating the batch


@dataclass
class Result:
    baseline: Batch
    curve: list[Batch]
    build_s: float
    library_join_s: float
    library_join_relay_cpu_s: float


class Owner:
    """The room's owner: a library client that validates every join."""

    def __init__(self, client: e2echat.Client) -> None:
        self.client = client
        self.validated: dict[bytes, asyncio.Event] = {}
        self.events = client.events()
        self.task = asyncio.create_task(self._watch())

    async def _watch(self) -> None:
        async for event in self.events:
            if isinstance(event, e2echat.MemberValidated):
                self.validated.setdefault(event.member.key, asyncio.Event()).set()

    async def until_validated(self, key: bytes) -> None:
        async with asyncio.timeout(60):
            await self.validated.setdefault(key, asyncio.Event()).wait()


async def run_batch(
    url: str, pid: int, owner: Owner, rooms: list[str], invites: list[Invite], first: int
) -> Batch:
    joiners = [Joiner(first + i) for i in range(len(rooms))]
    before = cpu_seconds(pid)
    await asyncio.gather(*(joiner.connect(url) for joiner in joiners))
    connected = cpu_seconds(pid)
    local, engine, start = own_cpu(), engine_cpu(), time.perf_counter()
    for joiner, room, invite in zip(joiners, rooms, invites, strict=True):
        await joiner.join(room, invite)
        await owner.until_validated(joiner.key)
    wall, local = time.perf_counter() - start, own_cpu() - local
    engine = engine_cpu() - engine
    relay = cpu_seconds(pid) - connected
    await asyncio.gather(*(joiner.close() for joiner in joiners))
    return Batch(0, len(joiners), relay, local, engine, wall, connected - before)


async def measure(members: int, batch: int, home: Path) -> Result:
    process, url = await start_joins_relay(home / "relay", members)
    pid = process.pid
    client = new_client(url, "owner", home)
    await client.__aenter__()
    try:
        owner = Owner(client)
        # The baseline: the same joins into rooms that hold only their owner.
        small = [f"small-{i}" for i in range(min(batch, BASELINE_ROOMS))]
        small_invites = [
            Invite.parse((await client.create(n, secret=True)).invite()) for n in small
        ]
        baseline = await run_batch(url, pid, owner, small, small_invites, 1_000_000)
        big = await client.create("big", secret=True)
        invite = Invite.parse(big.invite())
        curve: list[Batch] = []
        build = time.perf_counter()
        size = 1
        while size < members:
            count = min(batch, members - size)
            result = await run_batch(url, pid, owner, ["big"] * count, [invite] * count, size)
            size += count
            result.size_after = size
            curve.append(result)
            print(
                f"{size:6,} members: {result.relay_cpu / count * 1e3:6.2f} ms relay CPU/join,"
                f" {result.wall / count * 1e3:6.1f} ms wall/join",
                file=sys.stderr,
                flush=True,
            )
        built = time.perf_counter() - build
        last = new_client(url, "last", home)
        await last.__aenter__()
        try:
            before, start = cpu_seconds(pid), time.perf_counter()
            await last.join("big", invite=big.invite())
            library_wall, library_relay = time.perf_counter() - start, cpu_seconds(pid) - before
        finally:
            await last.__aexit__(None, None, None)
        return Result(baseline, curve, built, library_wall, library_relay)
    finally:
        owner.task.cancel()
        await client.__aexit__(None, None, None)
        process.terminate()
        await process.wait()


def per_join_ms(batch: Batch, field: str) -> float:
    return float(getattr(batch, field)) / batch.joins * 1e3


def report(result: Result, members: int) -> None:
    baseline, curve = result.baseline, result.curve
    print(f"machine: {os.cpu_count()} CPUs; load {os.getloadavg()[0]:.2f} (1 min)")
    print(f"build of a {members:,}-member secret room: {result.build_s:.1f} s")
    print(
        "| room size after the batch | relay CPU per join | wall per join | load gen. CPU"
        " | of which the owner's engine |"
    )
    print("|---:|---:|---:|---:|---:|")
    rows = [("baseline: rooms of 1", baseline)] + [(f"{b.size_after:,}", b) for b in curve]
    for label, b in rows:
        print(
            f"| {label} | {per_join_ms(b, 'relay_cpu'):.2f} ms | {per_join_ms(b, 'wall'):.1f} ms"
            f" | {per_join_ms(b, 'local_cpu'):.2f} ms | {per_join_ms(b, 'owner_cpu'):.2f} ms |"
        )
    connect = sum(b.connect_relay_cpu for b in curve) / sum(b.joins for b in curve)
    print(f"relay CPU per connection (connect + hello), not counted above: {connect * 1e3:.2f} ms")
    for at in sorted({min(1000, members), members}):
        near = min(curve, key=lambda b: abs(b.size_after - at))
        ratio = per_join_ms(near, "relay_cpu") / max(per_join_ms(baseline, "relay_cpu"), 1e-9)
        print(
            f"join into {near.size_after:,}: {per_join_ms(near, 'relay_cpu'):.2f} ms relay CPU"
            f" ({ratio:.1f}x the baseline)"
        )
    print(
        f"one library Client joining the {members:,}-member room: "
        f"{result.library_join_s:.2f} s, relay CPU {result.library_join_relay_cpu_s * 1e3:.0f} ms"
    )


def plot(path: Path, result: Result) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    baseline, curve = result.baseline, result.curve
    sizes = [b.size_after for b in curve]
    figure, axes = plt.subplots(figsize=(6.4, 3.6))
    axes.plot(sizes, [per_join_ms(b, "relay_cpu") for b in curve], "o-", label="relay CPU per join")
    axes.axhline(
        per_join_ms(baseline, "relay_cpu"),
        color="tab:green",
        linestyle="--",
        label="baseline: join into a room of 1",
    )
    axes.axhline(10.0, color="grey", linewidth=0.8, linestyle=":", label="goal at 1,000: 10 ms")
    axes.set_xlabel("members in the room")
    axes.set_ylabel("ms of relay CPU")
    axes.set_title("Joining a secret room through a durable relay")
    axes.set_ylim(bottom=0)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, metadata={"Date": None})
    print(f"plot: {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--plot", type=Path, help="draw the curve to this SVG")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="e2echat-bench-joins-") as home:
        result = asyncio.run(measure(args.members, args.batch, Path(home)))
    report(result, args.members)
    if args.plot is not None:
        plot(args.plot, result)


if __name__ == "__main__":
    main()
