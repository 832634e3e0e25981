"""A raw protocol-v1 test client: real websockets, PyNaCl signatures, no library code.

Tests of the relay speak the wire format directly so that they pin the relay's behaviour
to docs/protocol.md, not to whatever the client library happens to do.
"""

import asyncio
import socket
import ssl
from collections import deque
from dataclasses import dataclass, field
from typing import Any, TypeVar

import msgspec
from nacl.encoding import RawEncoder
from nacl.hash import blake2b
from nacl.public import PrivateKey
from nacl.signing import SigningKey
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

from e2echat.protocol import (
    SUBPROTOCOL,
    Challenge,
    ClientFrame,
    Error,
    Hello,
    RelayFrame,
    SignedPrekey,
    Welcome,
    decode_relay_frame,
    encode_frame,
    hello_transcript,
    name_transcript,
    prekey_transcript,
)
from e2echat.protocol.statements import pack_name_statement

F = TypeVar("F")
TIMEOUT = 5.0


@dataclass
class Identity:
    """An Ed25519 identity with a signed X25519 prekey, as a client would hold them."""

    name: str
    signing: SigningKey = field(default_factory=SigningKey.generate)
    prekey_id: int = 1
    signs_name: bool = False  # send a name statement in hello

    def __post_init__(self) -> None:
        self.prekey_secret = PrivateKey.generate()

    @property
    def key(self) -> bytes:
        return bytes(self.signing.verify_key)

    def prekey(self, prekey_id: int | None = None) -> SignedPrekey:
        pid = self.prekey_id if prekey_id is None else prekey_id
        public = bytes(self.prekey_secret.public_key)
        sig = self.signing.sign(prekey_transcript(pid, public)).signature
        return SignedPrekey(id=pid, key=public, sig=sig)

    def hello(self, challenge: Challenge, relay: str | None = None) -> Hello:
        prekey = self.prekey()
        transcript = hello_transcript(
            relay or challenge.relay,
            challenge.nonce,
            self.key,
            self.name,
            prekey.id,
            prekey.key,
            prekey.sig,
        )
        return Hello(
            key=self.key,
            name=self.name,
            prekey=prekey,
            sig=self.signing.sign(transcript).signature,
            name_statement=self.name_statement(self.name) if self.signs_name else None,
        )

    def name_statement(self, name: str, issued: int = 1) -> bytes:
        """``name`` signed by this identity (crypto.md 9.6)."""
        sig = self.signing.sign(name_transcript(self.key, name, issued)).signature
        return pack_name_statement(issued, sig, name)


def verifier_for(token: bytes) -> bytes:
    return blake2b(token, digest_size=32, encoder=RawEncoder)


class WireClient:
    """One connection: send frames (or raw data), receive decoded relay frames."""

    def __init__(self, conn: ClientConnection, identity: Identity | None) -> None:
        self.conn = conn
        self.identity = identity
        self.welcome: Welcome | None = None
        self.challenge: Challenge | None = None
        self._stash: deque[RelayFrame] = deque()

    async def send(self, frame: ClientFrame) -> None:
        await self.conn.send(encode_frame(frame), text=True)

    async def send_raw(self, data: str | bytes) -> None:
        await self.conn.send(data)

    async def send_json(self, obj: dict[str, Any]) -> None:
        await self.conn.send(msgspec.json.encode(obj).decode())

    async def _wire(self, within: float) -> RelayFrame:
        data = await asyncio.wait_for(self.conn.recv(), within)
        return decode_relay_frame(data, max_frame=1 << 24)

    async def recv(self, within: float = TIMEOUT) -> RelayFrame:
        """The oldest frame not yet consumed (set-aside ones first, then the wire)."""
        if self._stash:
            return self._stash.popleft()
        return await self._wire(within)

    async def expect(self, kind: type[F], within: float = TIMEOUT) -> F:
        """The next frame, which must be a ``kind``."""
        frame = await self.recv(within)
        assert isinstance(frame, kind), f"expected {kind.__name__}, got {frame!r}"
        return frame

    async def next_of(self, kind: type[F], within: float = TIMEOUT) -> F:
        """The oldest frame of type ``kind``; frames of other types are set aside, in order."""
        for index, frame in enumerate(self._stash):
            if isinstance(frame, kind):
                del self._stash[index]
                return frame
        async with asyncio.timeout(within):
            while True:
                frame = await self._wire(within)
                if isinstance(frame, kind):
                    return frame
                self._stash.append(frame)

    async def request(self, frame: ClientFrame, kind: type[F]) -> F:
        """Send ``frame`` and return its ``kind`` reply; an Error reply fails the test."""
        await self.send(frame)
        reply: object = await self.next_of((kind, Error))  # type: ignore[arg-type]
        if isinstance(reply, Error):
            raise AssertionError(f"relay refused: {reply.code} {reply.message}")
        assert isinstance(reply, kind)
        return reply

    async def error(self, frame: ClientFrame | None = None) -> Error:
        """Send ``frame`` (if any) and return the Error that answers it."""
        if frame is not None:
            await self.send(frame)
        return await self.next_of(Error)

    async def quiet(self, within: float = 0.2) -> None:
        """Assert no new frame arrives on the wire within ``within`` seconds."""
        try:
            frame = await self._wire(within)
        except TimeoutError:
            return
        raise AssertionError(f"unexpected frame {frame!r}")

    async def close(self) -> None:
        await self.conn.close()


async def open_raw(
    url: str,
    ssl_context: ssl.SSLContext | None = None,
    headers: dict[str, str] | None = None,
    sock: socket.socket | None = None,
) -> WireClient:
    """A WebSocket to ``url`` (over ``sock``, a connected socket, if given)."""
    conn = await connect(
        url,
        subprotocols=[Subprotocol(SUBPROTOCOL)],
        compression=None,
        ssl=ssl_context,
        max_size=None,
        additional_headers=headers,
        sock=sock,
    )
    return WireClient(conn, None)


async def login(
    url: str,
    identity: Identity,
    ssl_context: ssl.SSLContext | None = None,
    headers: dict[str, str] | None = None,
    sock: socket.socket | None = None,
) -> WireClient:
    """Connect and authenticate; the client's ``welcome`` is set."""
    client = await open_raw(url, ssl_context, headers, sock)
    client.identity = identity
    client.challenge = await client.expect(Challenge)
    await client.send(identity.hello(client.challenge))
    client.welcome = await client.expect(Welcome)
    return client


async def closed_with(conn: ClientConnection, code: int) -> None:
    """Wait for the relay to close ``conn`` and check the close code."""
    await asyncio.wait_for(conn.wait_closed(), TIMEOUT)
    assert conn.close_code == code
