"""Saving a received file: a safe name, in the chosen folder, never over another file.

A file's name is a label its sender chose, so it is made safe before it touches the
file system: no folder parts (``/``, ``\\``, ``..``), no control, format or bidi
characters, no names Windows reserves for devices, no leading dot (a hidden file) and
no trailing dots or spaces, none of ``<>:"|?*``, at most 255 bytes. The file is written
under a temporary name in the target folder and given its final name only once it
checked whole, with ``O_EXCL`` so an existing file is never replaced: ``report.pdf``
becomes ``report (1).pdf`` when ``report.pdf`` exists.
"""

import contextlib
import os
import unicodedata
from pathlib import Path

import platformdirs

MAX_NAME_BYTES = 255
_UNSAFE = frozenset('<>:"|?*')
"""Characters that other systems (Windows, SMB shares) give a meaning in names."""
_RESERVED = frozenset(
    ["CON", "PRN", "AUX", "NUL"]
    + [f"COM{i}" for i in range(1, 10)]
    + [f"LPT{i}" for i in range(1, 10)]
)


def default_download_dir() -> Path:
    """The platform's downloads folder (``~/Downloads`` on most systems)."""
    return Path(platformdirs.user_downloads_dir())


def safe_file_name(name: str) -> str:
    """A name that stays inside its folder and shows as what it is; never empty."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = "".join(
        "_" if char in _UNSAFE or (unicodedata.category(char)[0] in "CZ" and char != " ") else char
        for char in base
    )
    cleaned = cleaned.strip(" ").rstrip(".").lstrip(".")
    stem = cleaned.split(".", 1)[0].upper()
    if not cleaned or stem in _RESERVED:
        cleaned = f"_{cleaned}" if cleaned else "file"
    while len(cleaned.encode()) > MAX_NAME_BYTES:
        stem, dot, ext = cleaned.rpartition(".")
        keep_ext = dot and stem and len(ext.encode()) < 32
        cleaned = f"{stem[:-1]}.{ext}" if keep_ext else cleaned[:-1]
    return cleaned


def _candidates(name: str) -> "list[str]":
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem:
        stem, ext = name, ""
    suffix = f".{ext}" if ext else ""
    return [name] + [f"{stem} ({n}){suffix}" for n in range(1, 1000)]


def reserve(folder: Path, name: str) -> Path:
    """Create an empty file with a free variant of ``safe_file_name(name)`` in ``folder``.

    The folder is created (0700) if missing. Creation uses ``O_EXCL``, so two downloads
    of the same name never take the same file, and nothing existing is opened.
    """
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    for candidate in _candidates(safe_file_name(name)):
        path = folder / candidate
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            continue
        os.close(fd)
        return path
    raise FileExistsError(f"no free name for {safe_file_name(name)!r} in {folder}")


class PendingFile:
    """A download being written: ``.part`` beside its reserved final name.

    ``commit`` makes it the final file; ``discard`` removes both, so an error leaves
    nothing half-written behind.
    """

    def __init__(self, folder: Path, name: str) -> None:
        self.final = reserve(folder, name)
        self.temp = self.final.with_name(f".{self.final.name}.part")
        self._handle = open(self.temp, "wb")  # noqa: SIM115 (closed by commit or discard)
        os.chmod(self.temp, 0o600)

    def write(self, data: bytes) -> None:
        self._handle.write(data)

    def commit(self) -> Path:
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self._handle.close()
        os.replace(self.temp, self.final)
        return self.final

    def discard(self) -> None:
        self._handle.close()
        for path in (self.temp, self.final):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
