"""Load generator for the relay benchmarks; runs in its own process (see run.py).

    python bench/relay/loadgen.py fanout --port P --target relay --rooms 1 --size 50
    python bench/relay/loadgen.py fanout --port P --rooms 25 --size 2 --rate 15000
    python bench/relay/loadgen.py fanout --port P --ports P,Q,R --rooms 25 --size 2 --rate 5000
    python bench/relay/loadgen.py handshakes --port P --seconds 5
    python bench/relay/loadgen.py idle --port P --count 10000

Prints one JSON object on stdout. Every loop is bounded in count and in time.
"""

import argparse
import asyncio
import base64
import json
import os
import resource
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from nacl.signing import SigningKey

sys.path.insert(0, os.path.dirname(__file__))
from wsraw import RawClient, body_stamp

from e2echat.protocol import (
    Challenge,
    Hello,
    SignedPrekey,
    decode_relay_frame,
    encode_frame,
    hello_transcript,
    prekey_transcript,
)

HOST = "127.0.0.1"
SUBPROTOCOL = "e2echat.v1"


def mark(phase: str) -> None:
    """Tell the runner (reading stdout) that the measured window starts or ends now."""
    sys.stdout.write(json.dumps({"mark": phase}) + "\n")
    sys.stdout.flush()


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Identity:
    signing: SigningKey = field(default_factory=SigningKey.generate)

    def __post_init__(self) -> None:
        self.key = bytes(self.signing.verify_key)
        prekey = os.urandom(32)
        self.prekey = SignedPrekey(
            id=1, key=prekey, sig=self.signing.sign(prekey_transcript(1, prekey)).signature
        )

    def hello(self, challenge: Challenge, name: str) -> bytes:
        transcript = hello_transcript(
            challenge.relay, challenge.nonce, self.key, name, 1, self.prekey.key, self.prekey.sig
        )
        sig = self.signing.sign(transcript).signature
        return encode_frame(Hello(key=self.key, name=name, prekey=self.prekey, sig=sig))


async def next_frame(client: RawClient, prefix: bytes, within: float = 30.0) -> bytes:
    """The next queued non-message frame starting with ``prefix`` (others are dropped)."""
    async with asyncio.timeout(within):
        while True:
            frame = await client.frames.get()
            if frame.startswith(prefix):
                return frame
            if frame.startswith(b'{"type":"error"'):
                raise RuntimeError(frame.decode())


async def login(
    port: int, identity: Identity, name: str, on_message: Callable[[bytes], None] | None = None
) -> RawClient:
    client = await RawClient.open(HOST, port, SUBPROTOCOL, on_message)
    challenge = decode_relay_frame(await next_frame(client, b'{"type":"challenge"'))
    assert isinstance(challenge, Challenge)
    client.send(identity.hello(challenge, name))
    await next_frame(client, b'{"type":"welcome"')
    return client


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class Stats:
    def __init__(self) -> None:
        self.deliveries = 0
        self.latencies: list[int] = []
        self.lags: list[int] = []  # open loop: how late sends left against the schedule
        self.recording = False

    def on_message(self, frame: bytes) -> None:
        if self.recording:
            self.deliveries += 1
            self.latencies.append(time.monotonic_ns() - body_stamp(frame))


async def join(client: RawClient, name: str) -> dict[str, Any]:
    """Join by name; a room just created on another node may not have reached this one
    yet (docs/server.md, "Many relays over Redis"), so ``no_such_room`` is retried."""
    for _ in range(100):
        client.send(json.dumps({"type": "join_room", "name": name}).encode())
        try:
            reply: dict[str, Any] = json.loads(await next_frame(client, b'{"type":"room"'))
            return reply
        except RuntimeError as exc:
            if "no_such_room" not in str(exc):
                raise
            await asyncio.sleep(0.01)
    raise RuntimeError(f"room {name} never reached this node")


