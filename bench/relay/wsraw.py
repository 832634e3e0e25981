"""A minimal WebSocket client for load generation: parses frames itself, allocates little.

Why not the websockets client: on a 2-core machine the load generator shares the CPU with
the relay, and a full client spends more per received frame than the relay spends per
delivered frame. This one counts room messages on a fast path (a prefix check and, for a
sample, a few bytes of base64) and hands every other frame to a queue.
"""

import asyncio
import base64
import os
import struct
from collections.abc import Callable

MESSAGE_PREFIX = b'{"type":"message"'
BODY_KEY = b'"body":"'


def frame_bytes(payload: bytes, opcode: int = 0x1) -> bytes:
    """A masked client frame. The masking key is random per RFC 6455 but fixed per frame."""
    key = os.urandom(4)
    header = bytes([0x80 | opcode])
    n = len(payload)
    if n < 126:
        header += bytes([0x80 | n])
    elif n < 65536:
        header += bytes([0x80 | 126]) + struct.pack(">H", n)
    else:
        header += bytes([0x80 | 127]) + struct.pack(">Q", n)
    masked = (
        (int.from_bytes(payload, "big") ^ int.from_bytes((key * (n // 4 + 1))[:n], "big")).to_bytes(
            n, "big"
        )
        if n
        else b""
    )
    return header + key + masked


def body_stamp(frame: bytes) -> int:
    """The send time (monotonic ns) carried in the first 8 bytes of a message's body."""
    start = frame.rfind(BODY_KEY) + len(BODY_KEY)
    return int.from_bytes(base64.b64decode(frame[start : start + 12])[:8], "big")


class RawClient(asyncio.Protocol):
    """One connection. ``on_message(frame)`` is called for room messages; others are queued,
    or passed to ``on_other`` once it is set (an open-loop sender counts its `sent`s).
    """

    def __init__(self, on_message: Callable[[bytes], None] | None = None) -> None:
        self.on_message = on_message
        self.on_other: Callable[[bytes], None] | None = None
        self.frames: asyncio.Queue[bytes] = asyncio.Queue()
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.upgraded = asyncio.get_running_loop().create_future()
        self.closed = asyncio.get_running_loop().create_future()
        self.handshake_done = False

    @classmethod
    async def open(
        cls,
        host: str,
        port: int,
        subprotocol: str | None,
        on_message: Callable[[bytes], None] | None = None,
    ) -> "RawClient":
        loop = asyncio.get_running_loop()
        _, client = await loop.create_connection(lambda: cls(on_message), host, port)
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET / HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        )
        if subprotocol:
            request += f"Sec-WebSocket-Protocol: {subprotocol}\r\n"
        assert client.transport is not None
        client.transport.write((request + "\r\n").encode())
        await client.upgraded
        return client

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.upgraded.done():
            self.upgraded.set_exception(ConnectionError("closed during the upgrade"))
        if not self.closed.done():
            self.closed.set_result(None)

    def send(self, payload: bytes) -> None:
        assert self.transport is not None
        self.transport.write(frame_bytes(payload))

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        if not self.handshake_done:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            status = bytes(buffer[: buffer.find(b"\r\n")])
            del buffer[: end + 4]
            if b" 101 " not in status:
                self.upgraded.set_exception(ConnectionError(status.decode()))
                return
            self.handshake_done = True
            self.upgraded.set_result(None)
        pos, size = 0, len(buffer)
        on_message, frames = self.on_message, self.frames
        while size - pos >= 2:
            opcode = buffer[pos] & 0x0F
            n = buffer[pos + 1] & 0x7F
            head = 2
            if n == 126:
                if size - pos < 4:
                    break
                n = int.from_bytes(buffer[pos + 2 : pos + 4], "big")
                head = 4
            elif n == 127:
                if size - pos < 10:
                    break
                n = int.from_bytes(buffer[pos + 2 : pos + 10], "big")
                head = 10
            if size - pos < head + n:
                break
            payload = bytes(buffer[pos + head : pos + head + n])
            pos += head + n
            if opcode == 0x1:
                if on_message is not None and payload.startswith(MESSAGE_PREFIX):
                    on_message(payload)
                elif self.on_other is not None:
                    self.on_other(payload)
                else:
                    frames.put_nowait(payload)
            elif opcode == 0x9:
                assert self.transport is not None
                self.transport.write(frame_bytes(payload, 0xA))
            elif opcode == 0x8:
                self.close()
        del buffer[:pos]
