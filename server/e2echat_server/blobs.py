"""The relay's blob store: encrypted files, as opaque bytes, one file each under a folder.

A blob is ciphertext the relay cannot read (docs/crypto.md section 12); what the relay
knows of it is what it must enforce: the room it belongs to (only that room's members
may fetch it), its uploader (for quotas), its declared size (an upload may not exceed
it, and is complete only when it reaches it) and its age (blobs expire like history).

Layout, under ``<root>/``: ``<id>.part`` while an upload is in progress (appended to,
resumable from its length), ``<id>.blob`` once complete (renamed only after an fsync,
so a crash never leaves a short blob that looks whole), and ``<id>.meta`` (JSON, written
atomically before the first byte). The folder is the truth: metadata is read from it
for every transfer, and an index in memory (for quotas and sweeps) is brought up to it
by listing it, so several relay processes may share one folder. A crash's leftovers (a
``.part`` or ``.meta`` without its partner) are removed at start once an hour old.
Every method is blocking file I/O: callers run it in a thread.

The folder may be shared by several relay processes (a scale-out engine over NFS or a
similar shared directory), provided they share it whole; docs/server.md says how.
"""

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import msgspec

from e2echat.protocol import BLOB_ID_BYTES, ErrorCode, ProtocolError
from e2echat.protocol.constants import ROOM_ID_BYTES


