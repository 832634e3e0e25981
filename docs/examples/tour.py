"""A tour of the API: a program that opens its own Client instead of using e2echat.run.

E2ECHAT_PASSPHRASE=... uv run python docs/examples/tour.py ws://127.0.0.1:8765/
"""

import os
import sys

import e2echat


async def tour(url: str) -> None:
    identity = e2echat.Identity.load_or_create()  # default_identity_path(), made once
    async with e2echat.Client(url, identity=identity, name="tour") as chat:
        ops = await chat.room("ops", create=True, password=os.environ["OPS_PASSWORD"])
        lobby = await chat.room("lobby", create=True)  # open room: anyone admitted reads it
        hideout = await chat.room("hideout", create=True, access="invite")  # invite room
        link = hideout.invite()  # "ws://.../hideout#..." is a secret: share it carefully
        print(f"{len(chat.rooms)} rooms; invite: {len(link)} characters")

        msg = await ops.send("deploy done")
        print(msg.seq, msg.sent_at)  # the relay's number and time for it
        print([member.name for member in await lobby.members()])
        print([old.text for old in await ops.history(limit=10)])  # from the local store

        await chat.set_status("away", "lunch")
        print([summary.name for summary in await chat.list_rooms()])
        await lobby.leave()  # its keys and history are deleted from this device
        print(await chat.flush(), "messages still queued")  # 0: the relay has them all


if __name__ == "__main__":
    e2echat.run(tour(sys.argv[1]))
