"""Sending and fetching encrypted files: the steps between a path and a room message.

Sending: the file is encrypted under a fresh key into an anonymous temporary file
(ciphertext only, deleted when closed), so the upload can resume from any offset the
relay reports; then the blob is uploaded; only then is the ``file`` message, which
carries the key, queued like any other message. Fetching: the blob is streamed
through the ``FileDecryptor`` into a ``PendingFile`` that becomes the saved file only
if every chunk and the signed hash checked.

Either way a failure or a cancellation leaves nothing behind: the temporary file is
closed (so deleted), the partial download removed, the partial upload deleted on the
relay (and if that request cannot go out, the relay's sweep removes it later).
"""

import asyncio
import contextlib
import mimetypes
import os
import ssl
import stat
import tempfile
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from e2echat.client.downloads import PendingFile, default_download_dir, safe_file_name
from e2echat.client.errors import TransferError
from e2echat.client.models import FileInfo
from e2echat.client.progress import Progress, ProgressMeter
from e2echat.client.transfer import download_blob, upload_blob
from e2echat.crypto.errors import FileError, PayloadError
from e2echat.crypto.files import FileDecryptor, FileEncryptor, blob_size, new_file_key
from e2echat.crypto.payload import MAX_CAPTION_CHARS, File, check_file_name
from e2echat.protocol import BlobDownload, BlobTicket, BlobUpload, ClientFrame

Request = Callable[[ClientFrame], Awaitable[BlobTicket]]
"""Sends a request on the chat connection and returns its `blob_ticket`."""
DeleteBlob = Callable[[bytes], Awaitable[None]]
"""Deletes one of our blobs on the relay (an upload that will not be completed)."""
READ_SIZE = 1024 * 1024
DEFAULT_TYPE = "application/octet-stream"


@dataclass(slots=True)
class SealedFile:
    """A file encrypted for upload: the ciphertext (in ``blob``) and what opens it."""

    blob: IO[bytes] = field(repr=False)
    key: bytes = field(repr=False)
    hash: bytes = field(repr=False)
    size: int
    name: str
    media_type: str


def _label(path: Path) -> str:
    """The name others see: the file's own, made safe if it would be refused."""
    try:
        check_file_name(path.name)
    except PayloadError:
        return safe_file_name(path.name)
    return path.name


def _media_type(path: Path) -> str:
    guessed, _ = mimetypes.guess_type(path.name, strict=False)
    return guessed.lower() if guessed and "/" in guessed else DEFAULT_TYPE


class SealStopped(Exception):  # noqa: N818 (not an error: a cancellation)
    """``seal_file`` saw its stop flag (the send was cancelled) and gave up."""


