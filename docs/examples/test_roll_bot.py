"""A test for the dice bot, as docs/bots.md shows it."""

import roll_bot

from e2echat.testing import ask


async def test_roll_bot(e2echat_client) -> None:
    await e2echat_client("roll-bot", setup=roll_bot.setup)  # returns once the bot is ready
    alice = await e2echat_client("alice")
    room = await alice.room("dice")

    reply = await ask(room, "!roll 3d6")
    assert reply.sender.name == "roll-bot"
    assert reply.mentions_me
    rolls, total = reply.text.removeprefix("@alice ").split(" = ")
    assert sum(map(int, rolls.split(" + "))) == int(total)
    assert 3 <= int(total) <= 18

    assert "!roll NdM" in (await ask(room, "!help")).text
    assert "!roll NdM" in (await ask(room, "!roll 0d6")).text
