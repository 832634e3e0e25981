"""Encrypted files on the relay: tickets on the chat connection, bytes on ``/blob``.

The chat connection is where a user is authenticated and where membership is known, so
that is where a transfer is allowed: `blob_upload` and `blob_download` check the room,
the size and the quota and answer with a one-time ticket. The ``/blob`` endpoint then
only checks the ticket and moves bytes, one transfer per connection, one piece at a
time with the file I/O in a thread, so no transfer holds more than a piece in memory
and none delays chat traffic. docs/protocol.md section 11.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

from nacl.bindings import crypto_generichash_blake2b_salt_personal as blake2b
from nacl.utils import random as random_bytes
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from e2echat.protocol import (
    BLOB_ID_BYTES,
    BLOB_TICKET_S,
    MAX_BLOB_PIECE,
    BlobDelete,
    BlobDownload,
    BlobTicket,
    BlobUpload,
    CloseCode,
    Error,
    ErrorCode,
    Ok,
    ProtocolError,
    Resume,
    Serving,
    StartDownload,
    StartUpload,
    Stored,
    decode_blob_client_frame,
    encode_blob_frame,
)
from e2echat_server.blobs import BlobStore
from e2echat_server.clock import now_ms
from e2echat_server.directory import Directory
from e2echat_server.logs import LOGGER, event, fingerprint
from e2echat_server.output import Output
from e2echat_server.session import Session, peer

Kind = Literal["upload", "download"]
READ_PIECE = 256 * 1024
IDLE_TIMEOUT_S = 60.0
"""An upload or download that moves nothing for this long is closed."""
MAX_TRANSFERS_PER_KEY = 8


@dataclass(frozen=True, slots=True)
class Ticket:
    kind: Kind
    blob: bytes
    owner: bytes
    expires: float


class Tickets:
    """One-time tickets, found by the hash of their token (never compared as bytes)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._by_hash: dict[bytes, Ticket] = {}

    def issue(self, kind: Kind, blob: bytes, owner: bytes) -> bytes:
        """A fresh token for one ``kind`` transfer of ``blob`` by ``owner``."""
        self.expire()
        held = sum(1 for t in self._by_hash.values() if t.owner == owner)
        if held >= MAX_TRANSFERS_PER_KEY:
            raise ProtocolError(
                ErrorCode.RATE_LIMITED, "Too many file transfers waiting; finish some first."
            )
        token = random_bytes(32)
        self._by_hash[blake2b(token, digest_size=32)] = Ticket(
            kind, blob, owner, self._clock() + BLOB_TICKET_S
        )
        return token

    def take(self, token: bytes, kind: Kind) -> Ticket:
        """The ticket of ``token`` for ``kind``, used up; ProtocolError if none is valid."""
        ticket = self._by_hash.pop(blake2b(token, digest_size=32), None)
        if ticket is None or ticket.kind != kind or ticket.expires < self._clock():
            raise ProtocolError(
                ErrorCode.UNAUTHENTICATED, "This file ticket is unknown, used or expired."
            )
        return ticket

    def expire(self) -> None:
        now = self._clock()
        for digest in [d for d, t in self._by_hash.items() if t.expires < now]:
            del self._by_hash[digest]


