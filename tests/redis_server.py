"""A real `redis-server` process on an ephemeral 127.0.0.1 port, in a directory of its own.

Tests (and the cluster benchmarks) start one per need: a plain in-memory one for the
store contract, one with an append-only file fsynced on every write for the durability
tests, which kill and restart it on the same port with the same directory, and replicas
of one for the tests of acknowledging only what replicas confirmed (`WAIT`).
"""

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import threading
from pathlib import Path
from typing import IO, Final, Literal

INSTALL: Final = "apt-get install -y redis-server"
_READY: Final = b"Ready to accept connections"
_BIND_ATTEMPTS: Final = 5

Fsync = Literal["always", "everysec", "no"]


def redis_binary() -> str | None:
    """The redis-server on PATH (or in /usr/bin, which a minimal PATH may lack), or None."""
    return shutil.which("redis-server") or shutil.which("redis-server", path="/usr/bin")


def free_port() -> int:
    """A port nobody listens on right now (the server binds it a moment later)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class RedisServer:
    """One redis-server child process. ``appendfsync=None``: no persistence at all;
    ``replica_of``: a replica of that (started) server."""

    def __init__(
        self,
        binary: str,
        directory: Path,
        appendfsync: Fsync | None = None,
        replica_of: "RedisServer | None" = None,
    ) -> None:
        self.binary = binary
        self.directory = directory
        self.appendfsync = appendfsync
        self.replica_of = replica_of
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def argv(self) -> list[str]:
        persistence = (
            ["--appendonly", "no"]
            if self.appendfsync is None
            else ["--appendonly", "yes", "--appendfsync", self.appendfsync]
        )
        replication = []
        if self.replica_of is not None:
            replication = ["--replicaof", "127.0.0.1", str(self.replica_of.port)]
        return [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.directory),
            "--daemonize",
            "no",
            "--logfile",
            "",
            "--save",
            "",
            *persistence,
            *replication,
            # A replica gets its first copy at once, not after the 5 s default delay.
            "--repl-diskless-sync-delay",
            "0",
        ]

    def start(self) -> None:
        """Start (again, on the same port and directory once it has one); wait until ready."""
        self.directory.mkdir(parents=True, exist_ok=True)
        keep_port = self.port != 0
        for _ in range(_BIND_ATTEMPTS):
            if not keep_port:
                self.port = free_port()
            if self._spawn():
                return
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def _spawn(self) -> bool:
        """Start the process and read its log until it is ready; False if it exited."""
        process = subprocess.Popen(
            self.argv(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        assert process.stdout is not None
        log = (self.directory / "redis.log").open("ab")
        for line in process.stdout:
            log.write(line)
            if _READY in line:
                self.process = process
                # Keep reading its log, or a full pipe would one day block the server.
                threading.Thread(target=_copy, args=(process.stdout, log), daemon=True).start()
                return True
        log.close()
        process.wait()
        return False

    def kill(self) -> None:
        """SIGKILL: no shutdown save, no final fsync; only what it already wrote survives."""
        self._end(signal.SIGKILL)

    def stop(self) -> None:
        self._end(signal.SIGTERM)

    def _end(self, how: signal.Signals) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, how)
        process.wait()


def _copy(source: IO[bytes], log: IO[bytes]) -> None:
    with log:
        for line in source:
            log.write(line)
