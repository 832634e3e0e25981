"""The data directory's exclusive lock: one relay per directory, or two diverging copies.

The lock is `flock` on ``<data-dir>/relay.lock``, which holds the holder's pid. The kernel
releases it when the process ends however it ends (SIGKILL included), so a stale file
never blocks a restart; a second relay fails at once and names the holder.
"""

import contextlib
import fcntl
import os
from pathlib import Path

LOCK_NAME = "relay.lock"


class StartRefusedError(Exception):
    """The relay must not start on this data: the message says why and what to do."""


class DataDirLock:
    """An exclusive lock on a data directory, held until `release` (or process exit)."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, data_dir: Path) -> "DataDirLock":
        """Take the lock (creating the directory, mode 0700), or raise StartRefusedError."""
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = data_dir / LOCK_NAME
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise StartRefusedError(
                f"{data_dir} is in use by another relay (pid {holder}); stop it first,"
                " or give this one its own --data-dir."
            ) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return cls(path, fd)

    def release(self) -> None:
        """Unlock; the file stays (its content is only a hint while someone holds it)."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None
