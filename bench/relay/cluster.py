"""Relay nodes over one Redis against one node on SQLite, at the same offered load.

    uv run --group bench python bench/relay/cluster.py                 # about 4 minutes
    uv run --group bench python bench/relay/cluster.py --repeat 1 --seconds 2   # quick look

Set-ups, started afresh for every repeat and taken in turn so they share the machine's
noise: one relay on its default SQLite store (the baseline), then one, two and three
relay nodes on one redis-server (append-only file, ``appendfsync everysec``: like
SQLite's default, it keeps every answered write through a crash of any process). Loads
(open loop, a fixed schedule of sends whatever the replies): rooms of 2, whose two
members sit on different nodes so every delivery crosses Redis, and rooms of 50 spread
over the nodes. Members connect round-robin (``loadgen.py --ports``).

This machine has two cores. The relays and Redis all share CPU 0 and the load
generator has CPU 1 to itself, so adding nodes cannot add capacity here: what the run
measures is what going through Redis costs (server CPU per delivery, relays and Redis
summed, and Redis commands and bytes per message) and the cross-node latency at a load
one core carries. docs/server.md turns those costs into a capacity model for machines
with a core per node. The figure is drawn with the ``bench`` dependency group.
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from redis import Redis

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))
from run import SERVER_CPU, loadgen, relay_argv, start  # noqa: E402

from tests.redis_server import RedisServer, redis_binary  # noqa: E402

SETUPS = [("sqlite", 1), ("redis", 1), ("redis", 2), ("redis", 3)]
# (room size, rooms, offered msgs/s in all): 1:1 traffic and a room of 50's fan-out.
LOADS = [(2, 24, 1_000), (50, 2, 120)]


@contextmanager
def setup(kind: str, nodes: int, data: Path, redis: RedisServer) -> Iterator[list[Any]]:
    """Start the relay processes of one set-up; yield them (the node's Popen, port)."""
    started = []
    if kind == "redis":
        with Redis.from_url(redis.url) as client:
            client.flushall()
    try:
        for n in range(nodes):
            argv = relay_argv(data / f"{kind}-{nodes}-{n}")
            if kind == "redis":
                argv += ["--redis", redis.url]
            started.append(start(argv))
        yield started
    finally:
        for process, _ in started:
            process.terminate()
            process.wait(timeout=30)


def redis_counters(redis: RedisServer) -> tuple[int, int, int]:
    """Commands processed, bytes in and bytes out, since Redis started."""
    with Redis.from_url(redis.url) as client:
        stats: dict[str, int] = client.info("stats")
    return (
        stats["total_commands_processed"],
        stats["total_net_input_bytes"],
        stats["total_net_output_bytes"],
    )


def one_run(
    kind: str, nodes: list[Any], redis: RedisServer, load: tuple[int, int, int], seconds: float
) -> dict[str, Any]:
    size, rooms, rate = load
    ports = ",".join(str(port) for _, port in nodes)
    pids = [process.pid for process, _ in nodes]
    if kind == "redis":
        assert redis.process is not None
        pids.append(redis.process.pid)
    counters: dict[str, tuple[int, int, int]] = {}
    argv = ["fanout", "--port", str(nodes[0][1]), "--ports", ports, "--size", str(size)]
    argv += ["--rooms", str(rooms), "--rate", str(rate), "--seconds", str(seconds)]

    def on_mark(mark: str) -> None:
        counters[mark] = redis_counters(redis)

    result = loadgen(argv, *pids, on_mark=on_mark)
    (c0, i0, o0), (c1, i1, o1) = counters["start"], counters["end"]
    sent = result["msgs_per_s"] * seconds  # delivered ones, over the measured window
    redis_cpu = result["target_cpus"][-1] if kind == "redis" else 0.0
    result.update(
        redis_cpu=redis_cpu,
        relay_us_per_delivery=(result["target_cpu"] - redis_cpu) / result["deliveries_per_s"] * 1e6,
        redis_us_per_msg=redis_cpu / result["msgs_per_s"] * 1e6,
        setup=f"{kind}, {len(nodes)} node{'s' if len(nodes) > 1 else ''}",
        us_per_delivery=result["target_cpu"] / result["deliveries_per_s"] * 1e6,
        redis_commands_per_msg=(c1 - c0) / sent,
        redis_bytes_per_msg=(i1 - i0 + o1 - o0) / sent,
    )
    return result


def median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        k: statistics.median(r[k] for r in runs)
        if isinstance(v, float | int) and not isinstance(v, bool)
        else v
        for k, v in runs[0].items()
    }


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| load | set-up | deliveries/s | p50 ms | p99 ms | gen. lag p99 ms | server CPU "
        "(of it Redis) | µs CPU per delivery | vs SQLite | relay µs per delivery "
        "| Redis µs, commands, bytes per msg | load gen. CPU |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    base: dict[tuple[int, int], float] = {}
    for row in rows:
        key = (row["size"], row["rooms"])
        if row["setup"].startswith("sqlite"):
            base[key] = row["us_per_delivery"]
        load = f"{row['size']} x {row['rooms']}, {row['rate']:,.0f} msgs/s"
        redis = "-"
        if row["redis_cpu"]:
            redis = (
                f"{row['redis_us_per_msg']:.1f}, {row['redis_commands_per_msg']:.1f}, "
                f"{row['redis_bytes_per_msg']:,.0f}"
            )
        lines.append(
            f"| {load} | {row['setup']} | {row['deliveries_per_s']:,.0f} | {row['p50_ms']:.2f} "
            f"| {row['p99_ms']:.2f} | {row['send_lag_p99_ms']:.2f} | {row['target_cpu']:.2f} "
            f"({row['redis_cpu']:.2f}) | {row['us_per_delivery']:.1f} "
            f"| {row['us_per_delivery'] / base[key]:.2f}x | {row['relay_us_per_delivery']:.1f} "
            f"| {redis} | {row['loadgen_cpu']:.2f} |"
        )
    return "\n".join(lines)


