"""The one thread the engine runs on.

Every engine call (and so every SQLite statement) runs here, one at a time, in the
order submitted: the engine needs no locks, and the event loop never blocks on disk.
"""

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from e2echat.client.errors import E2EChatError

P = ParamSpec("P")
T = TypeVar("T")


class Worker:
    """A single-thread executor with an awaitable ``call``."""

    def __init__(self) -> None:
        self._executor: ThreadPoolExecutor | None = ThreadPoolExecutor(
            1, thread_name_prefix="e2echat-engine"
        )

    async def call(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``fn(*args, **kwargs)`` on the worker thread and await its result."""
        if self._executor is None:
            raise E2EChatError("the client is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: fn(*args, **kwargs))

    def close(self) -> None:
        """Finish what was submitted, then stop the thread."""
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