def seal_file(path: Path, stop: threading.Event | None = None) -> SealedFile:
    """Encrypt ``path`` into a temporary file (blocking: run it in a thread).

    Raises ``TransferError`` if the file cannot be read, is not a regular file, or
    changes size while it is read, and ``SealStopped`` once ``stop`` is set.
    """
    try:
        if not stat.S_ISREG(path.stat().st_mode):  # before open: a FIFO would block it
            raise TransferError(f"{path} is not a regular file.")
        source = open(path, "rb")  # noqa: SIM115 (closed below)
    except OSError as exc:
        raise TransferError(f"Cannot read {path}: {exc.strerror or exc}.") from None
    with source:
        info = os.fstat(source.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise TransferError(f"{path} is not a regular file.")
        key = new_file_key()
        encryptor = FileEncryptor(key, info.st_size)
        sealed = tempfile.TemporaryFile()  # noqa: SIM115 (owned by the SealedFile)
        try:
            while piece := source.read(READ_SIZE):
                if stop is not None and stop.is_set():
                    sealed.close()
                    raise SealStopped
                sealed.write(encryptor.update(piece))
            sealed.write(encryptor.finish())
        except FileError:
            sealed.close()
            raise TransferError(f"{path} changed while it was being sent.") from None
        except OSError as exc:
            sealed.close()
            raise TransferError(f"Cannot read {path}: {exc.strerror or exc}.") from None
    sealed.flush()
    return SealedFile(sealed, key, encryptor.hash, info.st_size, _label(path), _media_type(path))


async def seal(path: Path) -> SealedFile:
    """``seal_file`` in a thread; cancelled, it stops the thread and keeps nothing."""
    stop = threading.Event()
    work = asyncio.ensure_future(asyncio.to_thread(seal_file, path, stop))
    try:
        return await asyncio.shield(work)
    except asyncio.CancelledError:
        stop.set()
        with contextlib.suppress(SealStopped, TransferError, asyncio.CancelledError):
            (await work).blob.close()  # finished before it saw the flag
        raise


async def upload(
    relay_url: str,
    room: bytes,
    sealed: SealedFile,
    request: Request,
    delete: DeleteBlob,
    *,
    caption: str,
    now: int,
    progress: Progress | None,
    tls: ssl.SSLContext | None = None,
) -> File:
    """Upload a sealed file for ``room``; the ``file`` payload to send once it is stored.

    If it fails or is cancelled, the upload begun on the relay is deleted.
    """
    if len(caption) > MAX_CAPTION_CHARS:
        raise TransferError(f"A caption may be at most {MAX_CAPTION_CHARS} characters.")
    total = blob_size(sealed.size)
    meter = ProgressMeter("upload", total)
    reserved: list[bytes] = []

    async def ticket() -> BlobTicket:
        resume = reserved[0] if reserved else None
        answer = await request(BlobUpload(room=room, size=total, blob=resume))
        reserved[:] = [answer.blob]
        return answer

    def advance(done: int) -> None:
        if progress is not None:
            progress(meter.update(done))

    try:
        blob = await upload_blob(
            relay_url, ticket, sealed.blob, total, advance=advance, ssl_context=tls
        )
    except BaseException:
        if reserved:
            await _abandon(delete, reserved[0])
        raise
    return File(
        blob=blob,
        key=sealed.key,
        hash=sealed.hash,
        size=sealed.size,
        name=sealed.name,
        type=sealed.media_type,
        ts=now,
        caption=caption,
    )


async def _abandon(delete: DeleteBlob, blob: bytes) -> None:
    """Delete an upload we give up on, shielded from the cancellation that may be why."""
    with contextlib.suppress(Exception, asyncio.CancelledError):
        await asyncio.shield(delete(blob))


async def download(
    relay_url: str,
    room: bytes,
    info: FileInfo,
    request: Request,
    *,
    folder: Path | None,
    progress: Progress | None,
    tls: ssl.SSLContext | None = None,
) -> Path:
    """Fetch, check and save the file of a message; the path it was saved under.

    A failure or cancellation removes what was written, even a file just renamed.
    """
    target = folder if folder is not None else default_download_dir()
    try:
        pending = PendingFile(target, info.name)  # two small file operations, no thread
    except OSError as exc:
        raise TransferError(f"Cannot save into {target}: {exc.strerror or exc}.") from None
    decryptor = FileDecryptor(info.key, info.size, info.hash)
    meter = ProgressMeter("download", blob_size(info.size))

    async def ticket() -> BlobTicket:
        return await request(BlobDownload(room=room, blob=info.blob))

    def advance(done: int) -> None:
        if progress is not None:
            progress(meter.update(done))

    try:
        await download_blob(
            relay_url, ticket, decryptor, pending.write, advance=advance, ssl_context=tls
        )
        commit = asyncio.ensure_future(asyncio.to_thread(pending.commit))
        try:
            return await asyncio.shield(commit)
        except asyncio.CancelledError:
            await asyncio.wait([commit])  # let the rename finish before it is undone
            raise
    except BaseException:
        pending.discard()
        raise
