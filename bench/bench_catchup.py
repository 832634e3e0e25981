"""Catch-up after a long absence: N missed messages of one sender, through a durable relay.

Run:  uv run python bench/bench_catchup.py [--sizes 1000,2500,5000,10000] [--repeat 3]
      [--plot docs/catchup.svg]

1. Pre-fill, once: a relay process on its SQLite store (``python -m e2echat_server
   --data-dir``), one writer ``e2echat.Client`` (this process: the load generator, whose
   own CPU per sent message is reported) and, per size N, a room whose reader joined and
   left; the writer then sends N numbered messages to it. The relay stops (SIGTERM) and
   its data directory with the readers' stores is the pre-filled snapshot.
2. Per repeat and size, on a fresh copy of the snapshot and a fresh relay process:

   - bare: a protocol-level connection of the same reader (handshake only, no engine)
     fetches the N messages with ``sync`` pages of 1,000 and takes them off the socket:
     what the relay, SQLite and loopback cost by themselves.
   - library: a new process opens the reader's ``e2echat.Client`` on its store and
     counts ``messages()`` until all N came, checking text and order: wall time and the
     process's CPU from ``Client`` open to the last message (store open, handshake,
     every page decrypted, stored and published).

   The relay's CPU over each run comes from /proc.
Figures are medians over the repeats; ``--plot`` draws catch-up time against N (needs
the ``bench`` dependency group: ``uv sync --group bench``).
"""

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

from relay_process import cpu_seconds, start_relay

ROOT = Path(__file__).resolve().parents[1]
PAGE = 1000
RAISED_RATE = ("--rate", "1000000", "--burst", "1000000")
"""The relay's frame rate limit, raised: the writer sends as fast as it can."""


def text_of(i: int) -> str:
    return f"message {i:05d} of the long absence"


async def stop(process: asyncio.subprocess.Process) -> None:
    process.terminate()
    await process.wait()


async def prefill(snapshot: Path, sizes: list[int]) -> float:
    """Fill ``snapshot`` (relay data, reader stores and keys); the writer's CPU per send."""
    import e2echat

    relay, url = await start_relay("--data-dir", str(snapshot / "relay"), *RAISED_RATE)
    writer_id = e2echat.Identity.generate()
    fast = {"send_rate": 1e6, "send_burst": 1_000_000}
    cpu = 0.0
    async with e2echat.Client(
        url, identity=writer_id, name="writer", store=snapshot / "writer.sqlite3", **fast
    ) as writer:
        for n in sizes:
            room = await writer.create(f"missed-{n}")
            events = writer.events()
            reader_id = e2echat.Identity.generate()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # a throwaway key, written in clear on purpose
                reader_id.save(snapshot / f"reader-{n}.key", None, allow_unencrypted=True)
            store = snapshot / f"reader-{n}.sqlite3"
            async with e2echat.Client(url, identity=reader_id, name=f"r{n}", store=store) as r:
                await r.join(f"missed-{n}")
                async for event in events:
                    if isinstance(event, e2echat.MemberValidated):
                        break
            start = time.process_time()
            for first in range(0, n, 100):  # 100 in flight: the outbox pipelines them
                batch = range(first, min(n, first + 100))
                await asyncio.gather(*(room.send(text_of(i)) for i in batch))
            assert await writer.flush(120) == 0
            cpu += time.process_time() - start
            print(f"  pre-filled {n:,} messages", flush=True)
    await stop(relay)
    return cpu / sum(sizes)


async def measure_library(url: str, folder: Path, n: int) -> dict[str, float]:
    """In the measuring process: the reader's Client catches up on ``n`` messages."""
    import e2echat

    identity = e2echat.Identity.load(folder / f"reader-{n}.key")
    store = folder / f"reader-{n}.sqlite3"
    texts: list[str] = []
    seqs: list[int] = []
    cpu, wall = time.process_time(), time.perf_counter()
    async with e2echat.Client(url, identity=identity, name=f"r{n}", store=store) as reader:
        inbox = reader.messages()
        async with asyncio.timeout(300):
            async for message in inbox:
                texts.append(message.text)
                seqs.append(message.seq)
                if len(texts) == n:
                    break
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    assert texts == [text_of(i) for i in range(n)], "messages missing, doubled or out of order"
    assert seqs == sorted(seqs)
    return {"wall": wall, "cpu": cpu}


async def measure_bare(url: str, folder: Path, n: int) -> dict[str, float]:
    """In the measuring process: the reader's key, no engine, the same ``n`` messages."""
    sys.path.insert(0, str(ROOT / "bench"))
    from bench_client import make_engine
    from websockets.asyncio.client import connect
    from websockets.typing import Subprotocol

    import e2echat
    from e2echat.protocol import (
        SUBPROTOCOL,
        Challenge,
        Message,
        Sync,
        Synced,
        Welcome,
        decode_relay_frame,
        encode_frame,
    )

    identity = e2echat.Identity.load(folder / f"reader-{n}.key")
    cpu, wall = time.process_time(), time.perf_counter()
    ws = await connect(url, subprotocols=[Subprotocol(SUBPROTOCOL)], compression=None)
    challenge = decode_relay_frame(await ws.recv())
    assert isinstance(challenge, Challenge)
    hello = make_engine(identity, f"r{n}", Path(":memory:")).hello(challenge)
    await ws.send(encode_frame(hello), text=True)
    welcome = decode_relay_frame(await ws.recv())
    assert isinstance(welcome, Welcome)
    (room,) = (info.id for info in welcome.rooms)
    after, got = 0, 0
    while got < n:
        await ws.send(encode_frame(Sync(room=room, after=after, limit=PAGE, id="s")), text=True)
        while True:
            frame = decode_relay_frame(await ws.recv())
            if isinstance(frame, Message):
                got, after = got + 1, frame.seq
            elif isinstance(frame, Synced):
                break
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    await ws.close()
    return {"wall": wall, "cpu": cpu}


