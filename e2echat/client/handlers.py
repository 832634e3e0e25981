"""Running an application's handlers: async-only, typed, in order per room.

A handler is registered for a kind of item (``Message`` or an ``Event`` class) and gets
each published item of that kind. Refusing a plain ``def`` at registration matters: an
accepted sync handler would fail on every single message, far from the mistake.

By default a handler takes one item at a time. With ``concurrent=True`` items of
different rooms run side by side (one slow answer in one room no longer holds up every
other room) while the items of one room still run one at a time, in order: a room's
conversation is a sequence, a bot's answers to it must be too. Each room's lane holds
at most ``lane_limit`` waiting items; past that the dispatcher waits, so memory stays
bounded and the subscription's own backlog rule applies.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from e2echat.client.pubsub import Subscription
from e2echat.client.tasks import cancel_and_wait

log = logging.getLogger("e2echat")
Handler = Callable[[Any], Awaitable[None]]


def check_async(handler: object) -> None:
    """Refuse anything that is not an ``async def`` (or an object with one as __call__)."""
    target = handler
    while isinstance(target, functools.partial):
        target = target.func
    call = target if inspect.isfunction(target) or inspect.ismethod(target) else None
    if call is None and callable(target):
        call = getattr(target, "__call__", None)  # noqa: B004 (the method itself)
    if call is None or not inspect.iscoroutinefunction(call):
        name = getattr(handler, "__qualname__", type(handler).__name__)
        raise TypeError(
            f"handler {name} must be an async function ('async def {name}(...)'):"
            " the client awaits it for every item"
        )


def lane_of(item: object) -> bytes | None:
    """The room an item belongs to (its order lane), or None for room-less events."""
    room = getattr(item, "room", None)
    room_id = getattr(room, "id", None)
    return room_id if isinstance(room_id, bytes) else None


class HandlerRunner:
    """One registered handler: reads its subscription and calls the handler."""

    def __init__(
        self,
        handler: Handler,
        subscription: Subscription[Any],
        kind: type | None,
        *,
        concurrent: bool,
        lane_limit: int,
    ) -> None:
        self.handler = handler
        self._subscription = subscription
        self._kind = kind
        self._concurrent = concurrent
        self._lane_limit = lane_limit
        self._lanes: dict[bytes | None, asyncio.Queue[Any]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._name = getattr(handler, "__qualname__", repr(handler))

    def start(self) -> None:
        """Begin handling (the client calls it once connected)."""
        self._tasks.append(asyncio.create_task(self._dispatch(), name=f"e2echat-{self._name}"))

    def owns(self, task: asyncio.Task[Any] | None) -> bool:
        """Whether ``task`` is one of this handler's tasks (a handler closing the client)."""
        return task in self._tasks

    async def stop(self, spare: asyncio.Task[Any] | None) -> None:
        """Cancel every task of this handler except ``spare`` (the caller's own)."""
        await cancel_and_wait(*[task for task in self._tasks if task is not spare])

    async def _dispatch(self) -> None:
        async for item in self._subscription:
            if self._kind is not None and not isinstance(item, self._kind):
                continue
            if not self._concurrent:
                await self._call(item)
                continue
            key = lane_of(item)
            lane = self._lanes.get(key)
            if lane is None:
                lane = self._lanes[key] = asyncio.Queue(self._lane_limit)
                self._tasks.append(
                    asyncio.create_task(self._drain(lane), name=f"e2echat-{self._name}-lane")
                )
            await lane.put(item)

    async def _drain(self, lane: asyncio.Queue[Any]) -> None:
        while True:
            item = await lane.get()
            try:
                await self._call(item)
            finally:
                lane.task_done()

    async def _call(self, item: object) -> None:
        try:
            await self.handler(item)
        except Exception:
            log.exception("handler %s raised", self._name)
