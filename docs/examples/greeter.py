"""Greeter of a password room, and a one-shot notifier for the same room.

export E2ECHAT_PASSPHRASE=... OPS_PASSWORD=...
uv run python docs/examples/greeter.py ws://127.0.0.1:8765/            # greets, forever
uv run python docs/examples/greeter.py ws://127.0.0.1:8765/ deploy done  # posts, exits
"""

import os
import sys

import e2echat


async def greeter(chat: e2echat.Client) -> None:
    newcomers: set[bytes] = set()

    @chat.on(e2echat.MemberJoined)  # announced by the relay: not yet proven
    async def joined(event: e2echat.MemberJoined) -> None:
        newcomers.add(event.member.key)

    @chat.on(e2echat.MemberValidated)  # proved the password: it can read us from now on
    async def greet(event: e2echat.MemberValidated) -> None:
        if event.member.key in newcomers:
            newcomers.discard(event.member.key)
            await event.room.send(f"Welcome, {event.member.name}! Say !help to the roll-bot.")

    await chat.room("ops", create=True, password=os.environ["OPS_PASSWORD"])


async def notify(chat: e2echat.Client, text: str) -> None:
    room = await chat.room("ops", create=True, password=os.environ["OPS_PASSWORD"])
    await room.send(text)  # e2echat.run waits until the relay has it, then exits


if __name__ == "__main__":
    url, words = sys.argv[1], sys.argv[2:]
    if words:
        e2echat.run(lambda chat: notify(chat, " ".join(words)), url, name="notifier")
    else:
        e2echat.run(greeter, url, name="greeter")
