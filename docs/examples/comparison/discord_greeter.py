import os
import sys

import discord

intents = discord.Intents.default()
intents.members = True  # privileged: also switched on in the developer portal


def ops_channel(client: discord.Client) -> discord.TextChannel:
    guild = client.get_guild(int(os.environ["DISCORD_GUILD_ID"]))
    assert guild is not None
    channel = discord.utils.get(guild.text_channels, name="ops")
    assert channel is not None
    return channel


class Greeter(discord.Client):
    async def on_member_join(self, member: discord.Member) -> None:
        await ops_channel(self).send(f"Welcome, {member.mention}! Say !help to the roll-bot.")


class Notifier(discord.Client):
    def __init__(self, text: str) -> None:
        super().__init__(intents=intents)
        self.text = text

    async def on_ready(self) -> None:
        await ops_channel(self).send(self.text)
        await self.close()


if __name__ == "__main__":
    words = sys.argv[1:]
    client = Notifier(" ".join(words)) if words else Greeter(intents=intents)
    client.run(os.environ["DISCORD_TOKEN"])
