"""Files in the TUI, as text: sizes, a file message's line, a pasted path, progress.

Pure functions over the library's ``FileInfo`` and ``TransferProgress``. A file's name
and type are labels its sender chose, so they go through ``escape_controls`` like any
other text, and nothing here is ever parsed as markup.
"""

import math
import os
from pathlib import Path
from urllib.parse import unquote, urlsplit

from e2echat import FileInfo, TransferProgress
from e2echat_tui.safe import escape_controls

FILE_MARK = "📎"
MAX_NAME_CELLS = 24
MAX_PASTED_PATH = 4096
_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")


def human_size(size: float) -> str:
    """``1536`` → ``1.5 KiB``: binary units, one decimal below 10 of a unit."""
    unit = 0
    while size >= 1024 and unit < len(_UNITS) - 1:
        size /= 1024
        unit += 1
    if unit == 0:
        return f"{int(size)} B"
    return f"{size:.1f} {_UNITS[unit]}" if size < 10 else f"{size:.0f} {_UNITS[unit]}"


def file_line(info: FileInfo, caption: str) -> str:
    """What the timeline shows for a file message: name, size, type, then the caption."""
    line = (
        f"{FILE_MARK} {escape_controls(info.name)} · {human_size(info.size)}"
        f" · {escape_controls(info.media_type)}"
    )
    return line + (f" — {escape_controls(caption, keep_newlines=True)}" if caption else "")


def is_image(info: FileInfo) -> bool:
    return info.media_type.startswith("image/")


def pasted_file(text: str) -> Path | None:
    """The regular file a paste names, or None if it is anything else.

    Terminals paste a dragged file as its path, sometimes quoted (``'a b.png'``),
    with escaped spaces (``a\\ b.png``) or as a ``file://`` URL; ``~`` is the home
    folder. Only one line of printable text that names an existing regular file counts:
    any other paste is text for the composer.
    """
    candidate = text.strip()
    if not candidate or len(candidate) > MAX_PASTED_PATH or not candidate.isprintable():
        return None
    if len(candidate) >= 2 and candidate[0] == candidate[-1] and candidate[0] in "'\"":
        candidate = candidate[1:-1]
    elif candidate.startswith("file://"):
        parts = urlsplit(candidate)
        if parts.netloc not in ("", "localhost"):
            return None
        candidate = unquote(parts.path)
    else:
        candidate = candidate.replace("\\ ", " ")
    if not candidate.startswith(("/", "~")):
        return None  # a relative word ("notes.txt") is more likely a message than a path
    path = Path(os.path.expanduser(candidate))
    try:
        return path if path.is_file() else None
    except OSError:  # too long a name, a loop of links, no permission
        return None


def _duration(seconds: float) -> str:
    seconds = math.ceil(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def transfer_label(name: str, direction: str) -> str:
    """A transfer in the status line: its direction and name (cut when long)."""
    arrow = "↑" if direction == "upload" else "↓"
    label = escape_controls(name)
    if len(label) > MAX_NAME_CELLS:
        label = label[: MAX_NAME_CELLS - 1] + "…"
    return f"{arrow} {label}"


def transfer_detail(progress: TransferProgress | None, direction: str) -> str:
    """How far a transfer is: percent, bytes, rate and time left."""
    if progress is None:  # an upload is first encrypted into a temporary file
        return "encrypting…" if direction == "upload" else "connecting…"
    eta = progress.eta
    left = "—" if eta is None else _duration(eta)
    return (
        f"{progress.fraction:.0%} {human_size(progress.done)}/{human_size(progress.total)}"
        f" {human_size(progress.rate)}/s {left} left"
    )