async def fanout(args: argparse.Namespace) -> dict[str, object]:
    stats = Stats()
    ports = [int(p) for p in args.ports.split(",")] if args.ports else [args.port]
    rooms: list[tuple[RawClient, bytes, list[RawClient]]] = []
    tag = os.urandom(3).hex()
    for r in range(args.rooms):
        members: list[RawClient] = []
        room_id = b"\0" * 16
        for i in range(args.size):
            if args.target == "relay":
                # Over several nodes, member i of room r is on node (r + i) mod n: in rooms
                # of 2 every delivery crosses from one node to another.
                port = ports[(r + i) % len(ports)]
                client = await login(port, Identity(), f"u{i}", stats.on_message)
                if i == 0:
                    client.send(
                        json.dumps(
                            {
                                "type": "create_room",
                                "name": f"b{tag}-{r}",
                                "access": {"kind": "open"},
                                "max_members": max(args.size, 2),
                            }
                        ).encode()
                    )
                    reply = json.loads(await next_frame(client, b'{"type":"room"'))
                else:
                    reply = await join(client, f"b{tag}-{r}")
                room_id = base64.b64decode(reply["room"]["id"])
            else:
                client = await RawClient.open(HOST, args.port, None, stats.on_message)
                client.send(json.dumps({"room": f"b{tag}-{r}"}).encode())
                await next_frame(client, b'{"type":"joined"')
            members.append(client)
        rooms.append((members[0], room_id, members[1:]))
    for sender, _, receivers in rooms:  # drop the joins and presence queued during setup
        for c in (sender, *receivers):
            while not c.frames.empty():
                c.frames.get_nowait()

    pad = os.urandom(args.body - 8)
    end = time.monotonic() + args.warmup + args.seconds
    sender_key = b64(b"\1" * 32)

    def frame(room: str) -> bytes:
        """A send stamped now (monotonic ns in the body's first 8 bytes)."""
        body = b64(time.monotonic_ns().to_bytes(8, "big") + pad)
        if args.target == "relay":
            return f'{{"type":"send","room":"{room}","body":"{body}"}}'.encode()
        return (
            f'{{"type":"message","room":"{room}","seq":0,"ts":0,'
            f'"from":"{sender_key}","body":"{body}"}}'
        ).encode()

    async def drive(sender: RawClient, room_id: bytes) -> None:
        """Closed loop: keep ``--window`` sends in flight, the next one on each `sent`."""
        window = asyncio.Semaphore(args.window)
        room = b64(room_id)

        async def acks() -> None:
            while True:
                reply = await sender.frames.get()
                if reply.startswith(b'{"type":"sent"'):
                    window.release()
                elif reply.startswith(b'{"type":"error"'):
                    raise RuntimeError(reply.decode())

        reader = asyncio.create_task(acks())
        try:
            while time.monotonic() < end:
                async with asyncio.timeout(10):
                    await window.acquire()
                sender.send(frame(room))
        finally:
            reader.cancel()

    def on_reply(reply: bytes) -> None:
        if reply.startswith(b'{"type":"error"'):
            raise RuntimeError(reply.decode())

    async def drive_open() -> None:
        """Open loop: send at ``--rate`` msgs/s on a fixed schedule, whatever the replies.

        Message i is due at start + i/rate and goes to the rooms in turn; the scheduler
        wakes about every millisecond and sends everything due. Latency is taken from the
        actual send (the stamp) to the receipt; how late each send left against its
        schedule is recorded apart, so a run where the generator itself fell behind shows.
        """
        senders = [(sender, b64(room_id)) for sender, room_id, _ in rooms]
        for sender, _ in senders:
            sender.on_other = on_reply
        start = time.monotonic_ns()
        stop = int(end * 1e9)
        period = 1e9 / args.rate
        i = 0
        while (now := time.monotonic_ns()) < stop:
            due = int((now - start) / period)
            if stats.recording and due > i:
                stats.lags.append(now - start - int(i * period))
            while i < due:
                sender, room = senders[i % len(senders)]
                sender.send(frame(room))
                i += 1
            await asyncio.sleep(0.0005)

    async def measure() -> tuple[float, float]:
        await asyncio.sleep(args.warmup)
        mark("start")
        stats.recording = True
        start, cpu = time.monotonic(), cpu_seconds()
        await asyncio.sleep(args.seconds)
        stats.recording = False
        mark("end")
        return time.monotonic() - start, cpu_seconds() - cpu

    if args.rate:
        drivers = [asyncio.create_task(drive_open())]
    else:
        drivers = [asyncio.create_task(drive(s, r)) for s, r, _ in rooms]
    elapsed, cpu = await measure()
    await asyncio.gather(*drivers)
    lat, lags = sorted(stats.latencies), sorted(stats.lags)

    def pick(q: float, values: list[int] = lat) -> float:
        return values[min(len(values) - 1, int(q * len(values)))] / 1e6 if values else 0.0

    for s, _, rs in rooms:
        for c in (s, *rs):
            c.close()
    return {
        "target": args.target,
        "rooms": args.rooms,
        "size": args.size,
        "window": args.window,
        "rate": args.rate,
        "deliveries_per_s": stats.deliveries / elapsed,
        "msgs_per_s": stats.deliveries / elapsed / max(args.size - 1, 1),
        "p50_ms": pick(0.50),
        "p99_ms": pick(0.99),
        "p999_ms": pick(0.999),
        "send_lag_p99_ms": pick(0.99, lags),
        "loadgen_cpu": cpu / elapsed,
    }


