import asyncio
import os
import re
import secrets
import sys

from nio import AsyncClient, JoinError, MatrixRoom, RoomMessageText

HELP = "!roll NdM rolls N dice of M sides (1-20 dice, 2-1000 sides), e.g. !roll 2d6"
ROLL = re.compile(r"!roll(?: +(\d+)d(\d+))? *")


async def main(homeserver: str) -> None:
    domain = os.environ["MATRIX_DOMAIN"]
    client = AsyncClient(homeserver, f"@roll-bot:{domain}")
    await client.login(os.environ["MATRIX_PASSWORD"])
    for name in ("dice", "games"):
        if isinstance(await client.join(f"#{name}:{domain}"), JoinError):
            await client.room_create(alias=name, name=name)
    await client.sync(timeout=30000)  # skip the backlog

    async def reply(room: MatrixRoom, event: RoomMessageText, text: str) -> None:
        content = {
            "msgtype": "m.text",
            "body": text,
            "m.relates_to": {"m.in_reply_to": {"event_id": event.event_id}},
            "m.mentions": {"user_ids": [event.sender]},
        }
        await client.room_send(room.room_id, "m.room.message", content)

    async def command(room: MatrixRoom, event: RoomMessageText) -> None:
        if event.sender == client.user_id:
            return
        match = ROLL.fullmatch(event.body)
        count, sides = (int(match[1] or 1), int(match[2] or 6)) if match else (0, 0)
        if 1 <= count <= 20 and 2 <= sides <= 1000:
            rolls = [secrets.randbelow(sides) + 1 for _ in range(count)]
            await reply(room, event, f"{' + '.join(map(str, rolls))} = {sum(rolls)}")
        elif match or event.body == "!help":
            await reply(room, event, HELP)

    client.add_event_callback(command, RoomMessageText)
    try:
        await client.sync_forever(timeout=30000)
    finally:
        await client.close()


asyncio.run(main(sys.argv[1]))
