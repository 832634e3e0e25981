"""Echo bot: joins a room and repeats every message it reads there.

Run (with a relay from ``uv run e2echat-server``):

    E2ECHAT_PASSPHRASE=... uv run python docs/examples/echo_bot.py ws://127.0.0.1:8765/ lobby
"""

import asyncio
import os
import sys

import e2echat


async def main(url: str, room_name: str) -> None:
    path, passphrase = e2echat.default_identity_path(), os.environ.get("E2ECHAT_PASSPHRASE") or None
    if not path.exists():  # first run: a new identity, encrypted if a passphrase is set
        e2echat.Identity.generate().save(path, passphrase, allow_unencrypted=passphrase is None)
    identity = e2echat.Identity.load(path)  # uses $E2ECHAT_PASSPHRASE if encrypted
    async with e2echat.Client(url, identity=identity, name="echo-bot") as chat:

        @chat.on_message  # our own messages are filtered out: no echo of echoes
        async def echo(msg: e2echat.Message) -> None:
            await msg.room.send(f"{msg.sender.name} said: {msg.text}")

        room = chat.room(room_name)  # joined on an earlier run: the store remembers
        if room is None:
            try:
                room = await chat.join(room_name)
            except e2echat.RelayError as exc:
                if exc.code != "no_such_room":
                    raise
                room = await chat.create(room_name)  # an open room: anyone can read it
        print(f"echoing in {room.name} as {chat.fingerprint}")
        await chat.run_forever()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:3]))
