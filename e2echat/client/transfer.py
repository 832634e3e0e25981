"""Moving blobs over the relay's blob endpoint (docs/protocol.md section 11).

Each transfer is its own WebSocket connection to ``<relay>/blob``, opened with a
one-time ticket from the chat connection, so a large file never delays a chat message.
Both directions hold a bounded amount of memory: the upload reads its (already
encrypted) source in pieces and awaits each send's drain; the download feeds each
binary frame through the ``FileDecryptor`` and writes the plaintext out at once.

This module is I/O only; tickets, keys and what to do with the result are the caller's.
"""

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import IO

import websockets
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

from e2echat.client.connection import tls_option
from e2echat.client.errors import TransferError
from e2echat.crypto.errors import FileError
from e2echat.crypto.files import FileDecryptor
from e2echat.protocol import (
    BLOB_PATH,
    HANDSHAKE_TIMEOUT_S,
    MAX_BLOB_PIECE,
    SUBPROTOCOL,
    BlobTicket,
    Error,
    ProtocolError,
    Resume,
    Serving,
    StartDownload,
    StartUpload,
    Stored,
    decode_blob_relay_frame,
    encode_blob_frame,
)

Advance = Callable[[int], object]
"""Called with the bytes done (of the blob) after every piece."""
GetTicket = Callable[[], Awaitable[BlobTicket]]
"""Fetches a fresh ticket: a transfer that drops resumes with a new one."""
PIECE = 256 * 1024
RETRIES = 3


def blob_url(relay_url: str) -> str:
    """The blob endpoint's URL on the same relay as ``relay_url``."""
    return relay_url.split("?", 1)[0].rstrip("/") + BLOB_PATH


def _connect(url: str, ssl_context: ssl.SSLContext | None) -> "connect":
    return connect(
        url,
        subprotocols=[Subprotocol(SUBPROTOCOL)],
        max_size=MAX_BLOB_PIECE + 1024,
        open_timeout=HANDSHAKE_TIMEOUT_S,
        ssl=tls_option(url, ssl_context),
        compression=None,  # ciphertext does not compress
    )


@contextlib.asynccontextmanager
async def _transfer(
    url: str, ssl_context: ssl.SSLContext | None
) -> AsyncIterator[ClientConnection]:
    """One blob connection. Cancelled, it is aborted rather than closed: a closing
    handshake waits for a relay that may be stalled (its reads paused by a full
    buffer), and a cancel must not wait the close timeout for it."""
    async with _connect(url, ssl_context) as ws:
        try:
            yield ws
        except asyncio.CancelledError:
            ws.transport.abort()
            raise


async def _control(ws: ClientConnection) -> Resume | Stored | Serving:
    raw = await ws.recv()
    if isinstance(raw, bytes):
        raise TransferError("The relay sent file bytes where it should have answered.")
    try:
        frame = decode_blob_relay_frame(raw)
    except ProtocolError as exc:
        raise TransferError(f"The relay's answer is not valid: {exc.message}") from None
    if isinstance(frame, Error):
        raise TransferError(frame.message, code=frame.code)
    return frame


async def upload_blob(
    relay_url: str,
    get_ticket: GetTicket,
    source: IO[bytes],
    size: int,
    *,
    advance: Advance | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> bytes:
    """Upload ``size`` bytes of ``source`` (seekable); return the blob id once stored.

    A dropped connection resumes, with a new ticket, from what the relay kept.
    """
    url = blob_url(relay_url)
    for attempt in range(RETRIES + 1):
        ticket = await get_ticket()
        try:
            async with _transfer(url, ssl_context) as ws:
                await ws.send(encode_blob_frame(StartUpload(token=ticket.token)), text=True)
                resume = await _control(ws)
                if not isinstance(resume, Resume):
                    raise TransferError("The relay did not accept the upload.")
                source.seek(resume.offset)
                done = resume.offset
                if advance is not None:
                    advance(done)
                while done < size:
                    piece = source.read(min(PIECE, size - done))
                    if not piece:
                        raise TransferError("The file to upload ended early.")
                    await ws.send(piece)
                    done += len(piece)
                    if advance is not None:
                        advance(done)
                stored = await _control(ws)
                if not isinstance(stored, Stored):
                    raise TransferError("The relay did not confirm the upload.")
                return stored.blob
        except (OSError, websockets.ConnectionClosed, TimeoutError) as exc:
            if attempt == RETRIES:
                raise TransferError(f"The upload failed: {type(exc).__name__}.") from None
    raise AssertionError("unreachable")


async def download_blob(
    relay_url: str,
    get_ticket: GetTicket,
    decryptor: FileDecryptor,
    sink: Callable[[bytes], object],
    *,
    advance: Advance | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> None:
    """Fetch a blob, check and open it chunk by chunk, and hand the plaintext to ``sink``.

    Raises ``TransferError`` (the relay refused, or the blob does not check: then the
    caller discards what ``sink`` got). A dropped connection resumes where it stopped.
    """
    url = blob_url(relay_url)
    for attempt in range(RETRIES + 1):
        ticket = await get_ticket()
        try:
            async with _transfer(url, ssl_context) as ws:
                opening = StartDownload(token=ticket.token, offset=decryptor.received)
                await ws.send(encode_blob_frame(opening), text=True)
                serving = await _control(ws)
                if not isinstance(serving, Serving) or serving.offset != decryptor.received:
                    raise TransferError("The relay did not serve the file from where we are.")
                if advance is not None:
                    advance(decryptor.received)
                while decryptor.received < serving.size:
                    piece = await ws.recv()
                    if not isinstance(piece, bytes):
                        raise TransferError("The relay sent text where file bytes belong.")
                    sink(decryptor.update(piece))
                    if advance is not None:
                        advance(decryptor.received)
                decryptor.finish()
                return
        except FileError as exc:
            raise TransferError(f"The file does not check: {exc}.") from None
        except (OSError, websockets.ConnectionClosed, TimeoutError) as exc:
            if attempt == RETRIES:
                raise TransferError(f"The download failed: {type(exc).__name__}.") from None
