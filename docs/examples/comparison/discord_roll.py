import os
import re
import secrets

import discord

HELP = "!roll NdM rolls N dice of M sides (1-20 dice, 2-1000 sides), e.g. !roll 2d6"
ROLL = re.compile(r"!roll(?: +(\d+)d(\d+))? *")
ROOMS = {"dice", "games"}  # channels of the servers the bot was invited to

intents = discord.Intents.default()
intents.message_content = True
client = discord.Client(intents=intents)


@client.event
async def on_message(message: discord.Message) -> None:
    if message.author == client.user or getattr(message.channel, "name", None) not in ROOMS:
        return
    match = ROLL.fullmatch(message.content)
    count, sides = (int(match[1] or 1), int(match[2] or 6)) if match else (0, 0)
    if 1 <= count <= 20 and 2 <= sides <= 1000:
        rolls = [secrets.randbelow(sides) + 1 for _ in range(count)]
        await message.reply(f"{' + '.join(map(str, rolls))} = {sum(rolls)}")
    elif match or message.content == "!help":
        await message.reply(HELP)


client.run(os.environ["DISCORD_TOKEN"])
