"""Echo bot: answers every message in `lobby` with the same text, mentioning its sender.

E2ECHAT_PASSPHRASE=... uv run python docs/examples/echo_bot.py ws://127.0.0.1:8765/
"""

import sys

import e2echat


async def setup(chat: e2echat.Client) -> None:
    @chat.on(e2echat.Message)  # our own messages are left out: no echo of echoes
    async def echo(msg: e2echat.Message) -> None:
        await msg.reply(msg.text)

    await chat.room("lobby", create=True)  # join it, or create it as an open room


if __name__ == "__main__":
    e2echat.run(setup, sys.argv[1], name="echo-bot")
