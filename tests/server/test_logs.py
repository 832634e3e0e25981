"""Structured log lines: key=value or JSON, metadata only."""

import json
import logging

import pytest
from e2echat_server import logs


def record_line(as_json: bool, caplog: pytest.LogCaptureFixture) -> str:
    caplog.set_level(logging.INFO, logger="e2echat_server")
    logs.event(
        logs.LOGGER, "session", peer="127.0.0.1", key=logs.fingerprint(b"k" * 32), note="two words"
    )
    (record,) = caplog.records
    return logs.LineFormatter(as_json).format(record)


def test_key_value_lines(caplog: pytest.LogCaptureFixture) -> None:
    line = record_line(False, caplog)
    assert line.endswith(' session peer=127.0.0.1 key=6b6b6b6b6b6b6b6b note="two words"')
    assert " info    e2echat_server " in line


def test_json_lines(caplog: pytest.LogCaptureFixture) -> None:
    line = json.loads(record_line(True, caplog))
    assert (line["event"], line["level"], line["key"]) == ("session", "info", "6b" * 8)


def test_configure_sends_logs_to_stderr_at_the_level(capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        logs.configure("warning", as_json=False)
        logs.event(logs.LOGGER, "hidden")
        logs.event(logs.LOGGER, "shown", logging.WARNING, n=1)
        captured = capsys.readouterr()
        assert captured.out == ""
        assert "shown n=1" in captured.err
        assert "hidden" not in captured.err
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])
