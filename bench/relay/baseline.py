"""The baseline: a bare `websockets.broadcast` room server with no auth, checks or storage.

A client sends ``{"room": name}`` first (answered ``{"type":"joined"}``); every later text
frame is broadcast unchanged to the room's other members and answered ``{"type":"sent"}``,
mirroring the relay's send -> message + sent without anything the relay adds.

    python bench/relay/baseline.py --port 0   # prints ws://127.0.0.1:PORT/
"""

import argparse
import asyncio
import json
import signal
import sys

from websockets.asyncio.server import ServerConnection, broadcast, serve
from websockets.exceptions import ConnectionClosed

ROOMS: dict[str, set[ServerConnection]] = {}
SENT = b'{"type":"sent"}'


async def handler(conn: ServerConnection) -> None:
    room = json.loads(await conn.recv())["room"]
    members = ROOMS.setdefault(room, set())
    members.add(conn)
    await conn.send(b'{"type":"joined"}', text=True)
    try:
        while True:
            message = await conn.recv(decode=False)
            broadcast([m for m in members if m is not conn], message, text=True)
            await conn.send(SENT, text=True)
    except ConnectionClosed:
        pass
    finally:
        members.discard(conn)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with serve(handler, "127.0.0.1", args.port, compression=None, max_size=2**16) as server:
        port = server.sockets[0].getsockname()[1]
        sys.stdout.write(f"ws://127.0.0.1:{port}/\n")
        sys.stdout.flush()
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(main())
