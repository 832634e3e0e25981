"""Ping bot: answers `!ping` with a reaction, a reply that quotes it, and an edit.

E2ECHAT_PASSPHRASE=... uv run python docs/examples/ping_bot.py ws://127.0.0.1:8765/
"""

import sys

import e2echat


async def setup(chat: e2echat.Client) -> None:
    @chat.on(e2echat.Message)
    async def ping(msg: e2echat.Message) -> None:
        if msg.text == "!ping":
            await msg.react("👍")  # one emoji
            answer = await msg.reply("pong")  # quotes msg, mentions its sender
            await answer.edit("pong (edited)")  # our own messages only

    await chat.room("lobby", create=True)


if __name__ == "__main__":
    e2echat.run(setup, sys.argv[1], name="ping-bot")
