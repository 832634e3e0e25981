"""Moderator bot: owns the lobby, bans members who post a banned word, announces changes.

E2ECHAT_PASSPHRASE=... uv run python docs/examples/moderator_bot.py ws://127.0.0.1:8765/
"""

import sys

import e2echat

BANNED_WORDS = {"spam"}


async def setup(chat: e2echat.Client) -> None:
    @chat.on(e2echat.Message)
    async def moderate(msg: e2echat.Message) -> None:
        words = set(msg.text.lower().split())
        if msg.room.role(msg.sender) == "member" and words & BANNED_WORDS:
            await msg.room.ban(msg.sender)  # a new epoch: it reads nothing from now on

    @chat.on(e2echat.RoomChanged)
    async def announce(change: e2echat.RoomChanged) -> None:
        if change.kind in ("kick", "ban", "role"):  # checked from the signed log
            await change.room.send(change.text)  # "mod-bot banned carol"

    await chat.room("lobby", create=True)  # its creator is its owner


if __name__ == "__main__":
    e2echat.run(setup, sys.argv[1], name="mod-bot")
