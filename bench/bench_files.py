"""Benchmark of encrypted file transfer: throughput and peak memory, beside plain copies.

Run:  uv run python bench/bench_files.py [--sizes 1,256] [--repeat 3]

For each size (MiB) one run measures, on this machine, with random file contents:

1. Through e2echat: a relay subprocess on its durable SQLite store (``e2echat-server
   --data-dir``), and one client process holding two ``e2echat.Client``s in an open room.
   Upload: ``room.send_file`` (encrypt into a temporary file, upload, send the message)
   until the message is confirmed. Download: ``msg.download`` by the other member
   (fetch, check every chunk and the signed hash, write, fsync, rename).
2. Baselines in the same run, on the same bytes: ``shutil.copyfile`` of the file (the
   disk alone), and ``curl`` fetching it from ``python -m http.server`` on loopback (an
   unencrypted HTTP transfer to disk).

Peak memory: the relay's and the client process's VmHWM (peak resident set) from
/proc, beside each process's resident set before the first transfer. Figures are the
median of ``--repeat`` runs; the client process's own CPU time is reported too.
"""

import argparse
import asyncio
import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MIB = 1024 * 1024


def vm(pid: int, field: str) -> int:
    """A /proc/<pid>/status memory field (VmHWM, VmRSS) in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


def write_random(path: Path, size: int) -> None:
    with open(path, "wb") as handle:
        for _ in range(size // MIB):
            handle.write(os.urandom(MIB))
        handle.write(os.urandom(size % MIB))


async def client_side(url: str, source: Path, folder: Path, repeat: int) -> dict[str, object]:
    """Run in the client process: upload and download ``source`` ``repeat`` times."""
    import e2echat

    home = Path(tempfile.mkdtemp())
    alice = e2echat.Client(
        url, identity=e2echat.Identity.generate(), name="alice", store=home / "a.sqlite3"
    )
    bob = e2echat.Client(
        url, identity=e2echat.Identity.generate(), name="bob", store=home / "b.sqlite3"
    )
    async with alice, bob:
        room = await alice.create("files")
        events = alice.events()
        await bob.join("files")
        async for event in events:
            if isinstance(event, e2echat.MemberValidated) and event.member.name == "bob":
                break
        inbox = bob.messages()
        rss_before = vm(os.getpid(), "VmRSS")
        size = await asyncio.to_thread(os.path.getsize, source)
        ups, downs = [], []
        for _ in range(repeat):
            start = time.perf_counter()
            await room.send_file(source)
            ups.append(time.perf_counter() - start)
            async for msg in inbox:
                if msg.file is not None:
                    break
            start = time.perf_counter()
            saved = await msg.download(folder)
            downs.append(time.perf_counter() - start)
            assert await asyncio.to_thread(os.path.getsize, saved) == size
            await asyncio.to_thread(saved.unlink)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "upload_s": ups,
        "download_s": downs,
        "rss_before": rss_before,
        "peak": vm(os.getpid(), "VmHWM"),
        "cpu_s": usage.ru_utime + usage.ru_stime,
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def curl_times(source: Path, out: Path, repeat: int) -> list[float]:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
        cwd=source.parent,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}/{source.name}"
        for _ in range(100):  # until the server listens
            if subprocess.run(["curl", "-sfI", url], capture_output=True).returncode == 0:
                break
            time.sleep(0.05)
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            subprocess.run(["curl", "-sf", "-o", str(out), url], check=True)
            times.append(time.perf_counter() - start)
            out.unlink()
        return times
    finally:
        server.terminate()
        server.wait()


def copy_times(source: Path, out: Path, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        shutil.copyfile(source, out)
        with open(out, "rb+") as handle:
            os.fsync(handle.fileno())
        times.append(time.perf_counter() - start)
        out.unlink()
    return times


def run_size(mib: int, repeat: int, work: Path) -> dict[str, object]:
    source = work / f"file-{mib}.bin"
    write_random(source, mib * MIB)
    data_dir = work / f"relay-{mib}"
    relay = subprocess.Popen(
        [
            *(sys.executable, "-m", "e2echat_server", "--port", "0", "--data-dir", str(data_dir)),
            *("--log-level", "warning", "--rate", "5000", "--burst", "5000"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert relay.stdout is not None
        url = relay.stdout.readline().strip()
        relay_before = vm(relay.pid, "VmRSS")
        client = subprocess.run(
            [sys.executable, __file__, "--client", url, str(source), str(work / "dl"), str(repeat)],
            capture_output=True,
            text=True,
            check=True,
        )
        result = json.loads(client.stdout)
        relay_peak = vm(relay.pid, "VmHWM")
    finally:
        relay.terminate()
        relay.wait()
    size = mib * MIB
    return {
        "mib": mib,
        "upload": size / statistics.median(result["upload_s"]) / MIB,
        "download": size / statistics.median(result["download_s"]) / MIB,
        "copy": size / statistics.median(copy_times(source, work / "copy.bin", repeat)) / MIB,
        "curl": size / statistics.median(curl_times(source, work / "curl.bin", repeat)) / MIB,
        "relay_rss_before": relay_before / MIB,
        "relay_peak": relay_peak / MIB,
        "client_rss_before": result["rss_before"] / MIB,
        "client_peak": result["peak"] / MIB,
        "client_cpu_s": result["cpu_s"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1,256", help="file sizes in MiB, comma-separated")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--client", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        url, source, folder, repeat = args.client
        print(json.dumps(asyncio.run(client_side(url, Path(source), Path(folder), int(repeat)))))
        return
    print(f"# {os.cpu_count()} cores, Python {sys.version.split()[0]}, repeat {args.repeat}")
    print(
        "| size | upload MiB/s | download MiB/s | copy MiB/s | curl MiB/s |"
        " relay RSS before → peak MiB | client RSS before → peak MiB | client CPU s |"
    )
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(dir=Path.cwd()) as folder:
        for mib in (int(s) for s in args.sizes.split(",")):
            r = run_size(mib, args.repeat, Path(folder))
            print(
                f"| {mib} MiB | {r['upload']:.0f} | {r['download']:.0f} | {r['copy']:.0f} |"
                f" {r['curl']:.0f} | {r['relay_rss_before']:.0f} → {r['relay_peak']:.0f} |"
                f" {r['client_rss_before']:.0f} → {r['client_peak']:.0f} |"
                f" {r['client_cpu_s']:.2f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
