"""Benchmark of membership changes in a large secret room: a kick from a 200-member room.

Run:  uv run python bench/bench_rooms.py [--members 200] [--quick]

A relay subprocess with its default limits (``python -m e2echat_server --memory``, only
the new identities one address may register raised), and
``--members`` library ``Client``s in this process, all in one invite room that the first
(its owner) created and the others joined in turn. The owner's connection goes through
a counting proxy, so the bytes it sends are measured on the wire. One run measures:

1. The build: the time of each join (the joiner's ``join`` returns once its signed
   entry is in the log) and the total.
2. Baseline, same room and run: the owner sends a message on a chain every member
   already holds; the time until every member has read it, and the bytes it sent.
3. The kick: the owner kicks one member. The time until every remaining member has
   applied the kick (``RoomChanged``), and the bytes the owner sent for it (the signed
   entry, then the new room secret sealed to each remaining member). Then the owner's
   first message of the new epoch: the time until every remaining member has read it
   (it starts a new chain, shared with each of them first), and its bytes. The kicked
   member must read nothing of it.
"""

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from relay_process import start_relay
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.typing import Subprotocol

import e2echat
from e2echat.protocol import SUBPROTOCOL


class CountingProxy:
    """Forwards one client to the relay and counts the bytes of the frames it sends."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.sent_bytes = 0
        self.sent_frames = 0
        self.url = ""

    async def handle(self, downstream: ServerConnection) -> None:
        protocols = [Subprotocol(SUBPROTOCOL)]
        async with connect(self.upstream, subprotocols=protocols, compression=None) as up:

            async def forward() -> None:
                async for raw in downstream:
                    self.sent_bytes += len(raw)
                    self.sent_frames += 1
                    await up.send(raw)

            async def back() -> None:
                async for raw in up:
                    await downstream.send(raw)

            tasks = [asyncio.create_task(forward()), asyncio.create_task(back())]
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in tasks:
                task.cancel()

    def mark(self) -> tuple[int, int]:
        return self.sent_bytes, self.sent_frames

    def since(self, mark: tuple[int, int]) -> tuple[int, int]:
        return self.sent_bytes - mark[0], self.sent_frames - mark[1]


async def until_all(
    subscriptions: list[e2echat.client.pubsub.Subscription[object]],
    done: Callable[[object], bool],
) -> float:
    """Seconds until every subscription yielded an item ``done`` accepts."""
    start = time.perf_counter()

    async def one(source: e2echat.client.pubsub.Subscription[object]) -> None:
        async for item in source:
            if done(item):
                return

    async with asyncio.timeout(300):
        await asyncio.gather(*(one(s) for s in subscriptions))
    return time.perf_counter() - start


async def timed_send(
    owner_room: e2echat.Room,
    inboxes: list[e2echat.client.pubsub.Subscription[object]],
    proxy: CountingProxy,
    text: str,
) -> tuple[float, int, int]:
    """Seconds until every inbox read ``text`` from the owner, and the owner's bytes."""
    mark = proxy.mark()
    reading = asyncio.create_task(
        until_all(inboxes, lambda m: isinstance(m, e2echat.Message) and m.text == text)
    )
    await owner_room.send(text)
    seconds = await reading
    return (seconds, *proxy.since(mark))


async def run(members: int, home: Path) -> dict[str, float]:
    # the relay's default limits, but for new identities per address: every member
    # registers from 127.0.0.1
    process, url = await start_relay("--memory", "--new-keys-burst", "100000")
    proxy = CountingProxy(url)
    try:
        async with serve(
            proxy.handle, "127.0.0.1", 0, subprotocols=[Subprotocol(SUBPROTOCOL)]
        ) as server:
            port = server.sockets[0].getsockname()[1]
            proxy.url = f"ws://127.0.0.1:{port}/"
            return await measure(members, url, proxy, home)
    finally:
        process.terminate()
        await process.wait()


def new_client(url: str, name: str, home: Path) -> e2echat.Client:
    """A library client with a new identity and its store in ``home``; its sends in a
    secret room do not wait for a new member's membership proof."""
    return e2echat.Client(
        url,
        identity=e2echat.Identity.generate(),
        name=name,
        store=home / f"{name}.sqlite3",
        proof_wait=0.0,
    )


