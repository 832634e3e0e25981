"""Fan-out of messages and events to independent subscribers.

A subscription is registered when it is created, not when it is first iterated, so an
application that calls ``chat.messages()`` and then does something sees every message
from that call on.

Memory stays bounded whatever the application does:

- each subscription holds at most ``backlog`` undelivered items; when a consumer falls
  further behind, the OLDEST items are dropped (counted in ``Subscription.dropped`` and
  logged once per overrun). Newest-wins suits a chat: the dropped messages are still in
  ``room.history()``, while blocking the connection would stall every other consumer
  and the relay's acknowledgements.
- unless the application asks for an unbounded subscription (``bounded=False``): one
  that drains it at once into a queue of its own (the TUI, into Textual's) loses
  nothing that way, even while it starts, and bounds its memory itself.
- the hub holds subscriptions weakly: one the application no longer references (made
  and never iterated, or left by ``break`` without ``aclose()``) stops receiving and is
  freed, instead of queueing every later message forever.
"""

import asyncio
import logging
import weakref
from collections import deque
from collections.abc import AsyncIterator
from typing import Generic, TypeVar

T = TypeVar("T")
log = logging.getLogger("e2echat")
DEFAULT_BACKLOG = 10_000
"""Items a subscription keeps for a slow consumer before dropping the oldest."""


class _End:
    """Marks the end of a subscription (the client closed)."""


_END = _End()


class Subscription(Generic[T]):
    """An async iterator over what is published after its creation."""

    def __init__(self, hub: "Hub[T]", backlog: int | None) -> None:
        self._hub = hub
        self._items: deque[T] = deque()
        self._backlog = backlog
        self._ended = False
        self._wakeup = asyncio.Event()
        self._overrun = False
        self.dropped = 0
        """How many items were dropped because this consumer fell ``backlog`` behind."""

    def __aiter__(self) -> AsyncIterator[T]:
        return self

    async def __anext__(self) -> T:
        while not self._items:
            if self._ended:
                self._hub.unsubscribe(self)
                raise StopAsyncIteration
            self._wakeup.clear()
            await self._wakeup.wait()
        if self._overrun and len(self._items) <= (self._backlog or 0) // 2:
            self._overrun = False  # caught up: warn again on the next overrun
        return self._items.popleft()

    def put(self, item: T) -> None:
        """Deliver ``item`` (called by the hub); drops the oldest item if full."""
        if self._ended:
            return
        if self._backlog is not None and len(self._items) >= self._backlog:
            self._items.popleft()
            if not self._overrun:
                log.warning("a subscriber fell %d items behind: dropping the oldest", self._backlog)
            self._overrun = True
            self.dropped += 1
        self._items.append(item)
        self._wakeup.set()

    def end(self) -> None:
        """End the iteration once what was delivered has been read (called by the hub)."""
        self._ended = True
        self._wakeup.set()

    async def aclose(self) -> None:
        """Stop receiving and end the iteration (call it after breaking out early)."""
        self._hub.unsubscribe(self)
        self._items.clear()
        self.end()


class Hub(Generic[T]):
    """Publishes each item to every live subscription."""

    def __init__(self, backlog: int = DEFAULT_BACKLOG) -> None:
        if backlog < 1:
            raise ValueError("a subscription backlog holds at least one item")
        self._backlog = backlog
        self._subscriptions: weakref.WeakSet[Subscription[T]] = weakref.WeakSet()
        self.closed = False

    def subscribe(self, *, bounded: bool = True) -> Subscription[T]:
        """A new subscription (holding at most the hub's backlog, unless not
        ``bounded``); after ``close`` it is born ended."""
        subscription = Subscription(self, self._backlog if bounded else None)
        if self.closed:
            subscription.end()
        else:
            self._subscriptions.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription[T]) -> None:
        """Stop delivering to ``subscription``."""
        self._subscriptions.discard(subscription)

    def publish(self, item: T) -> None:
        """Deliver ``item`` to every live subscription."""
        for subscription in list(self._subscriptions):
            subscription.put(item)

    def close(self) -> None:
        """End every subscription (after what was already published)."""
        self.closed = True
        for subscription in list(self._subscriptions):
            subscription.end()
        self._subscriptions = weakref.WeakSet()