class BlobMeta(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What the relay records of one blob (none of it is secret)."""

    room: bytes
    owner: bytes
    size: int
    created: int
    complete: bool = False


@dataclass(frozen=True, slots=True)
class BlobLimits:
    """``max_size``: largest blob; ``quota``: bytes one uploader may hold at once."""

    max_size: int
    quota: int


ORPHAN_AGE_S = 3600
"""A data file without metadata (or the reverse) this old is a crash's leftover."""
_meta_decoder = msgspec.json.Decoder(BlobMeta)
_meta_encoder = msgspec.json.Encoder()


class BlobStore:
    """Blobs under ``root``; thread-safe, since uploads and downloads run in threads."""

    def __init__(self, root: Path, limits: BlobLimits) -> None:
        self.root = root
        self.limits = limits
        self._lock = threading.Lock()
        self._index: dict[bytes, BlobMeta] = {}
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._drop_orphans(time.time() - ORPHAN_AGE_S)
        self._refresh()

    def _path(self, blob: bytes, suffix: str) -> Path:
        return self.root / f"{blob.hex()}{suffix}"

    def _read_meta(self, blob: bytes) -> BlobMeta | None:
        try:
            return _meta_decoder.decode(self._path(blob, ".meta").read_bytes())
        except (msgspec.DecodeError, OSError):
            return None

    def _drop_orphans(self, older_than: float) -> None:
        """Remove data without metadata and metadata without data (a crash mid-way).

        Only files older than ``older_than`` (epoch s): another node sharing the folder
        may be between the two writes of ``begin`` right now.
        """
        names = {p.name for p in self.root.iterdir()}
        for path in self.root.iterdir():
            stem, suffix = path.stem, path.suffix
            partner = {".meta": (f"{stem}.part", f"{stem}.blob")}.get(suffix, (f"{stem}.meta",))
            if suffix not in (".meta", ".part", ".blob", ".meta-new"):
                continue
            orphan = suffix == ".meta-new" or not any(name in names for name in partner)
            with contextlib.suppress(OSError):
                if orphan and path.stat().st_mtime < older_than:
                    path.unlink()

    def _refresh(self) -> None:
        """Bring the index up to the folder, which other nodes may write to as well."""
        present = {bytes.fromhex(p.stem) for p in self.root.glob("*.meta") if _is_id(p.stem)}
        with self._lock:
            for gone in self._index.keys() - present:
                del self._index[gone]
            new = present - self._index.keys()
        for blob in new:
            meta = self._read_meta(blob)
            if meta is not None:
                with self._lock:
                    self._index[blob] = meta

    def _write_meta(self, blob: bytes, meta: BlobMeta) -> None:
        target = self._path(blob, ".meta")
        temp = target.with_suffix(".meta-new")
        with open(temp, "wb") as handle:
            handle.write(_meta_encoder.encode(meta))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, target)

    def used(self, owner: bytes) -> int:
        """Bytes ``owner`` holds, counting uploads in progress at their declared size."""
        self._refresh()
        with self._lock:
            return sum(m.size for m in self._index.values() if m.owner == owner)

    def begin(self, blob: bytes, room: bytes, owner: bytes, size: int, now: int) -> None:
        """Reserve a new blob of ``size`` bytes, or raise ``ProtocolError`` (size, quota)."""
        if len(blob) != BLOB_ID_BYTES or len(room) != ROOM_ID_BYTES:
            raise ProtocolError(ErrorCode.BAD_FRAME, "A blob id is 16 bytes and a room id 16.")
        if not 0 <= size <= self.limits.max_size:
            raise ProtocolError(
                ErrorCode.TOO_LARGE,
                f"A file may be at most {self.limits.max_size} bytes on this relay.",
            )
        self._refresh()
        with self._lock:
            held = sum(m.size for m in self._index.values() if m.owner == owner)
            if held + size > self.limits.quota:
                raise ProtocolError(
                    ErrorCode.QUOTA_EXCEEDED,
                    f"This upload would hold {held + size} bytes; the quota is "
                    f"{self.limits.quota} bytes per user. Delete older files first.",
                )
            meta = BlobMeta(room=room, owner=owner, size=size, created=now)
            self._index[blob] = meta
        self._write_meta(blob, meta)
        self._path(blob, ".part").touch(mode=0o600)

    def meta(self, blob: bytes) -> BlobMeta | None:
        """The blob's metadata, or None if there is no such blob (read from the folder,
        which is the truth when several nodes share it)."""
        return self._read_meta(blob)

    def offset(self, blob: bytes) -> int:
        """How many bytes of an upload in progress are stored (where to resume)."""
        return self._path(blob, ".part").stat().st_size

    def upload(self, blob: bytes) -> BlobMeta:
        """The metadata of an upload in progress, or ``no_such_blob``."""
        meta = self.meta(blob)
        if meta is None or meta.complete:
            raise ProtocolError(
                ErrorCode.NO_SUCH_BLOB, "There is no upload in progress with this id."
            )
        return meta

    def append(self, blob: bytes, data: bytes, meta: BlobMeta | None = None) -> int:
        """Append ``data`` to an upload in progress; return the new length.

        ``meta`` (from ``upload``) saves reading the metadata again for every piece.
        """
        meta = meta or self.upload(blob)
        try:  # never "a": a piece in flight must not bring back a deleted upload
            handle = open(self._path(blob, ".part"), "r+b")  # noqa: SIM115 (with below)
        except FileNotFoundError:
            raise ProtocolError(ErrorCode.NO_SUCH_BLOB, "This upload was deleted.") from None
        with handle:
            length = handle.seek(0, os.SEEK_END) + len(data)
            if length > meta.size:
                raise ProtocolError(
                    ErrorCode.TOO_LARGE,
                    f"The upload is longer than the {meta.size} bytes it declared.",
                )
            handle.write(data)
        return length

    def complete(self, blob: bytes) -> None:
        """Make a fully uploaded blob durable and fetchable."""
        meta = self.upload(blob)
        part = self._path(blob, ".part")
        if part.stat().st_size != meta.size:
            raise ProtocolError(
                ErrorCode.BAD_FRAME, "The upload is shorter than the size it declared."
            )
        with open(part, "rb") as handle:
            os.fsync(handle.fileno())
        done = msgspec.structs.replace(meta, complete=True)
        os.replace(part, self._path(blob, ".blob"))
        self._write_meta(blob, done)
        with self._lock:
            self._index[blob] = done
        _fsync_dir(self.root)

    def read(self, blob: bytes, offset: int, piece: int) -> Iterator[bytes]:
        """The complete blob's bytes from ``offset``, in pieces of at most ``piece``."""
        meta = self.meta(blob)
        if meta is None or not meta.complete:
            raise ProtocolError(ErrorCode.NO_SUCH_BLOB, "There is no such file on this relay.")
        if not 0 <= offset <= meta.size:
            raise ProtocolError(ErrorCode.BAD_FRAME, f"The offset must be 0 to {meta.size}.")
        with open(self._path(blob, ".blob"), "rb") as handle:
            handle.seek(offset)
            while chunk := handle.read(piece):
                yield chunk

    def delete(self, blob: bytes) -> bool:
        """Remove a blob, complete or not; whether there was one."""
        with self._lock:
            self._index.pop(blob, None)
        existed = self._path(blob, ".meta").exists()
        for suffix in (".blob", ".part", ".meta"):
            self._path(blob, suffix).unlink(missing_ok=True)
        return existed

    def delete_where(self, doomed: Callable[[BlobMeta], bool]) -> int:
        """Remove every blob whose metadata ``doomed`` accepts; how many."""
        self._refresh()
        with self._lock:
            blobs = [blob for blob, meta in self._index.items() if doomed(meta)]
        return sum(self.delete(blob) for blob in blobs)


def _is_id(stem: str) -> bool:
    return len(stem) == 2 * BLOB_ID_BYTES and all(c in "0123456789abcdef" for c in stem)


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):  # not every filesystem lets a directory be synced
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
