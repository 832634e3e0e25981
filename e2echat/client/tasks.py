"""Stopping tasks without swallowing our own cancellation."""

import asyncio
from typing import Any


async def cancel_and_wait(*tasks: "asyncio.Task[Any]") -> None:
    """Cancel ``tasks`` and wait until they have ended.

    The usual ``with suppress(CancelledError): await task`` also swallows a cancel aimed
    at the caller while it waits, and a caller that goes on after being cancelled can
    never be stopped: that once left a closing client reconnecting forever. Waiting with
    ``asyncio.wait`` lets the caller's own cancellation through.
    """
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.wait(tasks)
    for task in tasks:
        if not task.cancelled():
            task.exception()  # retrieved: its owner already logged or reported it
