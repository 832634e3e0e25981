"""``RunningTransfer``: a file transfer run as a task, awaited, iterated or cancelled.

Progress reaches iterators through a future replaced at every step, so any number of
them can follow one transfer, each seeing the newest step (never a growing backlog).

The task's outcome is read as soon as it ends, so a failed transfer the app never
awaits does not make asyncio log "Task exception was never retrieved" when the task is
collected; the failure stays where the app looks for it (``await``, ``async for``,
``exception()``).
"""

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Coroutine, Generator
from typing import Any, Generic, TypeVar

from e2echat.client.errors import E2EChatError
from e2echat.client.progress import Progress, TransferProgress

T = TypeVar("T")
log = logging.getLogger("e2echat")


class RunningTransfer(Generic[T]):
    """A ``Transfer`` run as a task of ``run(report)``; ``report`` feeds its progress."""

    def __init__(
        self,
        run: Callable[[Progress], Coroutine[Any, Any, T]],
        callback: Progress | None = None,
    ) -> None:
        self._callback = callback
        self._latest: TransferProgress | None = None
        loop = asyncio.get_running_loop()
        self._tick: asyncio.Future[None] = loop.create_future()
        self._task = loop.create_task(run(self._report))
        self._task.add_done_callback(self._ended)

    @property
    def progress(self) -> TransferProgress | None:
        return self._latest

    def done(self) -> bool:
        return self._task.done()

    def cancel(self) -> bool:
        return self._task.cancel()

    def exception(self) -> BaseException | None:
        task = self._task
        if not task.done() or task.cancelled():
            return None
        return task.exception()

    def _ended(self, task: "asyncio.Task[T]") -> None:
        """Read the outcome (which marks a failure as retrieved) and wake iterators. A
        refusal the library raises is the app's to handle, so it is logged at debug
        only; anything else is a bug and is logged as an error, with its traceback."""
        error = None if task.cancelled() else task.exception()
        if isinstance(error, E2EChatError):
            log.debug("a file transfer failed: %s", error)
        elif error is not None:
            log.error("a file transfer failed unexpectedly", exc_info=error)
        self._wake()

    def _report(self, progress: TransferProgress) -> None:
        self._latest = progress
        if self._callback is not None:
            self._callback(progress)
        self._wake()

    def _wake(self) -> None:
        if not self._tick.done():
            self._tick.set_result(None)
        self._tick = self._task.get_loop().create_future()

    def __await__(self) -> Generator[Any, None, T]:
        return self._task.__await__()

    async def __aiter__(self) -> AsyncIterator[TransferProgress]:
        seen: TransferProgress | None = None
        while True:
            latest = self._latest
            if latest is not None and latest is not seen:
                seen = latest
                yield latest
            elif self._task.done():
                if not self._task.cancelled() and self._task.exception() is not None:
                    self._task.result()
                return
            else:
                await asyncio.shield(self._tick)
