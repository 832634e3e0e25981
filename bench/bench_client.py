"""Benchmark of the client library: end-to-end latency and CPU per received message.

Run:  uv run python bench/bench_client.py [--quick]

One run measures, on this machine:

1. Latency. A relay subprocess (``python -m e2echat_server --memory``, rate limit raised),
   two ``e2echat.Client``s in this process, one room; the sender sends at 200 messages/s
   and the receiver timestamps each message as ``messages()`` yields it. p50/p99 of
   send-to-delivery. Baseline, same relay, same rate, same body size: two bare protocol
   connections that send a ready-made body and take the ``message`` frame off the socket
   (no crypto, no store, no engine): what the relay and loopback cost by themselves.
2. CPU per received message, sans-I/O: raw ``message`` frame bytes in, public ``Message``
   out (frame decode, dedupe, verify, ratchet, decrypt, history write to a SQLite file,
   Message build) beside the bare libsodium calls that receive path makes per message
   (Ed25519 verify, 2 BLAKE2b, XChaCha20-Poly1305 open, unpad).
"""

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, cast

import nacl.bindings as sodium
from relay_process import start_relay
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

import e2echat
from e2echat.client.engine import Engine
from e2echat.crypto.message import PAD_BLOCK, parse_body, signed_transcript
from e2echat.crypto.session import CryptoSession
from e2echat.protocol import (
    SUBPROTOCOL,
    Challenge,
    CreateRoom,
    DirectDelivery,
    DirectSend,
    JoinRoom,
    Message,
    OpenAccess,
    RelayLimits,
    RoomInfo,
    RoomReply,
    RosterEntry,
    Send,
    Sent,
    Sync,
    Synced,
    User,
    Welcome,
    decode_relay_frame,
    encode_frame,
)
from e2echat.store import Store

