"""Benchmark of joins into a large secret room: relay CPU per join as the room grows,
and the wall time to build it.

Run:  uv run --group bench python bench/bench_joins.py [--members 2000] [--batch 50]
      [--workers 2] [--lanes 2] [--plot PATH]

The relay is a subprocess with its default limits and its durable default store
(SQLite in a temporary ``--data-dir``), except two: the new identities one address may
register (every joiner is a new key from 127.0.0.1) and the members a room may have
(the default is 1,000; the room here grows to ``--members``, and one more joins last).

The owner is a library ``Client`` (this process), online throughout: it creates the
invite room and validates every join as any member does (the signed entry's signature,
chain, authority and join tag, then it shares its chain with the joiner). The joiners
(bench/joiners.py, played by ``--workers`` processes of their own) speak the protocol
themselves, as the library does on the wire: authenticate (``hello``), ``join_room``
with the invite's relay token, fetch the membership log from the start (``log``, every
page), sign a ``join`` entry tagged with the invite's join key at the head and
``log_append`` it; a ``log_conflict`` answer (another joiner took the position) is met
as the library meets it: a jittered wait, the new entries fetched, signed again. They do
not validate the fetched log's signatures, and decode of the relay's frames only the
fields they use (the join reply's room id, not its member list; the log pages; not the
pushes of other joins): a joiner does that on its own machine, once, and here it would
make the load generator, a few processes playing every joiner, O(n) per join. The relay
sends every byte as it would to a library client. Each joiner closes its connection
after its batch, so the room's other members are offline: fan-out goes to the owner and
the batch still connected.

Joins go in batches of ``--batch``: the batch connects and authenticates (all at once,
as independent users do), then joins, ``--lanes`` joins at a time in each worker (with
``--workers 1 --lanes 1``, one after another), each lane's next joiner starting once
the owner has validated the last (``MemberValidated``), then disconnects (all at once).
Relay CPU (user + system, from /proc/PID/stat) is read around the joins of a batch
only, so connecting and authenticating are not counted as joins (they are given per
connection apart); the load generator's CPU (this process, the owner, and the workers)
likewise. The same-run baseline is the same joins into rooms that hold only their owner
(one room per joiner, 150 of them, joined in batches of ``--batch`` like the curve).
The build time counts everything: every batch's connects, joins and disconnects.

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
from dataclasses import dataclass, fields
from pathlib import Path

from bench_rooms import new_client
from joiners import WorkerProcess
from relay_process import cpu_seconds, start_relay

import e2echat

BASELINE_JOINS = 150
"""Joins of the baseline, one room each: at about 1 ms of relay CPU per join, some 15
clock ticks of /proc/PID/stat in all, where 20 joins read 0.5 or 1.0 ms."""
OWNER_BURST = 1000
"""Frames the owner may send at once: two per baseline room (`create_room`, then its
`create` entry), beyond the default burst of 60."""


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
        "--burst",
        str(OWNER_BURST),
        "--max-members",  # the default is 1,000
        str(max(members + 1, 1000)),  # and the library client that joins last
        python_options=["-m", "cProfile", "-o", profile] if profile else [],
    )


@dataclass
class Batch:
    size_after: int  # members once the batch has joined
    joins: int
    relay_cpu: float  # seconds, joins only
    local_cpu: float  # seconds of this process (the owner) and the workers, joins only
    owner_cpu: float  # seconds of the owner's engine thread (in ``local_cpu``), joins only
    wall: float  # seconds, joins only
    connect_relay_cpu: float  # seconds, connecting and authenticating the batch
    conflicts: int = 0  # ``log_conflict`` answers to the batch's joiners


@dataclass
class Result:
    baseline: Batch
    curve: list[Batch]
    build_s: float
    library_join_s: float
    library_join_relay_cpu_s: float


class Owner:
    """The room's owner: a library client that validates every join. It tells the
    worker that plays a joiner when the joiner is validated."""

    def __init__(self, client: e2echat.Client) -> None:
        self.client = client
        self.players: dict[bytes, WorkerProcess] = {}
        self.events = client.events()
        self.task = asyncio.create_task(self._watch())

    async def _watch(self) -> None:
        async for event in self.events:
            if isinstance(event, e2echat.MemberValidated):
                worker = self.players.get(event.member.key)
                if worker is not None:
                    worker.tell("validated", key=event.member.key.hex())


async def run_batch(
    url: str,
    pid: int,
    owner: Owner,
    workers: list[WorkerProcess],
    joins: list[tuple[str, str]],
    first: int,
    lanes: int,
) -> Batch:
    """``joins`` (room, invite), split over ``workers``, ``lanes`` at a time in each."""
    numbered = [(first + i, room, invite) for i, (room, invite) in enumerate(joins)]
    shares = [numbered[i :: len(workers)] for i in range(len(workers))]

    async def connect(worker: WorkerProcess, share: list[tuple[int, str, str]]) -> None:
        numbers, rooms, invites = (list(column) for column in zip(*share, strict=True))
        keys = await worker.call("connect", url=url, numbers=numbers, rooms=rooms, invites=invites)
        owner.players.update((bytes.fromhex(key), worker) for key in keys)

    def load_cpu() -> float:
        return own_cpu() + sum(cpu_seconds(worker.pid) for worker in workers)

    busy = [(worker, share) for worker, share in zip(workers, shares, strict=True) if share]
    before = cpu_seconds(pid)
    await asyncio.gather(*(connect(*work) for work in busy))
    connected = cpu_seconds(pid)
    local, engine, start = load_cpu(), engine_cpu(), time.perf_counter()
    conflicts = await asyncio.gather(*(w.call("join", lanes=lanes) for w, _ in busy))
    wall, local = time.perf_counter() - start, load_cpu() - local
    engine = engine_cpu() - engine
    relay = cpu_seconds(pid) - connected
    await asyncio.gather(*(w.call("close") for w, _ in busy))
    owner.players.clear()
    return Batch(0, len(joins), relay, local, engine, wall, connected - before, sum(conflicts))


async def measure(members: int, batch: int, workers: int, lanes: int, home: Path) -> Result:
    process, url = await start_joins_relay(home / "relay", members)
    pid = process.pid
    players = list(await asyncio.gather(*(WorkerProcess.start() for _ in range(workers))))
    client = new_client(url, "owner", home)
    await client.__aenter__()
    try:
        owner = Owner(client)
        # The baseline: the same joins into rooms that hold only their owner.
        small = [f"small-{i}" for i in range(BASELINE_JOINS)]
        small_joins = [(name, (await client.create(name, secret=True)).invite()) for name in small]
        parts = []
        for i in range(0, BASELINE_JOINS, batch):
            joins = small_joins[i : i + batch]
            parts.append(await run_batch(url, pid, owner, players, joins, 1_000_000 + i, lanes))
        baseline = combined(parts)
        big = await client.create("big", secret=True)
        invite = big.invite()
        curve: list[Batch] = []
        build = time.perf_counter()
        size = 1
        while size < members:
            count = min(batch, members - size)
            result = await run_batch(
                url, pid, owner, players, [("big", invite)] * count, size, lanes
            )
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
            await last.join("big", invite=invite)
            library_wall, library_relay = time.perf_counter() - start, cpu_seconds(pid) - before
        finally:
            await last.__aexit__(None, None, None)
        return Result(baseline, curve, built, library_wall, library_relay)
    finally:
        owner.task.cancel()
        await client.__aexit__(None, None, None)
        await asyncio.gather(*(player.stop() for player in players))
        process.terminate()
        await process.wait()


def combined(batches: list[Batch]) -> Batch:
    """The batches as one: every count and time summed."""
    return Batch(0, *(sum(getattr(b, f.name) for b in batches) for f in fields(Batch)[1:]))


def per_join_ms(batch: Batch, field: str) -> float:
    return float(getattr(batch, field)) / batch.joins * 1e3


def report(result: Result, members: int) -> None:
    baseline, curve = result.baseline, result.curve
    print(f"machine: {os.cpu_count()} CPUs; load {os.getloadavg()[0]:.2f} (1 min)")
    print(f"build of a {members:,}-member secret room: {result.build_s:.1f} s")
    conflicts = sum(b.conflicts for b in curve)
    print(f"log_conflict answers (a joiner signed again): {conflicts:,} in {members - 1:,} joins")
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
        base = per_join_ms(baseline, "relay_cpu")
        ratio = f"{per_join_ms(near, 'relay_cpu') / base:.1f}x" if base else "n/a: 0 ticks for"
        print(
            f"join into {near.size_after:,}: {per_join_ms(near, 'relay_cpu'):.2f} ms relay CPU"
            f" ({ratio} the baseline)"
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
    parser.add_argument("--workers", type=int, default=2, help="processes playing joiners")
    parser.add_argument("--lanes", type=int, default=2, help="joins at once per worker")
    parser.add_argument("--plot", type=Path, help="draw the curve to this SVG")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="e2echat-bench-joins-") as home:
        result = asyncio.run(
            measure(args.members, args.batch, args.workers, args.lanes, Path(home))
        )
    report(result, args.members)
    if args.plot is not None:
        plot(args.plot, result)


if __name__ == "__main__":
    main()
