"""Echo bot: joins a room and repeats every message it reads there.

Run (with a relay from ``uv run e2echat-server``):

    E2ECHAT_PASSPHRASE=... uv run python docs/examples/echo_bot.py ws://127.0.0.1:8765/ lobby
"""

import asyncio
import sys

import e2echat


async def main(url: str, room_name: str) -> None:
    identity = e2echat.Identity.load_or_create()  # the first run makes and saves it
    async with e2echat.Client(url, identity=identity, name="echo-bot") as chat:

        @chat.on(e2echat.Message)  # our own messages are filtered out: no echo of echoes
        async def echo(msg: e2echat.Message) -> None:
            await msg.room.send(f"{msg.sender.name} said: {msg.text}")

        room = await chat.room(room_name, create=True)  # join, or create an open room
        print(f"echoing in {room.name} as {chat.fingerprint}")
        await chat.run_forever()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:3]))
