import os

import discord

intents = discord.Intents.default()
intents.message_content = True  # privileged: also switched on in the developer portal
client = discord.Client(intents=intents)


@client.event
async def on_message(message: discord.Message) -> None:
    if message.author == client.user:
        return
    await message.reply(message.content, mention_author=True)


client.run(os.environ["DISCORD_TOKEN"])
