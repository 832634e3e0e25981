"""How far a file transfer is, and what a running transfer offers.

``ProgressMeter`` turns "bytes done" into a ``TransferProgress`` with a rate measured
over the last few seconds (so a slowdown shows at the next piece, not averaged into the
whole transfer, and a resumed transfer does not count the bytes it skipped) and the
time left at that rate. ``Transfer`` is the handle
of an upload or download (``e2echat.client.running`` runs it as a task). Pure: no I/O.
"""

import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Generator
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeVar

T_co = TypeVar("T_co", covariant=True)
Direction = Literal["upload", "download"]
RATE_WINDOW_S = 3.0
"""The rate is the bytes moved over about this many of the last seconds."""


@dataclass(frozen=True, slots=True)
class TransferProgress:
    """One moment of a transfer. Bytes count the encrypted file, a little (17 bytes per
    64 KiB) over the file's own size; ``rate`` is bytes per second, 0.0 until measured."""

    direction: Direction
    done: int
    total: int
    rate: float
    elapsed: float

    @property
    def fraction(self) -> float:
        """From 0.0 to 1.0 (1.0 for an empty file)."""
        return self.done / self.total if self.total else 1.0

    @property
    def eta(self) -> float | None:
        """Seconds left at the current rate; None while no rate is known."""
        if self.done >= self.total:
            return 0.0
        return (self.total - self.done) / self.rate if self.rate > 0 else None


Progress = Callable[[TransferProgress], object]
"""A progress callback: called after every piece that went out or came in."""


class ProgressMeter:
    """Measures one transfer; ``update(done)`` gives its progress now."""

    def __init__(
        self,
        direction: Direction,
        total: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.direction = direction
        self.total = total
        self._clock = clock
        self._start = clock()
        self._samples: deque[tuple[float, int]] = deque()

    def update(self, done: int) -> TransferProgress:
        now = self._clock()
        samples = self._samples
        if samples and done < samples[-1][1]:
            samples.clear()  # a transfer that starts over (a download after a drop)
        samples.append((now, done))
        while len(samples) > 2 and now - samples[1][0] >= RATE_WINDOW_S:
            samples.popleft()
        first_at, first_done = samples[0]
        span = now - first_at
        rate = (done - first_done) / span if span > 0 else 0.0
        return TransferProgress(self.direction, done, self.total, rate, now - self._start)


class Transfer(Protocol[T_co]):
    """An upload or download, already running.

    ``await transfer`` gives its result (the message sent, the path saved) or raises
    ``TransferError``; ``async for progress in transfer`` yields ``TransferProgress``
    as it advances (the newest one when the loop body is slower than the transfer)
    and, at the end, raises the error a failed transfer ended with; ``exception()``
    returns that error once it has ended. A failed transfer nobody awaits is no
    "Task exception was never retrieved" from asyncio. ``cancel()`` stops it, leaving
    nothing behind: no partial file on disk, no partial upload on the relay.
    """

    @property
    def progress(self) -> TransferProgress | None:
        """The newest progress (None before the first piece)."""
        ...

    def done(self) -> bool:
        """True once it finished, failed or was cancelled."""
        ...

    def cancel(self) -> bool:
        """Stop the transfer; awaiting it then raises ``asyncio.CancelledError``."""
        ...

    def exception(self) -> BaseException | None:
        """The error a failed transfer ended with (a ``TransferError``, or another
        ``E2EChatError`` such as ``NotAMember``); None while it runs, once it succeeded,
        or when it was cancelled. Never raises."""
        ...

    def __await__(self) -> Generator[Any, None, T_co]: ...

    def __aiter__(self) -> AsyncIterator[TransferProgress]: ...
