"""A chat member in a process of its own, for the fault tests to SIGKILL and restart.

    python -m tests.client.peer write URL STORE KEY ROOM COUNT [--clock-offset MS]
    python -m tests.client.peer read URL STORE KEY ROOM BARRIER [--clock-offset MS]

``--clock-offset`` plays a computer whose clock is that far ahead (behind if negative).
It reports on stdout, one line each: ``skewed OFFSET`` if the relay's time says its
clock is off (before anything else), ``undecryptable SEQ REASON`` for each message it
cannot read yet, and ``ready``; a writer then ``resume N`` (messages it had queued
before, counted from its store once they are all confirmed), ``sent I`` and ``done``; a
reader ``got SEQ TEXT`` for each message and, once the ``BARRIER`` text arrives, its
whole stored history as ``history SEQ TEXT`` lines and ``end``. Either one then stays
connected until stdin closes.
"""

import argparse
import asyncio
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import e2echat
from e2echat.client.backoff import Backoff
from e2echat.crypto.policy import Policy

TIMEOUT_S = 60.0
POLICY = Policy(pending_timeout=300)
"""Messages waiting for a key are reported, and the key asked for, soon (as in the
in-process tests)."""


def say(*words: object) -> None:
    print(*words, flush=True)


def clock_ahead_by(offset_ms: int) -> Callable[[], int]:
    return lambda: time.time_ns() // 1_000_000 + offset_ms


@asynccontextmanager
async def connected(
    url: str, store: str, key: str, clock_offset_ms: int
) -> AsyncIterator[e2echat.Client]:
    """The member's client, connected; it reports ``skewed`` and ``undecryptable``."""
    me = e2echat.Client(
        url,
        identity=e2echat.Identity.load(key),
        name=None,  # the one its store remembers
        store=store,
        policy=POLICY,
        send_rate=1000.0,
        send_burst=1000,
        backoff=Backoff(initial=0.05, maximum=0.5),
        clock=clock_ahead_by(clock_offset_ms),
    )
    events = me.events()  # before connecting: the warning comes with the welcome

    async def report() -> None:
        async for event in events:
            if isinstance(event, e2echat.ClockSkewed):
                say("skewed", event.offset_ms)
            elif isinstance(event, e2echat.Undecryptable):
                say("undecryptable", event.seq, event.reason)

    watch = asyncio.create_task(report())
    try:
        async with me:
            yield me
    finally:
        watch.cancel()


async def until_stdin_closes() -> None:
    await asyncio.to_thread(sys.stdin.read)


async def write(url: str, store: str, key: str, room_name: str, count: int, offset: int) -> None:
    async with connected(url, store, key, offset) as me:
        room = me.get_room(room_name)
        assert room is not None
        assert await me.flush(TIMEOUT_S) == 0  # what the last run queued goes out first
        mine = [m.text for m in await room.history(limit=100_000) if m.own]
        assert mine == [f"{me.name} {i}" for i in range(len(mine))], mine
        say("resume", len(mine))
        say("ready")
        for i in range(len(mine), count):
            await room.send(f"{me.name} {i}")
            say("sent", i)
        assert await me.flush(TIMEOUT_S) == 0
        say("done")
        await until_stdin_closes()


async def read(url: str, store: str, key: str, room_name: str, barrier: str, offset: int) -> None:
    async with connected(url, store, key, offset) as me:
        inbox = me.messages()
        room = me.get_room(room_name)
        assert room is not None
        say("ready")
        async for message in inbox:
            say("got", message.seq, message.text)
            if message.text == barrier:
                break
        for message in await room.history(limit=100_000):
            say("history", message.seq, message.text)
        say("end")
        await until_stdin_closes()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.client.peer")
    parser.add_argument("role", choices=["write", "read"])
    for name in ("url", "store", "key", "room", "last"):
        parser.add_argument(name)
    parser.add_argument("--clock-offset", type=int, default=0, metavar="MS")
    args = parser.parse_args()
    where = (args.url, args.store, args.key, args.room)
    if args.role == "write":
        asyncio.run(write(*where, int(args.last), args.clock_offset))
    else:
        asyncio.run(read(*where, args.last, args.clock_offset))


if __name__ == "__main__":
    main()
