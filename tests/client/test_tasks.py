"""Stopping a task must never swallow a cancel aimed at the one stopping it."""

import asyncio
import contextlib

import pytest

from e2echat.client.tasks import cancel_and_wait


async def _slow_to_stop(stopping: asyncio.Event, release: asyncio.Event) -> None:
    try:
        await asyncio.Event().wait()
    finally:
        stopping.set()
        await release.wait()  # takes a while to clean up after its cancel


async def _stopper(stop: "asyncio.Task[None]", use_helper: bool) -> str:
    if use_helper:
        await cancel_and_wait(stop)
    else:
        stop.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await stop
    return "carried on after being cancelled"


@pytest.mark.parametrize("use_helper", [True, False])
async def test_a_cancel_of_the_waiter_gets_through(use_helper: bool) -> None:
    stopping, release = asyncio.Event(), asyncio.Event()
    inner = asyncio.create_task(_slow_to_stop(stopping, release))
    await asyncio.sleep(0)
    outer = asyncio.create_task(_stopper(inner, use_helper))
    await asyncio.wait_for(stopping.wait(), 5)
    outer.cancel()  # the owner of `outer` stops it while it waits for `inner`
    release.set()
    await asyncio.wait([outer], timeout=5)
    if use_helper:
        assert outer.cancelled()
    else:  # the pattern this replaced: the cancel is lost and the caller goes on
        assert outer.result() == "carried on after being cancelled"
    assert inner.cancelled()


async def test_exceptions_of_stopped_tasks_are_retrieved() -> None:
    async def fails_on_cancel() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            raise RuntimeError("cleanup failed")

    task = asyncio.create_task(fails_on_cancel())
    await asyncio.sleep(0)
    await cancel_and_wait(task)
    assert isinstance(task.exception(), RuntimeError)