def measure(kind: str, snapshot: Path, n: int) -> dict[str, float]:
    """One run on a fresh copy of ``snapshot``: a relay process and a measuring process."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "copy"
        shutil.copytree(snapshot, folder)

        async def run() -> dict[str, float]:
            relay, url = await start_relay("--data-dir", str(folder / "relay"), *RAISED_RATE)
            before = cpu_seconds(relay.pid)
            done = await asyncio.create_subprocess_exec(
                sys.executable,
                __file__,
                "--measure",
                kind,
                "--url",
                url,
                "--folder",
                str(folder),
                "--sizes",
                str(n),
                stdout=asyncio.subprocess.PIPE,
            )
            out, _ = await done.communicate()
            assert done.returncode == 0, f"the {kind} run failed"
            result: dict[str, float] = json.loads(out)
            result["relay_cpu"] = cpu_seconds(relay.pid) - before
            await stop(relay)
            return result

        return asyncio.run(run())


def plot(path: Path, rows: list[dict[str, float]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = [row["n"] for row in rows]
    figure, axes = plt.subplots(figsize=(6.4, 3.6))
    axes.plot(sizes, [row["wall"] for row in rows], "o-", label="library catch-up, wall")
    axes.plot(sizes, [row["cpu"] for row in rows], "s-", label="library catch-up, client CPU")
    axes.plot(sizes, [row["bare_wall"] for row in rows], "^--", label="bare protocol sync, wall")
    axes.axhline(5.0, color="grey", linewidth=0.8, linestyle=":", label="goal for 10,000: 5 s")
    axes.set_xlabel("messages missed (one sender)")
    axes.set_ylabel("seconds")
    axes.set_title("Catching up through a durable relay (median of repeats)")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, metadata={"Date": None})
    print(f"plot: {path}")


def main(sizes: list[int], repeat: int, plot_path: Path | None) -> None:
    load = os.getloadavg()[0]
    print(f"machine: {os.cpu_count()} CPUs; python {sys.version.split()[0]}; load {load:.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        snapshot = Path(tmp) / "snapshot"
        snapshot.mkdir()
        writer_cpu = asyncio.run(prefill(snapshot, sizes))
        print(f"  load generator (writer) CPU per sent message: {writer_cpu * 1e3:.3f} ms")
        runs: dict[int, list[tuple[dict[str, float], dict[str, float]]]] = {n: [] for n in sizes}
        for round_ in range(repeat):
            for n in sizes:
                bare, ours = measure("bare", snapshot, n), measure("library", snapshot, n)
                runs[n].append((bare, ours))
                print(
                    f"  round {round_ + 1}, {n:>6,}: library {ours['wall']:.2f} s,"
                    f" {ours['cpu'] / n * 1e3:.3f} ms CPU/msg; bare {bare['wall']:.2f} s",
                    flush=True,
                )
    rows = []
    for n in sizes:
        med = statistics.median
        rows.append(
            {
                "n": n,
                "wall": med(o["wall"] for _, o in runs[n]),
                "cpu": med(o["cpu"] for _, o in runs[n]),
                "relay_cpu": med(o["relay_cpu"] for _, o in runs[n]),
                "bare_wall": med(b["wall"] for b, _ in runs[n]),
                "bare_cpu": med(b["cpu"] for b, _ in runs[n]),
                "bare_relay_cpu": med(b["relay_cpu"] for b, _ in runs[n]),
            }
        )
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")
    print(
        "| missed | library wall | client CPU | CPU per message | relay CPU |"
        " bare sync wall | bare client CPU | bare relay CPU | library / bare wall |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        n = row["n"]
        print(
            f"| {n:,} | {row['wall']:.2f} s | {row['cpu']:.2f} s |"
            f" {row['cpu'] / n * 1e3:.3f} ms | {row['relay_cpu']:.2f} s |"
            f" {row['bare_wall']:.2f} s | {row['bare_cpu']:.2f} s |"
            f" {row['bare_relay_cpu']:.2f} s | {row['wall'] / row['bare_wall']:.1f}x |"
        )
    print(f"load generator (writer) CPU per sent message: {writer_cpu * 1e3:.3f} ms")
    if plot_path is not None:
        plot(plot_path, rows)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,2500,5000,10000")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--plot", type=Path, default=None, help="write the curve here (SVG)")
    parser.add_argument("--measure", choices=["library", "bare"], help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.measure is not None:
        run = measure_library if args.measure == "library" else measure_bare
        print(json.dumps(asyncio.run(run(args.url, args.folder, sizes[0]))))
    else:
        main(sizes, args.repeat, args.plot)