async def handshakes(args: argparse.Namespace) -> dict[str, object]:
    identities = [Identity() for _ in range(args.concurrency)]
    done = 0
    end = time.monotonic() + args.seconds

    async def worker(identity: Identity) -> None:
        nonlocal done
        while time.monotonic() < end:
            client = await login(args.port, identity, "hs")
            client.close()
            await client.closed
            done += 1

    mark("start")
    start, cpu = time.monotonic(), cpu_seconds()
    await asyncio.gather(*(worker(i) for i in identities))
    elapsed = time.monotonic() - start
    mark("end")
    return {"handshakes_per_s": done / elapsed, "loadgen_cpu": (cpu_seconds() - cpu) / elapsed}


async def idle(args: argparse.Namespace) -> dict[str, object]:
    clients: list[RawClient] = []
    identities = [Identity() for _ in range(min(args.count, 500))]
    async with asyncio.timeout(args.count / 100 + 60):
        for start in range(0, args.count, 200):
            batch = range(start, min(start + 200, args.count))
            clients += await asyncio.gather(
                *(login(args.port, identities[i % len(identities)], "idle") for i in batch)
            )
    sys.stdout.write(json.dumps({"ready": len(clients)}) + "\n")
    sys.stdout.flush()
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    for client in clients:
        client.close()
    return {"connections": len(clients)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    f = sub.add_parser("fanout")
    f.add_argument("--target", choices=["relay", "baseline"], default="relay")
    f.add_argument("--rooms", type=int, default=1)
    f.add_argument("--size", type=int, default=50)
    f.add_argument("--window", type=int, default=8, help="closed loop: sends in flight")
    f.add_argument("--rate", type=float, default=0, help="open loop: offered msgs/s in all")
    f.add_argument("--body", type=int, default=256)
    f.add_argument("--ports", default="", help="relay nodes of one cluster: P,Q,...")
    f.add_argument("--seconds", type=float, default=5.0)
    f.add_argument("--warmup", type=float, default=1.0)
    h = sub.add_parser("handshakes")
    h.add_argument("--seconds", type=float, default=5.0)
    h.add_argument("--concurrency", type=int, default=32)
    i = sub.add_parser("idle")
    i.add_argument("--count", type=int, default=10_000)
    for p in (f, h, i):
        p.add_argument("--port", type=int, required=True)
        p.add_argument("--cpu", type=int, default=None, help="pin to this CPU")
    args = parser.parse_args()
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    run = {"fanout": fanout, "handshakes": handshakes, "idle": idle}[args.command]
    print(json.dumps(asyncio.run(run(args))), flush=True)


if __name__ == "__main__":
    main()
