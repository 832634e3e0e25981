import asyncio
import os
import sys

from nio import AsyncClient, MatrixRoom, RoomMemberEvent

OPS = "#ops:" + os.environ["MATRIX_DOMAIN"]  # an invite-only room: Matrix has no passwords


async def login(homeserver: str, user: str) -> tuple[AsyncClient, str]:
    client = AsyncClient(homeserver, f"@{user}:{os.environ['MATRIX_DOMAIN']}")
    await client.login(os.environ["MATRIX_PASSWORD"])
    joined = await client.join(OPS)
    return client, joined.room_id


async def greeter(homeserver: str) -> None:
    client, ops = await login(homeserver, "greeter")
    await client.sync(timeout=30000)  # skip the backlog (old joins)

    async def joined(room: MatrixRoom, event: RoomMemberEvent) -> None:
        if room.room_id != ops or event.membership != "join" or event.prev_membership == "join":
            return
        name = room.user_name(event.state_key) or event.state_key
        content = {"msgtype": "m.text", "body": f"Welcome, {name}! Say !help to the roll-bot."}
        await client.room_send(ops, "m.room.message", content)

    client.add_event_callback(joined, RoomMemberEvent)
    try:
        await client.sync_forever(timeout=30000)
    finally:
        await client.close()


async def notify(homeserver: str, text: str) -> None:
    client, ops = await login(homeserver, "notifier")
    try:
        content = {"msgtype": "m.text", "body": text}
        await client.room_send(ops, "m.room.message", content)
    finally:
        await client.close()


if __name__ == "__main__":
    homeserver, words = sys.argv[1], sys.argv[2:]
    asyncio.run(notify(homeserver, " ".join(words)) if words else greeter(homeserver))
