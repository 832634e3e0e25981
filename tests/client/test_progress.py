"""Transfer progress: the rate over a recent window, the time left, the task handle."""

import asyncio

import pytest

import e2echat
from e2echat.client.progress import RATE_WINDOW_S, ProgressMeter, TransferProgress
from e2echat.client.running import RunningTransfer


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_rate_and_time_left() -> None:
    clock = FakeClock()
    meter = ProgressMeter("upload", 1000, clock)
    first = meter.update(0)
    assert (first.rate, first.eta, first.fraction) == (0.0, None, 0.0)
    clock.now += 1
    second = meter.update(100)
    assert second.rate == pytest.approx(100.0)
    assert second.eta == pytest.approx(9.0)
    assert second.elapsed == pytest.approx(1.0)
    clock.now += 9
    last = meter.update(1000)
    assert (last.fraction, last.eta) == (1.0, 0.0)


def test_the_rate_forgets_old_speed_so_a_stall_shows() -> None:
    clock = FakeClock()
    meter = ProgressMeter("download", 10_000, clock)
    for step in range(10):  # 1,000 B/s for 10 s
        meter.update(step * 1000)
        clock.now += 1
    clock.now += 20  # then 20 s for the next 10 bytes
    slow = meter.update(9010)
    assert slow.rate < 1000 / RATE_WINDOW_S


def test_a_resumed_transfer_counts_only_the_bytes_it_moved() -> None:
    clock = FakeClock()
    meter = ProgressMeter("upload", 1000, clock)
    meter.update(800)  # what the relay already had
    clock.now += 2
    assert meter.update(900).rate == pytest.approx(50.0)


def test_an_empty_file_is_complete() -> None:
    progress = TransferProgress("upload", 0, 0, 0.0, 0.0)
    assert (progress.fraction, progress.eta) == (1.0, 0.0)


async def test_a_transfer_is_awaited_iterated_and_called_back() -> None:
    called: list[int] = []
    go = asyncio.Event()

    async def run(report: e2echat.client.progress.Progress) -> str:
        for done in (0, 5, 10):
            await go.wait()
            report(TransferProgress("download", done, 10, 1.0, 0.0))
            await asyncio.sleep(0)
        return "saved"

    transfer = RunningTransfer(run, lambda p: called.append(p.done))
    assert transfer.progress is None
    go.set()
    seen = [p.done async for p in transfer]
    assert seen[-1] == 10
    assert await transfer == "saved"
    assert called == [0, 5, 10]
    assert transfer.done()


async def test_iterating_a_failed_transfer_raises_its_error() -> None:
    async def run(report: e2echat.client.progress.Progress) -> None:
        report(TransferProgress("upload", 1, 10, 1.0, 0.0))
        raise e2echat.TransferError("refused", code="too_large")

    transfer = RunningTransfer(run)
    with pytest.raises(e2echat.TransferError, match="refused"):
        async for _ in transfer:
            pass


async def test_a_cancelled_transfer_ends_its_iteration_and_its_await_raises() -> None:
    started = asyncio.Event()

    async def run(report: e2echat.client.progress.Progress) -> None:
        report(TransferProgress("upload", 0, 10, 0.0, 0.0))
        started.set()
        await asyncio.Event().wait()

    transfer = RunningTransfer(run)
    await started.wait()
    assert transfer.cancel()
    assert [p.done async for p in transfer] == [0]
    with pytest.raises(asyncio.CancelledError):
        await transfer