async def measure(count: int, url: str, proxy: CountingProxy, home: Path) -> dict[str, float]:
    owner = new_client(proxy.url, "owner", home)
    others = [new_client(url, f"m{i:04d}", home) for i in range(1, count)]
    await owner.__aenter__()
    try:
        owner_room = await owner.create("big", secret=True)
        invite = owner_room.invite()
        rooms: list[e2echat.Room] = []
        joins: list[float] = []
        build = time.perf_counter()
        for member in others:
            await member.__aenter__()
            start = time.perf_counter()
            rooms.append(await member.join("big", invite=invite))
            joins.append(time.perf_counter() - start)
            if len(joins) % 25 == 0:
                print(f"{len(joins) + 1} members, last join {joins[-1]:.2f} s", file=sys.stderr)
        built = time.perf_counter() - build
        inboxes = [m.messages() for m in others]
        # every member reads the owner's first message: from now on all hold its chain
        await timed_send(owner_room, inboxes, proxy, "warm-up")  # type: ignore[arg-type]
        steady = await timed_send(owner_room, inboxes, proxy, "steady")  # type: ignore[arg-type]
        kicked, rest = others[-1], others[:-1]
        read_by_kicked: list[e2echat.Message[e2echat.Room]] = []

        async def kicked_reads() -> None:
            async for message in kicked.messages():
                read_by_kicked.append(message)

        watching = asyncio.create_task(kicked_reads())
        events = [m.events() for m in rest]
        mark = proxy.mark()
        start = time.perf_counter()
        victim = next(m for m in owner_room.member_list if m.key == kicked.key)
        await owner_room.kick(victim)
        kicked_at = time.perf_counter() - start
        applied = await until_all(
            events,  # type: ignore[arg-type]
            lambda e: isinstance(e, e2echat.RoomChanged) and e.kind == "kick",
        )
        kick_bytes, kick_frames = proxy.since(mark)
        after = await timed_send(owner_room, inboxes[:-1], proxy, "after the kick")  # type: ignore[arg-type]
        await owner_room.members()  # a barrier: anything for the kicked member came by now
        watching.cancel()
        assert not read_by_kicked, "the kicked member read a message after its kick"
        return {
            "members": count,
            "build_s": built,
            "join_median_ms": statistics.median(joins) * 1000,
            "join_last_ms": joins[-1] * 1000,
            "steady_s": steady[0],
            "steady_bytes": steady[1],
            "steady_frames": steady[2],
            "kick_return_s": kicked_at,
            "kick_applied_s": kicked_at + applied,
            "kick_bytes": kick_bytes,
            "kick_frames": kick_frames,
            "after_s": after[0],
            "after_bytes": after[1],
            "after_frames": after[2],
        }
    finally:
        for member in [owner, *others]:
            if member.state != "closed":
                await member.__aexit__(None, None, None)


def report(result: dict[str, float]) -> None:
    n = int(result["members"])
    print(f"secret room of {n:,} members, relay with default limits")
    print(
        f"build: {result['build_s']:.1f} s ({n - 1:,} joins; median join"
        f" {result['join_median_ms']:.0f} ms, last {result['join_last_ms']:.0f} ms)"
    )
    rows = [
        ("message, chain held by all (baseline)", "steady"),
        ("kick: until every member applied it", "kick"),
        ("first message after the kick", "after"),
    ]
    print(f"{'':40} {'seconds':>8} {'bytes sent':>11} {'frames':>7}")
    for label, key in rows:
        seconds = result["kick_applied_s"] if key == "kick" else result[f"{key}_s"]
        print(
            f"{label:40} {seconds:8.2f} {int(result[f'{key}_bytes']):11,}"
            f" {int(result[f'{key}_frames']):7,}"
        )
    print(f"kick returned after {result['kick_return_s']:.2f} s")
    ratio = result["after_s"] / result["steady_s"]
    print(f"first message after the kick / baseline message: {ratio:.1f}x the time")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=200)
    parser.add_argument("--quick", action="store_true", help="20 members: a smoke run")
    args = parser.parse_args()
    members = 20 if args.quick else args.members
    with tempfile.TemporaryDirectory(prefix="e2echat-bench-rooms-") as home:
        result = asyncio.run(run(members, Path(home)))
    report(result)


if __name__ == "__main__":
    main()