class BlobService:
    """The three chat requests about blobs, and the ``/blob`` endpoint."""

    def __init__(self, blobs: BlobStore, directory: Directory, output: Output) -> None:
        self.blobs = blobs
        self._directory = directory
        self._output = output
        self.tickets = Tickets(asyncio.get_running_loop().time)
        self._uploading: set[bytes] = set()

    # Chat requests -----------------------------------------------------------------

    async def upload(self, session: Session, frame: BlobUpload) -> None:
        self._directory.member_room(session.key, frame.room)
        blobs = self.blobs
        if frame.blob is None:
            blob = random_bytes(BLOB_ID_BYTES)
            await asyncio.to_thread(
                blobs.begin, blob, frame.room, session.key, frame.size, now_ms()
            )
            offset = 0
        else:
            blob = frame.blob
            meta = blobs.meta(blob)
            if (
                meta is None
                or meta.complete
                or meta.owner != session.key
                or (meta.room, meta.size) != (frame.room, frame.size)
            ):
                raise ProtocolError(
                    ErrorCode.NO_SUCH_BLOB, "There is no upload of yours in progress to resume."
                )
            offset = await asyncio.to_thread(blobs.offset, blob)
        token = self.tickets.issue("upload", blob, session.key)
        self._output.reply(
            session,
            BlobTicket(id=frame.id, blob=blob, token=token, size=frame.size, offset=offset),
        )

    async def download(self, session: Session, frame: BlobDownload) -> None:
        self._directory.member_room(session.key, frame.room)
        meta = self.blobs.meta(frame.blob)
        if meta is None or not meta.complete or meta.room != frame.room:
            raise ProtocolError(ErrorCode.NO_SUCH_BLOB, "There is no such file in that room.")
        token = self.tickets.issue("download", frame.blob, session.key)
        self._output.reply(
            session,
            BlobTicket(id=frame.id, blob=frame.blob, token=token, size=meta.size, offset=0),
        )

    async def delete(self, session: Session, frame: BlobDelete) -> None:
        meta = self.blobs.meta(frame.blob)
        if meta is None or meta.owner != session.key:
            raise ProtocolError(ErrorCode.NO_SUCH_BLOB, "There is no file of yours with that id.")
        await asyncio.to_thread(self.blobs.delete, frame.blob)
        self._output.reply(session, Ok(id=frame.id))

    def handlers(self) -> dict[type[Any], Callable[[Session, Any], Awaitable[None]]]:
        """The chat requests this service answers, for the request table."""
        return {BlobUpload: self.upload, BlobDownload: self.download, BlobDelete: self.delete}

    # The /blob endpoint ----------------------------------------------------------

    async def serve(self, conn: ServerConnection, open_timeout: float) -> None:
        """One transfer: the opening frame, then the bytes; errors close with 1008."""
        conn.protocol.max_message_size = MAX_BLOB_PIECE
        try:
            raw = await asyncio.wait_for(conn.recv(), open_timeout)
            if isinstance(raw, bytes):
                raise ProtocolError(ErrorCode.BAD_FRAME, "Open a transfer with a text frame.")
            frame = decode_blob_client_frame(raw)
            if isinstance(frame, StartUpload):
                await self._receive(conn, self.tickets.take(frame.token, "upload"))
            else:
                await self._send(conn, self.tickets.take(frame.token, "download"), frame)
        except ProtocolError as exc:
            await _refuse(conn, exc.code, exc.message)
        except TimeoutError:
            await _refuse(conn, ErrorCode.BAD_FRAME, "The transfer moved nothing for too long.")
        except ConnectionClosed:
            pass

    async def _receive(self, conn: ServerConnection, ticket: Ticket) -> None:
        blob, blobs = ticket.blob, self.blobs
        if blob in self._uploading:
            raise ProtocolError(ErrorCode.BAD_FRAME, "This file is being uploaded already.")
        meta = await asyncio.to_thread(blobs.upload, blob)
        self._uploading.add(blob)
        try:
            length = await asyncio.to_thread(blobs.offset, blob)
            await conn.send(encode_blob_frame(Resume(offset=length)), text=True)
            while length < meta.size:
                piece = await asyncio.wait_for(conn.recv(), IDLE_TIMEOUT_S)
                if not isinstance(piece, bytes):
                    raise ProtocolError(ErrorCode.BAD_FRAME, "File bytes go in binary frames.")
                length = await asyncio.to_thread(blobs.append, blob, piece, meta)
            await asyncio.to_thread(blobs.complete, blob)
        finally:
            self._uploading.discard(blob)
        event(LOGGER, "blob_stored", key=fingerprint(ticket.owner), bytes=meta.size)
        await conn.send(encode_blob_frame(Stored(blob=blob)), text=True)
        await conn.close(CloseCode.NORMAL)

    async def _send(self, conn: ServerConnection, ticket: Ticket, frame: StartDownload) -> None:
        meta = self.blobs.meta(ticket.blob)
        if meta is None or not meta.complete:
            raise ProtocolError(ErrorCode.NO_SUCH_BLOB, "There is no such file on this relay.")
        if frame.offset > meta.size:
            raise ProtocolError(ErrorCode.BAD_FRAME, f"The offset must be 0 to {meta.size}.")
        await conn.send(encode_blob_frame(Serving(size=meta.size, offset=frame.offset)), text=True)
        pieces = self.blobs.read(ticket.blob, frame.offset, READ_PIECE)
        while piece := await asyncio.to_thread(_next_piece, pieces):
            await asyncio.wait_for(conn.send(piece), IDLE_TIMEOUT_S)  # waits for the drain
        await conn.close(CloseCode.NORMAL)

    def sweep(self, history_age_s: int) -> int:
        """Drop expired tickets, and the blobs older than history or of rooms that no
        longer exist (deleted, or left by their last member). Blocking: run in a thread."""
        self.tickets.expire()
        cutoff = now_ms() - history_age_s * 1000
        rooms = set(self._directory.rooms)
        return self.blobs.delete_where(lambda m: m.created < cutoff or m.room not in rooms)


def _next_piece(pieces: Iterator[bytes]) -> bytes:
    return next(pieces, b"")


async def _refuse(conn: ServerConnection, code: ErrorCode, message: str) -> None:
    event(LOGGER, "blob_refused", logging.INFO, peer=peer(conn), code=code.value)
    try:
        await conn.send(encode_blob_frame(Error(code=code, message=message)), text=True)
        await conn.close(CloseCode.POLICY, "File transfer refused.")
    except ConnectionClosed:
        pass
