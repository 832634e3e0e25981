"""The moderator bot bans a member who posts a banned word; everyone sees why."""

import moderator_bot

import e2echat
from e2echat.testing import ClientFactory, wait_for


async def test_moderator_bot_bans_and_announces(e2echat_client: ClientFactory) -> None:
    await e2echat_client("mod-bot", setup=moderator_bot.setup)
    alice, carol = await e2echat_client("alice"), await e2echat_client("carol")
    room = await alice.room("lobby")
    events, inbox = alice.events(), alice.messages()
    carol_room = await carol.room("lobby")
    await wait_for(events, lambda e: isinstance(e, e2echat.MemberJoined))
    await carol_room.send("buy cheap spam")
    ban = await wait_for(events, lambda e: isinstance(e, e2echat.RoomChanged) and e.kind == "ban")
    assert isinstance(ban, e2echat.RoomChanged)
    assert (ban.author.name, ban.subject and ban.subject.name) == ("mod-bot", "carol")
    said = await wait_for(inbox, lambda m: m.text == "mod-bot banned carol")
    assert said.sender.name == "mod-bot"
    assert carol.key not in room.roles
    assert room.role(said.sender) == "owner"
