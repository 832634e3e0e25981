"""Relay processes for the benches: ``python -m e2echat_server`` on an ephemeral port,
the URL it prints as its first line, and its CPU time from /proc.

The benches import this module by name: a script under bench/ has bench/ on its path,
bench/relay/run.py adds it."""

import asyncio
import os
import select
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

URL_TIMEOUT = 30.0
"""Seconds a server may take to print its URL: one that fails to start stops the bench
instead of hanging it."""
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def relay_command(*options: str, python_options: Sequence[str] = ()) -> list[str]:
    """The relay on port 0 (the system picks one), logging warnings only, with
    ``options``; ``python_options`` go to the interpreter (``-m cProfile -o PATH``)."""
    return [
        sys.executable,
        *python_options,
        "-m",
        "e2echat_server",
        "--port",
        "0",
        "--log-level",
        "warning",
        *options,
    ]


async def start_relay(
    *options: str, python_options: Sequence[str] = ()
) -> tuple[asyncio.subprocess.Process, str]:
    """A relay subprocess with ``options`` (see ``relay_command``) and its URL."""
    process = await asyncio.create_subprocess_exec(
        *relay_command(*options, python_options=python_options),
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    try:
        line = (await asyncio.wait_for(process.stdout.readline(), URL_TIMEOUT)).decode()
        if not line:
            raise RuntimeError(f"the relay exited ({await process.wait()}) before its URL")
    except BaseException:
        if process.returncode is None:
            process.kill()
            await process.wait()
        raise
    return process, line.strip()


def start_server(command: Sequence[str], **popen: Any) -> tuple[subprocess.Popen[str], str]:
    """A server process (a relay from ``relay_command``, or a bench's bare baseline)
    started with ``popen`` arguments, and the URL it prints as its first line."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, **popen)
    assert process.stdout is not None
    try:
        ready, _, _ = select.select([process.stdout], [], [], URL_TIMEOUT)
        line = process.stdout.readline() if ready else ""
        if not line:
            raise RuntimeError(f"{command[1:4]} printed no URL within {URL_TIMEOUT:g} s")
    except BaseException:
        process.kill()
        process.wait()
        raise
    return process, line.strip()


def cpu_seconds(pid: int, thread: int | None = None) -> float:
    """User plus system CPU seconds process ``pid`` has used so far, or only its thread
    ``thread`` (a native thread id)."""
    task = f"/task/{thread}" if thread is not None else ""
    fields = Path(f"/proc/{pid}{task}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