RATE = 200
TEXT = "x" * 200
NOW = 1_800_000_000_000
ROOM_ID = bytes(16)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def paced(count: int, send: Any) -> None:
    """Call ``send(i)`` ``count`` times at RATE per second (absolute schedule, no drift)."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    for i in range(count):
        delay = start + i / RATE - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        await send(i)


async def library_latency(url: str, count: int, home: Path) -> tuple[list[float], float]:
    """Latencies (s) between two Clients, and process CPU seconds per message."""
    clients = [
        e2echat.Client(
            url,
            identity=e2echat.Identity.generate(),
            name=name,
            store=home / f"{name}.sqlite3",
            send_rate=5000,
            send_burst=5000,
        )
        for name in ("sender", "receiver")
    ]
    sent_at: dict[str, float] = {}
    latencies: list[float] = []
    async with clients[0] as sender, clients[1] as receiver:
        room = await sender.create("bench")
        await receiver.join("bench")
        inbox = receiver.messages()
        done = asyncio.Event()

        async def receive() -> None:
            async for msg in inbox:
                latencies.append(time.perf_counter() - sent_at[msg.text[:8]])
                if len(latencies) == count:
                    done.set()
                    return

        async def send(i: int) -> None:
            text = f"{i:08d}{TEXT}"
            sent_at[text[:8]] = time.perf_counter()
            pending.add(asyncio.ensure_future(room.send(text)))

        reader = asyncio.create_task(receive())
        pending: set[asyncio.Future[e2echat.Message]] = set()
        cpu = time.process_time()
        await paced(count, send)
        async with asyncio.timeout(60):
            await done.wait()
            await asyncio.gather(*pending)
        cpu = time.process_time() - cpu
        await reader
    return latencies, cpu / count


async def bare_connection(url: str, identity: e2echat.Identity) -> ClientConnection:
    """A protocol-level connection: handshake only, no engine."""
    ws = await connect(url, subprotocols=[Subprotocol(SUBPROTOCOL)], compression=None)
    challenge = decode_relay_frame(await ws.recv())
    assert isinstance(challenge, Challenge)
    engine = make_engine(identity, "bare", Path(":memory:"))
    await ws.send(encode_frame(engine.hello(challenge)), text=True)
    assert isinstance(decode_relay_frame(await ws.recv()), Welcome)
    return ws


async def bare_latency(url: str, count: int, body_size: int) -> list[float]:
    """Latencies (s) of the relay alone: pre-made bodies, frames read off the socket."""
    a = await bare_connection(url, e2echat.Identity.generate())
    b = await bare_connection(url, e2echat.Identity.generate())
    await a.send(encode_frame(CreateRoom(name="bare", access=OpenAccess(), id="c")), text=True)
    reply = decode_relay_frame(await a.recv())
    assert isinstance(reply, RoomReply)
    await b.send(encode_frame(JoinRoom(name="bare", id="j")), text=True)
    assert isinstance(decode_relay_frame(await b.recv()), RoomReply)
    sent_at: list[float] = []
    latencies: list[float] = []

    async def drain_a() -> None:
        async for _ in a:
            pass

    async def receive() -> None:
        async for raw in b:
            frame = decode_relay_frame(raw)
            if isinstance(frame, Message):
                latencies.append(time.perf_counter() - sent_at[len(latencies)])
                if len(latencies) == count:
                    return

    async def send(i: int) -> None:
        sent_at.append(time.perf_counter())
        body = os.urandom(body_size)
        await a.send(encode_frame(Send(room=reply.room.id, body=body, id=f"s{i}")), text=True)

    drainer, reader = asyncio.create_task(drain_a()), asyncio.create_task(receive())
    await paced(count, send)
    async with asyncio.timeout(60):
        await reader
    drainer.cancel()
    await a.close()
    await b.close()
    return latencies


def make_engine(identity: e2echat.Identity, name: str, path: Path) -> Engine:
    store = Store(path, identity)
    session = CryptoSession(identity, store)
    return Engine(identity, name, store, session, lambda: NOW)


def prepared_frames(count: int, home: Path) -> tuple[Engine, list[bytes], list[bytes]]:
    """A fresh receiver (file store, directs already delivered, its room synced and
    live) and ``count`` raw frames."""
    sender = make_engine(e2echat.Identity.generate(), "sender", home / f"s{time.time_ns()}")
    receiver = make_engine(e2echat.Identity.generate(), "receiver", home / f"r{time.time_ns()}")
    hello = Challenge(
        v=1,
        relay="bench",
        nonce=bytes(32),
        limits=RelayLimits(
            max_frame=65536,
            max_body=48000,
            max_members=10,
            history=10,
            mailbox=10,
            history_age=86_400,
        ),
    )
    members = []
    for engine in (sender, receiver):
        h = engine.hello(hello)
        members.append(
            RosterEntry(
                key=engine.me, name=engine.name, status="online", prekey=h.prekey, joined=NOW
            )
        )
    info = RoomInfo(
        id=ROOM_ID,
        name="bench",
        description="",
        max_members=10,
        listed=True,
        access_kind="open",
        salt=None,
        members=members,
        seq=0,
    )
    for engine in (sender, receiver):
        engine.enter_room(info, "open", None)
        welcome = Welcome(user=User(key=engine.me, name=engine.name), rooms=[info], mailbox=0)
        for frame in engine.welcome(welcome).frames:
            if isinstance(frame, Sync):  # the relay has nothing more: the room is live
                engine.receive(Synced(room=frame.room, seq=0, id=frame.id))
    frames: list[bytes] = []
    for seq in range(1, count + 1):
        _item, _msg, out = sender.queue(ROOM_ID, f"{seq:08d}{TEXT}")
        for frame in out.frames:
            if isinstance(frame, DirectSend):
                delivery = DirectDelivery(sender=sender.me, seq=seq, ts=NOW, body=frame.body)
                receiver.receive(delivery)
            elif isinstance(frame, Send):
                message = Message(room=ROOM_ID, seq=seq, ts=NOW, sender=sender.me, body=frame.body)
                frames.append(encode_frame(message))
                assert frame.id is not None
                sender.receive(Sent(room=ROOM_ID, seq=seq, ts=NOW, id=frame.id))
    bodies = [cast(Message, decode_relay_frame(raw)).body for raw in frames]
    return receiver, frames, bodies


def receive_cpu(count: int, repeats: int, home: Path) -> tuple[float, float, int]:
    """Median seconds per received message: the engine path, and the bare calls."""
    ours: list[float] = []
    bare: list[float] = []
    key = os.urandom(32)
    for _ in range(repeats):
        receiver, frames, bodies = prepared_frames(count, home)
        start = time.process_time()
        delivered = sum(len(receiver.receive(decode_relay_frame(raw)).messages) for raw in frames)
        ours.append((time.process_time() - start) / count)
        assert delivered == count, f"{delivered} of {count} messages delivered"
        receiver.store.close()
        jobs = []
        for body in bodies:
            parsed = parse_body(body)
            sealed = sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(
                sodium.sodium_pad(b"y" * 260, PAD_BLOCK),
                parsed.header_bytes,
                parsed.header.nonce,
                key,
            )
            signed = body[-64:] + signed_transcript(parsed.header_bytes, parsed.ciphertext)
            jobs.append(
                (signed, parsed.header.sender, sealed, parsed.header_bytes, parsed.header.nonce)
            )
        start = time.process_time()
        for signed, sender, sealed, aad, nonce in jobs:
            sodium.crypto_sign_open(signed, sender)
            ck = sodium.crypto_generichash_blake2b_salt_personal(b"\x01", key=key, person=b"mk")
            sodium.crypto_generichash_blake2b_salt_personal(b"\x02", key=ck, person=b"ck")
            padded = sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(sealed, aad, nonce, key)
            sodium.sodium_unpad(padded, PAD_BLOCK)
        bare.append((time.process_time() - start) / count)
    return statistics.median(ours), statistics.median(bare), len(bodies[0])


async def main(quick: bool) -> None:
    count = 400 if quick else 2000
    print(f"machine: {os.cpu_count()} CPUs; python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        per_msg, bare_per_msg, body_size = receive_cpu(200 if quick else 1000, 5, home)
        process, url = await start_relay("--memory", "--rate", "5000", "--burst", "5000")
        try:
            bare = await bare_latency(url, count, body_size)
            ours, cpu = await library_latency(url, count, home)
        finally:
            process.terminate()
            await process.wait()
    ms = 1000.0
    print(f"latency at {RATE} msg/s, {count} messages, body {body_size} B")
    print(
        f"  library clients : p50 {statistics.median(ours) * ms:.2f} ms"
        f"  p99 {percentile(ours, 0.99) * ms:.2f} ms  max {max(ours) * ms:.2f} ms"
    )
    print(
        f"  bare protocol   : p50 {statistics.median(bare) * ms:.2f} ms"
        f"  p99 {percentile(bare, 0.99) * ms:.2f} ms  max {max(bare) * ms:.2f} ms"
    )
    print(f"  process CPU per message, both clients: {cpu * 1e6:.0f} us")
    print("receive path CPU per message (median of 5)")
    print(f"  engine (frame bytes -> Message, SQLite file) : {per_msg * 1e6:.1f} us")
    print(f"  bare libsodium calls                         : {bare_per_msg * 1e6:.1f} us")
    print(f"  ratio                                         : {per_msg / bare_per_msg:.1f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer messages (smoke run)")
    asyncio.run(main(parser.parse_args().quick))
