"""Sending and fetching encrypted files: the steps between a path and a room message.

Sending: the file is encrypted under a fresh key into an anonymous temporary file
(ciphertext only, deleted when closed), so the upload can resume from any offset the
relay reports; then the blob is uploaded; only then is the ``file`` message, which
carries the key, queued like any other message. Fetching: the blob is streamed
through the ``FileDecryptor`` into a ``PendingFile`` that becomes the saved file only
if every chunk and the signed hash checked.
"""

import asyncio
import mimetypes
import os
import stat
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from e2echat.client.downloads import PendingFile, default_download_dir, safe_file_name
from e2echat.client.errors import TransferError
from e2echat.client.models import FileInfo
from e2echat.client.transfer import Progress, download_blob, upload_blob
from e2echat.crypto.errors import FileError, PayloadError
from e2echat.crypto.files import FileDecryptor, FileEncryptor, blob_size, new_file_key
from e2echat.crypto.payload import MAX_CAPTION_CHARS, File, check_file_name
from e2echat.protocol import BlobDownload, BlobTicket, BlobUpload, ClientFrame

Request = Callable[[ClientFrame], Awaitable[BlobTicket]]
"""Sends a request on the chat connection and returns its `blob_ticket`."""
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


def seal_file(path: Path) -> SealedFile:
    """Encrypt ``path`` into a temporary file (blocking: run it in a thread).

    Raises ``TransferError`` if the file cannot be read, is not a regular file, or
    changes size while it is read.
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


async def upload(
    relay_url: str,
    room: bytes,
    sealed: SealedFile,
    request: Request,
    *,
    caption: str,
    now: int,
    progress: Progress | None,
) -> File:
    """Upload a sealed file for ``room``; the ``file`` payload to send once it is stored."""
    if len(caption) > MAX_CAPTION_CHARS:
        raise TransferError(f"A caption may be at most {MAX_CAPTION_CHARS} characters.")
    total = blob_size(sealed.size)
    reserved: list[bytes] = []

    async def ticket() -> BlobTicket:
        resume = reserved[0] if reserved else None
        answer = await request(BlobUpload(room=room, size=total, blob=resume))
        reserved[:] = [answer.blob]
        return answer

    blob = await upload_blob(relay_url, ticket, sealed.blob, total, progress=progress)
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


async def download(
    relay_url: str,
    room: bytes,
    info: FileInfo,
    request: Request,
    *,
    folder: Path | None,
    progress: Progress | None,
) -> Path:
    """Fetch, check and save the file of a message; the path it was saved under."""
    target = folder if folder is not None else default_download_dir()
    try:
        pending = await asyncio.to_thread(PendingFile, target, info.name)
    except OSError as exc:
        raise TransferError(f"Cannot save into {target}: {exc.strerror or exc}.") from None
    decryptor = FileDecryptor(info.key, info.size, info.hash)

    async def ticket() -> BlobTicket:
        return await request(BlobDownload(room=room, blob=info.blob))

    try:
        await download_blob(relay_url, ticket, decryptor, pending.write, progress=progress)
        return await asyncio.to_thread(pending.commit)
    except BaseException:
        await asyncio.to_thread(pending.discard)
        raise
