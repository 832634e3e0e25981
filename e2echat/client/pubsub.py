"""Fan-out of messages and events to independent subscribers.

A subscription is registered when it is created, not when it is first iterated, so an
application that calls ``chat.messages()`` and then does something sees every message
from that call on. Queues are unbounded: the library never drops a message because an
application is slow; it is the application's to keep up.
"""

import asyncio
from collections.abc import AsyncIterator
from typing import Generic, TypeVar

T = TypeVar("T")


class _End:
    """Marks the end of a subscription (the client closed)."""


_END = _End()


class Subscription(Generic[T]):
    """An async iterator over what is published after its creation."""

    def __init__(self, hub: "Hub[T]") -> None:
        self._hub = hub
        self._queue: asyncio.Queue[T | _End] = asyncio.Queue()

    def __aiter__(self) -> AsyncIterator[T]:
        return self

    async def __anext__(self) -> T:
        item = await self._queue.get()
        if isinstance(item, _End):
            self._hub.unsubscribe(self)
            raise StopAsyncIteration
        return item

    def put(self, item: T | _End) -> None:
        """Deliver ``item`` (called by the hub)."""
        self._queue.put_nowait(item)

    async def aclose(self) -> None:
        """Stop receiving (an ``async for`` that breaks early should call this)."""
        self._hub.unsubscribe(self)


class Hub(Generic[T]):
    """Publishes each item to every live subscription."""

    def __init__(self) -> None:
        self._subscriptions: list[Subscription[T]] = []
        self.closed = False

    def subscribe(self) -> Subscription[T]:
        """A new subscription; after ``close`` it is born ended."""
        subscription = Subscription(self)
        if self.closed:
            subscription.put(_END)
        else:
            self._subscriptions.append(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription[T]) -> None:
        """Stop delivering to ``subscription``."""
        if subscription in self._subscriptions:
            self._subscriptions.remove(subscription)

    def publish(self, item: T) -> None:
        """Deliver ``item`` to every live subscription."""
        for subscription in self._subscriptions:
            subscription.put(item)

    def close(self) -> None:
        """End every subscription (after what was already published)."""
        self.closed = True
        for subscription in self._subscriptions:
            subscription.put(_END)
        self._subscriptions = []
