"""A chat member in a process of its own, for the fault tests to SIGKILL and restart.

    python -m tests.client.peer write URL STORE KEY ROOM COUNT
    python -m tests.client.peer read URL STORE KEY ROOM BARRIER

It reports on stdout, one line each: ``ready``; a writer ``resume N`` (messages it had
queued before, counted from its store once they are all confirmed), ``sent I`` and
``done``; a reader ``got SEQ TEXT`` for each message, ``undecryptable SEQ`` and, once
the ``BARRIER`` text arrives, its whole stored history as ``history SEQ TEXT`` lines and
``end``. Either one then stays connected until stdin closes.
"""

import asyncio
import sys

import e2echat
from e2echat.client.backoff import Backoff

TIMEOUT_S = 60.0


def say(*words: object) -> None:
    print(*words, flush=True)


def client(url: str, store: str, key: str) -> e2echat.Client:
    return e2echat.Client(
        url,
        identity=e2echat.Identity.load(key),
        name=None,  # the one its store remembers
        store=store,
        send_rate=1000.0,
        send_burst=1000,
        backoff=Backoff(initial=0.05, maximum=0.5),
    )


async def until_stdin_closes() -> None:
    await asyncio.to_thread(sys.stdin.read)


async def write(url: str, store: str, key: str, room_name: str, count: int) -> None:
    async with client(url, store, key) as me:
        room = me.get_room(room_name)
        assert room is not None
        assert await me.flush(TIMEOUT_S) == 0  # what the last run queued goes out first
        mine = [m.text for m in await room.history(limit=count) if m.own]
        assert mine == [f"{me.name} {i}" for i in range(len(mine))], mine
        say("resume", len(mine))
        say("ready")
        for i in range(len(mine), count):
            await room.send(f"{me.name} {i}")
            say("sent", i)
        assert await me.flush(TIMEOUT_S) == 0
        say("done")
        await until_stdin_closes()


async def read(url: str, store: str, key: str, room_name: str, barrier: str) -> None:
    async with client(url, store, key) as me:
        events = me.events()
        inbox = me.messages()

        async def report_undecryptable() -> None:
            async for event in events:
                if isinstance(event, e2echat.Undecryptable):
                    say("undecryptable", event.seq)

        watch = asyncio.create_task(report_undecryptable())
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
        watch.cancel()


if __name__ == "__main__":
    role, url, store, key, room_name, last = sys.argv[1:7]
    if role == "write":
        asyncio.run(write(url, store, key, room_name, int(last)))
    else:
        asyncio.run(read(url, store, key, room_name, last))
