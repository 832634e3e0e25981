"""The ping bot reacts, replies with a quote, and edits its reply."""

import ping_bot

import e2echat
from e2echat.testing import ClientFactory, ask, wait_for


async def test_ping_bot_reacts_replies_and_edits(e2echat_client: ClientFactory) -> None:
    await e2echat_client("ping-bot", setup=ping_bot.setup)
    alice = await e2echat_client("alice")
    room = await alice.room("lobby")
    events = alice.events()
    reply = await ask(room, "!ping")
    assert (reply.text, reply.mentions_me) == ("pong", True)
    assert reply.reply_to is not None
    assert reply.reply_to.excerpt == "!ping"
    edited = await wait_for(events, lambda e: isinstance(e, e2echat.MessageEdited))
    assert isinstance(edited, e2echat.MessageEdited)
    assert (edited.message.id, edited.message.text) == (reply.id, "pong (edited)")
    (mine,) = [m for m in await room.history() if m.text == "!ping"]
    assert [(r.emoji, r.count) for r in mine.reactions] == [("👍", 1)]
