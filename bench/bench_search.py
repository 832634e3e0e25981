"""Search over 100,000 stored messages: index build from the sealed history, query latency.

Run:  uv run python bench/bench_search.py [--messages 100000]

A SQLite store file is pre-filled with sealed text messages (12 words each from a
20,000-word vocabulary with Zipf frequencies, 10 rooms), then opened as the client
opens it: the in-memory index is built from the sealed rows (unseal, decode, index),
and queries run through the same path as ``Client.search`` (index lookup, then each of
up to 50 results unsealed and built into a ``Message``).
"""

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from e2echat.client.conversation import Conversation
from e2echat.client.projection import Projection
from e2echat.crypto import Identity, Text, encode_payload, message_id
from e2echat.crypto.session import CryptoSession
from e2echat.store import HistoryItem, Store

ROOMS = [bytes([i]) * 16 for i in range(10)]


def fill(path: Path, identity: Identity, count: int, vocabulary: list[str]) -> None:
    store = Store(path, identity)
    rng = random.Random(1)
    weights = [1 / (rank + 1) for rank in range(len(vocabulary))]
    sender = os.urandom(32)
    with store.transaction():
        for seq in range(1, count + 1):
            body = " ".join(rng.choices(vocabulary, weights, k=12))
            store.add_history(
                HistoryItem(
                    ROOMS[seq % 10],
                    seq,
                    sender,
                    1_800_000_000_000 + seq,
                    encode_payload(Text(body, (), seq)),
                    message_id(sender, bytes(16), seq),
                )
            )
    store.close()


def main(count: int) -> None:
    rng = random.Random(2)
    letters = "abcdefghijklmnopqrstuvwxyz"
    vocabulary = ["".join(rng.choices(letters, k=rng.randint(3, 9))) for _ in range(20_000)]
    identity = Identity.generate()
    print(f"machine: {os.cpu_count()} CPUs; python {sys.version.split()[0]}; {count} messages")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "store.sqlite3"
        fill(path, identity, count, vocabulary)
        store = Store(path, identity)
        chat = Conversation(
            identity.public_key,
            store,
            Projection(identity.public_key, "me", CryptoSession(identity, store), {}),
        )
        start = time.perf_counter()
        while not chat.index_step():
            pass
        print(f"index build from the sealed history: {time.perf_counter() - start:.2f} s")
        queries = {
            "most common word": vocabulary[0],
            "two common words": f"{vocabulary[0]} {vocabulary[1]}",
            "a rare word": vocabulary[15_000],
            "a 2-letter prefix": vocabulary[3][:2],
            "word + 1-letter prefix": f"{vocabulary[50]} {vocabulary[7][:1]}",
        }
        for label, query in queries.items():
            for room in (None, ROOMS[3]):
                times = []
                for _ in range(20):
                    begin = time.perf_counter()
                    found = chat.search(query, room, 50)
                    times.append(time.perf_counter() - begin)
                where = "all rooms" if room is None else "one room "
                print(
                    f"  {label:24} {where}: {len(found):2} results,"
                    f" p50 {statistics.median(times) * 1000:.1f} ms,"
                    f" max {max(times) * 1000:.1f} ms"
                )
        store.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    main(parser.parse_args().messages)
