"""Dice bot in two rooms: `!roll 2d6` rolls two six-sided dice, `!help` says how.

E2ECHAT_PASSPHRASE=... uv run python docs/examples/roll_bot.py ws://127.0.0.1:8765/
"""

import re
import secrets
import sys

import e2echat

HELP = "!roll NdM rolls N dice of M sides (1-20 dice, 2-1000 sides), e.g. !roll 2d6"
ROLL = re.compile(r"!roll(?: +(\d+)d(\d+))? *")


async def setup(chat: e2echat.Client) -> None:
    @chat.on(e2echat.Message)
    async def command(msg: e2echat.Message) -> None:
        match = ROLL.fullmatch(msg.text)
        count, sides = (int(match[1] or 1), int(match[2] or 6)) if match else (0, 0)
        if 1 <= count <= 20 and 2 <= sides <= 1000:
            rolls = [secrets.randbelow(sides) + 1 for _ in range(count)]
            await msg.reply(f"{' + '.join(map(str, rolls))} = {sum(rolls)}")
        elif match or msg.text == "!help":
            await msg.reply(HELP)

    for room in ("dice", "games"):
        await chat.room(room, create=True)


if __name__ == "__main__":
    e2echat.run(setup, sys.argv[1], name="roll-bot")
