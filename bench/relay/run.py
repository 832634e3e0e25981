"""Run every relay benchmark against a real relay process and the baseline; print a table.

    uv run python bench/relay/run.py            # about 5 minutes
    uv run python bench/relay/run.py --repeat 1 --seconds 2   # quick look
    uv run python bench/relay/run.py --only-1to1              # rooms of 2 only, 2 minutes
    uv run --group bench python bench/relay/run.py --only-1to1 --redis   # and a Redis node
    uv run --group bench python bench/relay/run.py --only-1to1 --uvloop  # and one on uvloop
    uv run python bench/relay/run.py --only-1to1 --no-window   # and one without commit window

The relay (SQLite store in a temporary directory, the default durable configuration) and
the baseline are pinned to CPU 0, the load generator to CPU 1, so "one core" means one
core. With ``--redis``, a relay node on Redis (a redis-server of its own, append-only
file with ``appendfsync everysec``, also on CPU 0) runs every row too, its CPU counted
with the redis-server's; ``--svg`` then draws CPU per message of the three (``bench``
dependency group). With ``--uvloop``, a second SQLite relay on uvloop (the server's
``uvloop`` extra, in the ``bench`` group) runs every row too; the first relay is always
on asyncio's own loop, as is the baseline. With ``--no-window``, a SQLite relay with
``--commit-window-ms 0`` runs every row too (what the commit window saves). Each figure
is the median of ``--repeat`` runs; CPU is the target's own CPU time over the measured
window divided by its length (1.0 = one core saturated); "of it event loop" is the
share of the target's main thread, the one running asyncio (the rest of a SQLite relay's
is its writer and checkpointer threads; a Redis target's excludes redis-server).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent))
from relay_process import cpu_seconds, relay_command, start_server  # noqa: E402

SERVER_CPU, LOADGEN_CPU = 0, 1
# (room size, rooms, sends in flight per sender, offered msgs/s): 2 = 1:1 traffic, closed
# loop at full load for throughput, then open loop (a fixed schedule of sends that does
# not wait for replies) at the goal's 15k msgs/s and at 5k msgs/s for latency; 50 and
# 500 = fan-out, closed loop. "gen. lag" is how late the open-loop generator's sends left
# against their schedule (its own scheduling noise; 0 for closed loop).
NO_WINDOW = ("--commit-window-ms", "0")
FANOUT = [(2, 25, 8, 0), (2, 25, 0, 15_000), (2, 25, 0, 5_000), (50, 1, 8, 0), (500, 1, 8, 0)]


def pin(cpu: int) -> Any:
    return lambda: os.sched_setaffinity(0, {cpu})


def start(argv: list[str]) -> tuple[subprocess.Popen[str], int]:
    process, url = start_server(argv, preexec_fn=pin(SERVER_CPU))
    return process, int(url.rsplit(":", 1)[1].rstrip("/"))


def relay_argv(data_dir: Path, loop: str = "asyncio") -> list[str]:
    """The relay with its default SQLite store on ``loop``; limits raised so the load is
    not refused."""
    return relay_command(
        "--data-dir",
        str(data_dir),
        "--max-conn-per-ip",
        "1000000",
        "--rate",
        "1000000",
        "--burst",
        "1000000",
        "--new-keys-burst",
        "1000000",
        "--event-loop",
        loop,
    )


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def loadgen(
    args: list[str], *target_pids: int, on_mark: Callable[[str], None] | None = None
) -> dict[str, Any]:
    """Run the load generator; measure the targets' CPU (each process's, and summed)
    over the measured window only; ``on_mark`` is called at its start and end too.

    The generator prints ``{"mark": "start"}`` and ``{"mark": "end"}`` around its window
    (so connection set-up is not counted), then its result.
    """
    gen = subprocess.Popen(
        [sys.executable, str(HERE / "loadgen.py"), *args, "--cpu", str(LOADGEN_CPU)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert gen.stdout is not None
    marks: dict[str, tuple[list[float], float]] = {}
    result: dict[str, Any] = {}
    for line in gen.stdout:
        message = json.loads(line)
        if "mark" in message:
            # each target process's CPU, and the first one's event loop (its main thread)
            cpus = [cpu_seconds(p) for p in target_pids]
            cpus.append(cpu_seconds(target_pids[0], target_pids[0]))
            marks[message["mark"]] = (cpus, time.monotonic())
            if on_mark is not None:
                on_mark(message["mark"])
        else:
            result = message
    if gen.wait(timeout=60) != 0 or not result:
        raise RuntimeError(f"load generator failed: {args}")
    (cpu0, t0), (cpu1, t1) = marks["start"], marks["end"]
    *cpus, loop = [(after - before) / (t1 - t0) for before, after in zip(cpu0, cpu1, strict=True)]
    result["target_cpus"] = cpus
    result["target_cpu"] = sum(cpus)
    result["loop_cpu"] = loop
    if "deliveries_per_s" in result:  # per run, so the table shows a median of ratios
        result["per_cpu"] = result["deliveries_per_s"] / result["target_cpu"]
        result["loop_us"] = 1e6 * loop / result["deliveries_per_s"]
    return result


def median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        key: statistics.median(r[key] for r in runs)
        if isinstance(runs[0][key], float)
        else runs[0][key]
        for key in runs[0]
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--idle", type=int, default=10_000, help="idle connections to open")
    parser.add_argument("--json", type=Path, default=None, help="also write results here")
    parser.add_argument(
        "--only-1to1", action="store_true", help="only rooms of 2 (no fan-out, handshakes, idle)"
    )
    parser.add_argument(
        "--redis", action="store_true", help="also a relay node on Redis (needs redis-server)"
    )
    parser.add_argument(
        "--uvloop", action="store_true", help="also a SQLite relay on uvloop (bench group)"
    )
    parser.add_argument(
        "--no-window",
        action="store_true",
        help="also a SQLite relay with --commit-window-ms 0",
    )
    parser.add_argument("--svg", type=Path, default=None, help="draw CPU per message here")
    parser.add_argument(
        "--rates",
        default="15000,5000",
        help="offered msgs/s of the open-loop 1:1 rows (a loaded machine needs lower ones)",
    )
    opts = parser.parse_args()
    rates = [int(rate) for rate in opts.rates.split(",")]
    loads = [load for load in FANOUT if load[0] != 2 or load[3] == 0]
    loads[1:1] = [(2, 25, 0, rate) for rate in rates]
    results: dict[str, Any] = {"machine": {"nproc": os.cpu_count()}}
    with tempfile.TemporaryDirectory() as data, ExitStack() as stack:
        relay, relay_port = start(relay_argv(Path(data) / "load"))
        baseline, baseline_port = start([sys.executable, str(HERE / "baseline.py"), "--port", "0"])
        started = [relay, baseline]
        try:
            rows = []
            targets = [("relay", relay_port, (relay.pid,))]
            if opts.redis:
                redis_pid, redis_url = stack.enter_context(redis_server(Path(data) / "redis"))
                node, node_port = start([*relay_argv(Path(data) / "node"), "--redis", redis_url])
                started.append(node)
                targets.append(("redis", node_port, (node.pid, redis_pid)))
            if opts.uvloop:
                fast, fast_port = start(relay_argv(Path(data) / "uvloop", "uvloop"))
                started.append(fast)
                targets.append(("uvloop", fast_port, (fast.pid,)))
            if opts.no_window:
                eager, eager_port = start([*relay_argv(Path(data) / "eager"), *NO_WINDOW])
                started.append(eager)
                targets.append(("nowindow", eager_port, (eager.pid,)))
            targets.append(("baseline", baseline_port, (baseline.pid,)))
            for size, rooms, window, rate in loads:
                if opts.only_1to1 and size != 2:
                    continue
                runs: dict[str, list[dict[str, Any]]] = {name: [] for name, _, _ in targets}
                for _ in range(opts.repeat):  # alternate, so all see the same noise
                    for name, port, pids in targets:
                        runs[name].append(
                            loadgen(
                                [
                                    "fanout",
                                    "--port",
                                    str(port),
                                    "--target",
                                    "baseline" if name == "baseline" else "relay",
                                    "--size",
                                    str(size),
                                    "--rooms",
                                    str(rooms),
                                    "--seconds",
                                    str(opts.seconds),
                                    "--window",
                                    str(window),
                                    "--rate",
                                    str(rate),
                                ],
                                *pids,
                            )
                        )
                        runs[name][-1]["target"] = name
                        print(json.dumps(runs[name][-1]), file=sys.stderr)
                rows += [median_of(runs[name]) for name, _, _ in targets]
            results["fanout"] = rows
            if opts.svg:
                draw(rows, opts.svg)
            if opts.only_1to1:
                print(table(results))
                if opts.json:
                    opts.json.write_text(json.dumps(results, indent=2))
                return
            hs = [
                loadgen(
                    ["handshakes", "--port", str(relay_port), "--seconds", str(opts.seconds)],
                    relay.pid,
                )
                for _ in range(opts.repeat)
            ]
            results["handshakes"] = median_of(hs)
            print(json.dumps(results["handshakes"]), file=sys.stderr)
        finally:
            for p in started:
                p.terminate()
                p.wait(timeout=30)
        # A fresh relay: one that served the load above would reuse freed memory.
        fresh, fresh_port = start(relay_argv(Path(data) / "idle"))
        try:
            results["idle"] = idle(fresh.pid, fresh_port, opts.idle)
            print(json.dumps(results["idle"]), file=sys.stderr)
        finally:
            fresh.terminate()
            fresh.wait(timeout=60)
    print(table(results))
    if opts.json:
        opts.json.write_text(json.dumps(results, indent=2))


def idle(pid: int, port: int, count: int) -> dict[str, Any]:
    before = rss_bytes(pid)
    gen = subprocess.Popen(
        [
            sys.executable,
            str(HERE / "loadgen.py"),
            "idle",
            "--port",
            str(port),
            "--count",
            str(count),
            "--cpu",
            str(LOADGEN_CPU),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert gen.stdout is not None
    assert gen.stdin is not None
    ready = json.loads(gen.stdout.readline())["ready"]
    after = rss_bytes(pid)
    gen.stdin.write("\n")
    gen.stdin.flush()
    gen.wait(timeout=120)
    per_conn = (after - before) / ready
    return {
        "connections": ready,
        "rss_before_mib": before / 2**20,
        "rss_after_mib": after / 2**20,
        "bytes_per_connection": per_conn,
        "connections_per_gib": 2**30 / per_conn,
    }


@contextmanager
def redis_server(directory: Path) -> Iterator[tuple[int, str]]:
    """A redis-server on CPU 0 with an append-only file (``everysec``): its pid and URL."""
    sys.path.insert(0, str(HERE.parent.parent))
    from tests.redis_server import RedisServer, redis_binary

    binary = redis_binary()
    if binary is None:
        raise SystemExit("redis-server is not installed (Debian: apt-get install redis-server)")
    server = RedisServer(binary, directory, appendfsync="everysec")
    server.start()
    assert server.process is not None
    os.sched_setaffinity(server.process.pid, {SERVER_CPU})
    try:
        yield server.process.pid, server.url
    finally:
        server.stop()


def load_name(row: dict[str, Any]) -> str:
    load = f"{row['rate']:,.0f}/s open" if row["rate"] else f"{row['window']} in flight"
    return f"{row['size']} x {row['rooms']}, {load}"


TARGET_NAMES = {
    "relay": "relay (SQLite)",
    "redis": "relay on Redis",
    "uvloop": "relay (SQLite) on uvloop",
    "nowindow": "relay (SQLite), no commit window",
    "baseline": "baseline",
}


def table(results: dict[str, Any]) -> str:
    lines = [
        "| room size x rooms, load | target | deliveries/s | msgs/s | p50 ms | p99 ms "
        "| gen. lag p99 ms | target CPU | µs CPU per delivery | of it event loop "
        "| deliveries per CPU-s "
        "| vs baseline (per s, per CPU-s) | vs SQLite relay (CPU per delivery) "
        "| load gen. CPU |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- "
        "| ---: | ---: |",
    ]
    rows = results["fanout"]
    for row in rows:
        same_load = [r for r in rows if load_name(r) == load_name(row)]
        base = next(r for r in same_load if r["target"] == "baseline")
        sqlite = next(r for r in same_load if r["target"] == "relay")
        per_cpu = row["per_cpu"]
        ratio = vs_sqlite = ""
        if row["target"] != "baseline":
            ratio = (
                f"{row['deliveries_per_s'] / base['deliveries_per_s']:.2f}x, "
                f"{per_cpu / base['per_cpu']:.2f}x"
            )
        if row["target"] not in ("relay", "baseline"):
            vs_sqlite = f"{sqlite['per_cpu'] / per_cpu:.2f}x"
        lag = f"{row['send_lag_p99_ms']:.2f}" if row["rate"] else "-"
        lines.append(
            f"| {load_name(row)} | {TARGET_NAMES[row['target']]} | "
            f"{row['deliveries_per_s']:,.0f} | {row['msgs_per_s']:,.0f} | {row['p50_ms']:.2f} | "
            f"{row['p99_ms']:.2f} | {lag} | {row['target_cpu']:.2f} | {1e6 / per_cpu:.1f} | "
            f"{row['loop_us']:.1f} | "
            f"{per_cpu:,.0f} | {ratio} | {vs_sqlite} | {row['loadgen_cpu']:.2f} |"
        )
    if "handshakes" not in results:
        return "\n".join(lines)
    hs, idle_ = results["handshakes"], results["idle"]
    lines += [
        "",
        f"Authenticated handshakes: {hs['handshakes_per_s']:,.0f}/s "
        f"(relay CPU {hs['target_cpu']:.2f}, load generator CPU {hs['loadgen_cpu']:.2f}).",
        f"Idle authenticated connections: {idle_['connections']:,} took RSS from "
        f"{idle_['rss_before_mib']:.0f} MiB to {idle_['rss_after_mib']:.0f} MiB: "
        f"{idle_['bytes_per_connection'] / 1024:.1f} KiB each, "
        f"{idle_['connections_per_gib']:,.0f} connections per GiB.",
    ]
    return "\n".join(lines)


def draw(rows: list[dict[str, Any]], path: Path) -> None:
    """CPU per delivery of each target, grouped by load."""
    import matplotlib

    matplotlib.use("svg")
    import matplotlib.pyplot as plt

    loads = list(dict.fromkeys(load_name(r) for r in rows))
    targets = list(dict.fromkeys(r["target"] for r in rows))
    fig, ax = plt.subplots(figsize=(8, 3.4))
    width = 0.8 / len(targets)
    for i, target in enumerate(targets):
        mine = {load_name(r): 1e6 / r["per_cpu"] for r in rows if r["target"] == target}
        xs = [j + (i - (len(targets) - 1) / 2) * width for j in range(len(loads))]
        bars = ax.bar(xs, [mine[load] for load in loads], width, label=TARGET_NAMES[target])
        ax.bar_label(bars, fmt="%.0f", fontsize=7)
    ax.set_xticks(range(len(loads)), loads, fontsize=8)
    ax.set_ylabel("server CPU µs per delivery")
    ax.legend(fontsize=8)
    fig.suptitle("Same offered load, each target on one core", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, metadata={"Date": None})


if __name__ == "__main__":
    main()
