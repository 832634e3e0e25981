"""DM bot: `!dm` in a room opens a direct conversation with whoever said it; in a
direct conversation someone starts with it, it greets them and answers `!ping`.

E2ECHAT_PASSPHRASE=... uv run python docs/examples/dm_bot.py ws://127.0.0.1:8765/
"""

import sys

import e2echat


async def setup(chat: e2echat.Client) -> None:
    @chat.on(e2echat.Message)
    async def private(msg: e2echat.Message) -> None:
        if msg.text == "!dm" and msg.room.peer is None:
            dm = await chat.direct(msg.sender)  # by key: a namesake never gets it
            await dm.send(f"Hi {msg.sender.name}, only the two of us can read this.")
        elif msg.text == "!ping" and msg.room.peer == msg.sender.key:
            await msg.reply("pong, in private")

    @chat.on(e2echat.DirectStarted)
    async def greet(event: e2echat.DirectStarted) -> None:
        await event.room.send(f"Hello {event.peer.name}: say !ping here.")

    await chat.room("lobby", create=True)


if __name__ == "__main__":
    e2echat.run(setup, sys.argv[1], name="dm-bot")
