"""A reconnect storm: one of three relay nodes is killed, its clients come back on the others.

    uv run python bench/relay/storm.py                 # about 20 seconds
    uv run python bench/relay/storm.py --rooms 500 --rate 2000

Three relay nodes on one redis-server (``appendfsync everysec``), pinned to CPU 0 with
Redis; this process is the load generator, pinned to CPU 1. Each room of 2 has its
sender on node 0 or 1 and its receiver on node 2. Senders keep an open-loop schedule of
``--rate`` msgs/s throughout; after ``--before`` seconds node 2 gets SIGKILL. Each of its
clients then dials a surviving node (the next URL, as ``Client([...])`` does, after a
random pause of up to 0.5 s), logs in again and sends ``sync`` from the last seq it saw.
Printed: how long until every client was logged in again and until every one had its
backlog, and whether every message the relay acknowledged reached its receiver (any
missing is a failure), with duplicates (a message seen live and again in the backlog,
which clients drop by seq) counted apart.
"""

import argparse
import asyncio
import base64
import json
import os
import random
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent.parent))
from loadgen import Identity, b64, join, login, next_frame  # noqa: E402
from run import LOADGEN_CPU, SERVER_CPU, relay_argv, start  # noqa: E402
from wsraw import RawClient  # noqa: E402

from tests.redis_server import RedisServer, redis_binary  # noqa: E402


class Receiver:
    """One client of the node that dies: the seqs it saw, and its reconnection."""

    def __init__(self, identity: Identity, room: bytes) -> None:
        self.identity, self.room = identity, room
        self.seen: dict[int, int] = {}  # seq -> times received
        self.client: RawClient | None = None
        self.back_at = 0.0  # logged in again
        self.synced_at = 0.0  # and had its backlog

    def on_message(self, frame: bytes) -> None:
        seq = json.loads(frame)["seq"]
        self.seen[seq] = self.seen.get(seq, 0) + 1

    async def come_back(self, port: int, spread: float) -> None:
        await asyncio.sleep(random.uniform(0, spread))
        after = max(self.seen, default=0)  # before the new link delivers live frames
        self.client = await login(port, self.identity, "r", self.on_message)
        self.back_at = time.monotonic()
        sync = {"type": "sync", "room": b64(self.room), "after": after, "id": "s"}
        self.client.send(json.dumps(sync).encode())
        await next_frame(self.client, b'{"type":"synced"')
        self.synced_at = time.monotonic()


async def storm(opts: argparse.Namespace, ports: list[int], victim: Any) -> dict[str, Any]:
    survivors, doomed = ports[:2], ports[2]
    tag = os.urandom(3).hex()
    senders: list[tuple[RawClient, str]] = []
    receivers: list[Receiver] = []
    acked: dict[str, set[int]] = {}
    for r in range(opts.rooms):
        sender = await login(survivors[r % 2], Identity(), "s")
        sender.send(
            json.dumps(
                {"type": "create_room", "name": f"st{tag}-{r}", "access": {"kind": "open"}}
            ).encode()
        )
        await next_frame(sender, b'{"type":"room"')
        receiver = Receiver(Identity(), b"")
        receiver.client = await login(doomed, receiver.identity, "r", receiver.on_message)
        reply = await join(receiver.client, f"st{tag}-{r}")
        receiver.room = base64.b64decode(reply["room"]["id"])
        room = b64(receiver.room)
        acked[room] = set()

        def on_reply(frame: bytes, room: str = room) -> None:
            if frame.startswith(b'{"type":"sent"'):
                acked[room].add(json.loads(frame)["seq"])

        sender.on_other = on_reply
        senders.append((sender, room))
        receivers.append(receiver)
    pad = os.urandom(opts.body - 8)  # each body starts with its number: no two alike
    stop = asyncio.Event()

    async def send_forever() -> None:
        start_ns, period, i = time.monotonic_ns(), 1e9 / opts.rate, 0
        while not stop.is_set():
            due = int((time.monotonic_ns() - start_ns) / period)
            while i < due:
                sender, room = senders[i % len(senders)]
                body = b64(i.to_bytes(8, "big") + pad)
                sender.send(f'{{"type":"send","room":"{room}","body":"{body}"}}'.encode())
                i += 1
            await asyncio.sleep(0.001)

    sending = asyncio.create_task(send_forever())
    await asyncio.sleep(opts.before)
    victim.send_signal(signal.SIGKILL)
    killed = time.monotonic()
    await asyncio.gather(*(r.client.closed for r in receivers if r.client is not None))
    noticed = time.monotonic()
    await asyncio.gather(
        *(r.come_back(survivors[i % 2], opts.spread) for i, r in enumerate(receivers))
    )
    await asyncio.sleep(opts.after)
    stop.set()
    await sending
    # Every acknowledged message must arrive: wait for the last ones, bounded.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if all(acked[b64(r.room)] <= set(r.seen) for r in receivers):
            break
        await asyncio.sleep(0.05)
    missing = sum(len(acked[b64(r.room)] - set(r.seen)) for r in receivers)
    doubled = sum(n - 1 for r in receivers for n in r.seen.values() if n > 1)
    for sender, _ in senders:
        sender.close()
    for r in receivers:
        if r.client is not None:
            r.client.close()
    return {
        "clients_moved": len(receivers),
        "acknowledged": sum(len(s) for s in acked.values()),
        "missing": missing,
        "seen_twice": doubled,
        "closed_noticed_s": noticed - killed,
        "all_logged_in_s": max(r.back_at for r in receivers) - killed,
        "all_synced_s": max(r.synced_at for r in receivers) - killed,
        "p50_synced_s": sorted(r.synced_at - killed for r in receivers)[len(receivers) // 2],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rooms", type=int, default=300, help="clients on the doomed node")
    parser.add_argument("--rate", type=float, default=1000, help="offered msgs/s in all")
    parser.add_argument("--body", type=int, default=192)
    parser.add_argument("--before", type=float, default=2.0, help="seconds before the kill")
    parser.add_argument("--after", type=float, default=2.0, help="seconds after all are back")
    parser.add_argument("--spread", type=float, default=0.5, help="max random pause, s")
    opts = parser.parse_args()
    binary = redis_binary()
    if binary is None:
        raise SystemExit("redis-server is not installed (Debian: apt-get install redis-server)")
    with tempfile.TemporaryDirectory() as tmp:
        redis = RedisServer(binary, Path(tmp) / "redis", appendfsync="everysec")
        redis.start()
        assert redis.process is not None
        os.sched_setaffinity(redis.process.pid, {SERVER_CPU})
        nodes = [start([*relay_argv(Path(tmp) / f"n{n}"), "--redis", redis.url]) for n in range(3)]
        os.sched_setaffinity(0, {LOADGEN_CPU})
        try:
            result = asyncio.run(storm(opts, [port for _, port in nodes], nodes[2][0]))
        finally:
            for process, _ in nodes:
                if process.poll() is None:
                    process.terminate()
                process.wait(timeout=30)
            redis.stop()
    result.update(rooms=opts.rooms, rate=opts.rate)
    print(json.dumps(result))
    if result["missing"]:
        raise SystemExit(f"{result['missing']} acknowledged messages never arrived")


if __name__ == "__main__":
    main()
