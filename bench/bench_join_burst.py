"""Benchmark of members joining a secret room all at once: does everyone get in, and
what does the race for log positions cost against the same joins one after another.

Run:  uv run python bench/bench_join_burst.py [--joiners 50]

The relay is a subprocess on its durable default store (SQLite in a temporary
``--data-dir``), with its default limits except the new identities one address may
register. An owner (a library ``Client``) creates two invite rooms. ``--joiners``
library ``Client``s, all in this process and connected before the clock starts, join
the first room one after another (the same-run baseline: each ``join`` returns before
the next starts), then the second room all at once. Each join signs an entry for the
next position of the membership log; in the burst all but one lose each position and
sign again (docs/bots.md, "Owners, admins, kick, ban and a new secret").

For each: how many joins failed, the time until every ``join`` returned, and the time
until the owner had validated every joiner (``MemberValidated``). The joiners share one
interpreter here, so the figures include their work for each other (each new member is
validated and sent a key share by every member already in); on separate machines a lost
position costs a joiner one more ``log_append`` and a short ``log`` fetch.
"""

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from bench_joins import start_joins_relay
from bench_rooms import new_client

import e2echat

VALIDATE_TIMEOUT_S = 120.0


async def timed_joins(
    owner: e2echat.Client,
    joiners: list[e2echat.Client],
    run: Callable[[list[e2echat.Client]], Awaitable[list[object]]],
) -> tuple[int, float, float]:
    """(failed joins, seconds until every join returned, seconds until all validated)."""
    keys = {joiner.key for joiner in joiners}
    validated: set[bytes] = set()
    done = asyncio.Event()
    events = owner.events()

    async def watch() -> None:
        async for event in events:
            if isinstance(event, e2echat.MemberValidated) and event.member.key in keys:
                validated.add(event.member.key)
                if validated == keys:
                    done.set()

    watcher = asyncio.create_task(watch())
    start = time.perf_counter()
    results = await run(joiners)
    returned = time.perf_counter() - start
    refused = {j.key for j, r in zip(joiners, results, strict=True) if isinstance(r, BaseException)}
    failed = len(refused)
    if failed:
        keys -= refused
        if validated >= keys:
            done.set()
    async with asyncio.timeout(VALIDATE_TIMEOUT_S):
        await done.wait()
    watcher.cancel()
    return failed, returned, time.perf_counter() - start


async def measure(count: int, home: Path) -> dict[str, tuple[int, float, float]]:
    process, url = await start_joins_relay(home / "relay", count)
    clients: list[e2echat.Client] = []
    try:
        owner = new_client(url, "owner", home)
        clients.append(owner)
        await owner.__aenter__()
        invites = {
            name: (await owner.create(name, secret=True)).invite() for name in ("turns", "burst")
        }
        for i in range(count):
            joiner = new_client(url, f"j{i:04d}", home)
            clients.append(joiner)
            await joiner.__aenter__()
        joiners = clients[1:]

        async def turns(members: list[e2echat.Client]) -> list[object]:
            return [await m.join("turns", invite=invites["turns"]) for m in members]

        async def burst(members: list[e2echat.Client]) -> list[object]:
            joins = (m.join("burst", invite=invites["burst"]) for m in members)
            return list(await asyncio.gather(*joins, return_exceptions=True))

        return {
            "one after another (baseline)": await timed_joins(owner, joiners, turns),
            "all at once": await timed_joins(owner, joiners, burst),
        }
    finally:
        for client in reversed(clients):
            await client.__aexit__(None, None, None)
        process.terminate()
        await process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--joiners", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="e2echat-bench-burst-") as home:
        results = asyncio.run(measure(args.joiners, Path(home)))
    print(f"machine: {os.cpu_count()} CPUs; load {os.getloadavg()[0]:.2f} (1 min)")
    print(f"{args.joiners} joiners into a secret room, durable relay")
    print("| joins | failed | every join returned | owner validated all |")
    print("|---|---:|---:|---:|")
    for label, (failed, returned, validated) in results.items():
        print(f"| {label} | {failed} | {returned:.2f} s | {validated:.2f} s |")
    sys.exit(1 if any(failed for failed, _, _ in results.values()) else 0)


if __name__ == "__main__":
    main()