def draw(rows: list[dict[str, Any]], path: Path) -> None:
    """CPU per delivery and p99 against the number of nodes, the SQLite node as a line."""
    import matplotlib

    matplotlib.use("svg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for (size, rooms, _), marker in zip(LOADS, "os", strict=True):
        mine = [r for r in rows if (r["size"], r["rooms"]) == (size, rooms)]
        redis_rows = [r for r in mine if r["setup"].startswith("redis")]
        sqlite = next(r for r in mine if r["setup"].startswith("sqlite"))
        xs = [int(r["setup"].split(", ")[1].split()[0]) for r in redis_rows]
        for ax, key in zip(axes, ("us_per_delivery", "p99_ms"), strict=True):
            (line,) = ax.plot(
                xs, [r[key] for r in redis_rows], marker=marker, label=f"Redis, rooms of {size}"
            )
            ax.axhline(
                sqlite[key],
                color=line.get_color(),
                linestyle=":",
                label=f"SQLite 1 node, rooms of {size}",
            )
    axes[0].set(xlabel="relay nodes", ylabel="server CPU µs per delivery", xticks=[1, 2, 3])
    axes[1].set(xlabel="relay nodes", ylabel="p99 latency, ms", xticks=[1, 2, 3])
    axes[0].set_ylim(bottom=0)
    axes[1].set_ylim(bottom=0)
    axes[1].legend(fontsize=7)
    fig.suptitle("Same offered load, relays and Redis sharing one core", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, metadata={"Date": None})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--json", type=Path, default=None, help="also write results here")
    parser.add_argument("--svg", type=Path, default=ROOT / "docs" / "cluster-bench.svg")
    opts = parser.parse_args()
    binary = redis_binary()
    if binary is None:
        raise SystemExit("redis-server is not installed (Debian: apt-get install redis-server)")
    runs: dict[tuple[str, int, tuple[int, int, int]], list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        redis = RedisServer(binary, data / "redis", appendfsync="everysec")
        redis.start()
        assert redis.process is not None
        os.sched_setaffinity(redis.process.pid, {SERVER_CPU})
        try:
            for _ in range(opts.repeat):
                for kind, count in SETUPS:
                    with setup(kind, count, data, redis) as nodes:
                        for load in LOADS:
                            result = one_run(kind, nodes, redis, load, opts.seconds)
                            runs.setdefault((kind, count, load), []).append(result)
                            print(json.dumps(result), file=sys.stderr)
        finally:
            redis.stop()
    rows = [runs[(kind, count, load)] for load in LOADS for kind, count in SETUPS]
    medians = [median_of(r) for r in rows]
    print(table(medians))
    if opts.json:
        opts.json.write_text(json.dumps({"medians": medians, "runs": rows}, indent=2))
    draw(medians, opts.svg)


if __name__ == "__main__":
    main()
