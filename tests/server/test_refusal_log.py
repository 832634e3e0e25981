"""Refusals: counted by reason, one WARNING per reason per window, never content."""

import logging

import pytest
from e2echat_server.logs import LineFormatter, timestamp
from e2echat_server.refusal_log import RefusalLog


def test_one_warning_per_reason_per_window_says_how_many_it_stands_for(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [100.0]
    log = RefusalLog(window_s=10.0, clock=lambda: now[0])
    caplog.set_level(logging.WARNING, logger="e2echat_server")
    for _ in range(5):
        log.refused("per_ip", peer="192.0.2.1")
    log.refused("rate", peer="192.0.2.2", key="0011223344556677")
    now[0] += 10.0
    log.refused("per_ip", peer="192.0.2.1")
    lines = [(r.levelno, r.fields) for r in caplog.records]  # type: ignore[attr-defined]
    assert lines == [
        (logging.WARNING, {"reason": "per_ip", "peer": "192.0.2.1"}),
        (logging.WARNING, {"reason": "rate", "peer": "192.0.2.2", "key": "0011223344556677"}),
        (logging.WARNING, {"reason": "per_ip", "peer": "192.0.2.1", "also": 4}),
    ]
    assert log.counts == {"per_ip": 6, "rate": 1}


def test_timestamps_are_rfc3339_utc_with_milliseconds() -> None:
    assert timestamp(1_796_218_507.1234) == "2026-12-02T13:35:07.123Z"
    record = logging.LogRecord("e2echat_server", logging.INFO, "x", 1, "listening", None, None)
    record.created = 0.5
    assert LineFormatter(False).format(record).startswith("1970-01-01T00:00:00.500Z info ")
