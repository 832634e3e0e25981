"""Correlation of the shell's requests with the relay's replies by ``id``.

The shell's ids are ``r1``, ``r2``...; the engine uses other prefixes for the frames it
sends itself (outbox sends, syncs), so a reply is routed by its id alone.
"""

import asyncio

from e2echat.protocol import RelayFrame

PREFIX = "r"


class Requests:
    """Pending requests of one connection, by id."""

    def __init__(self) -> None:
        self._counter = 0
        self._pending: dict[str, asyncio.Future[RelayFrame]] = {}

    def new(self) -> tuple[str, asyncio.Future[RelayFrame]]:
        """A fresh id and the future its reply will resolve."""
        self._counter += 1
        request_id = f"{PREFIX}{self._counter}"
        future: asyncio.Future[RelayFrame] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        return request_id, future

    def forget(self, request_id: str) -> None:
        """Stop waiting for ``request_id`` (timed out or cancelled)."""
        self._pending.pop(request_id, None)

    def awaits(self, frame: RelayFrame) -> bool:
        """Whether ``frame`` answers one of our pending requests."""
        request_id = getattr(frame, "id", None)
        return isinstance(request_id, str) and request_id in self._pending

    def resolve(self, frame: RelayFrame) -> bool:
        """Deliver ``frame`` to its request; False if it answers none of ours."""
        request_id = getattr(frame, "id", None)
        if not isinstance(request_id, str):
            return False
        future = self._pending.pop(request_id, None)
        if future is None:
            return False
        if not future.done():
            future.set_result(frame)
        return True

    def fail_all(self, error: Exception) -> None:
        """The connection is gone: every pending request fails with ``error``."""
        pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(error)
