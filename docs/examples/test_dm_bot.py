"""The DM bot opens a direct conversation on request, and answers in one it is given."""

import dm_bot

import e2echat
from e2echat.testing import ClientFactory, ask, wait_for


async def test_dm_bot_opens_and_answers_direct_conversations(
    e2echat_client: ClientFactory,
) -> None:
    bot = await e2echat_client("dm-bot", setup=dm_bot.setup)
    alice = await e2echat_client("alice")
    events, inbox = alice.events(), alice.messages()
    room = await alice.room("lobby")
    await room.send("!dm")
    started = await wait_for(events, lambda e: isinstance(e, e2echat.DirectStarted))
    assert isinstance(started, e2echat.DirectStarted)
    assert (started.peer.key, started.room.peer) == (bot.key, bot.key)
    hello = await wait_for(inbox, lambda m: m.room.peer is not None)
    assert hello.text == "Hi alice, only the two of us can read this."

    carol = await e2echat_client("carol")
    carol_inbox = carol.messages()
    await carol.room("lobby")
    (member,) = [m for m in await carol.get_room("lobby").members() if m.key == bot.key]  # type: ignore[union-attr]
    dm = await carol.direct(member)
    greeting = await wait_for(carol_inbox)
    assert (greeting.room.id, greeting.text) == (dm.id, "Hello carol: say !ping here.")
    assert (await ask(dm, "!ping")).text == "pong, in private"
    assert [d.peer for d in bot.directs] == [alice.key, carol.key]
