import asyncio
import os
import sys

from nio import AsyncClient, MatrixRoom, RoomMessageText


async def main(homeserver: str) -> None:
    client = AsyncClient(homeserver, "@echo-bot:" + os.environ["MATRIX_DOMAIN"])
    await client.login(os.environ["MATRIX_PASSWORD"])
    await client.join("#lobby:" + os.environ["MATRIX_DOMAIN"])
    await client.sync(timeout=30000)  # skip the backlog: callbacks see only what follows

    async def echo(room: MatrixRoom, event: RoomMessageText) -> None:
        if event.sender == client.user_id:
            return
        content = {
            "msgtype": "m.text",
            "body": f"{room.user_name(event.sender)}: {event.body}",
            "m.relates_to": {"m.in_reply_to": {"event_id": event.event_id}},
            "m.mentions": {"user_ids": [event.sender]},
        }
        await client.room_send(room.room_id, "m.room.message", content)

    client.add_event_callback(echo, RoomMessageText)
    try:
        await client.sync_forever(timeout=30000)
    finally:
        await client.close()


asyncio.run(main(sys.argv[1]))
