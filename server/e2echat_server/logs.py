"""Structured logging: one line per event, ``key=value`` pairs or JSON.

Callers pass only metadata (addresses, key fingerprints, sizes, codes, durations): the
relay never logs a body, a token, a verifier or a salt. Keys appear as an 8-byte hex
fingerprint, enough to correlate lines without flooding them.
"""

import json
import logging
import sys
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

LOGGER = logging.getLogger("e2echat_server")
ACCESS = logging.getLogger("e2echat_server.access")


def fingerprint(key: bytes) -> str:
    """A short, stable label for a public key in logs."""
    return key[:8].hex()


def crash_site(exc: BaseException, depth: int = 4) -> str:
    """Where ``exc`` was raised, innermost first, as ``file:line:function`` steps.

    Used instead of a formatted traceback for failures while serving a request: an
    exception's message (or a chained one's) may quote the frame, and so a body.
    """
    frames = traceback.extract_tb(exc.__traceback__)[-depth:]
    return " < ".join(f"{Path(f.filename).name}:{f.lineno}:{f.name}" for f in reversed(frames))


def event(logger: logging.Logger, name: str, level: int = logging.INFO, **fields: Any) -> None:
    """Log ``name`` with ``fields`` (metadata only) as structured extra data."""
    if logger.isEnabledFor(level):
        logger.log(level, name, extra={"fields": fields})


THROTTLE_WINDOW_S = 10.0


@dataclass(slots=True)
class ThrottledEvent:
    """An event logged at most once per ``window_s`` for each kind; the next line of a
    kind says with ``also=N`` how many it stands for. A flood of one kind (refusals of an
    abusive peer, every request while the store is down) must not flood the log."""

    name: str
    level: int = logging.WARNING
    window_s: float = THROTTLE_WINDOW_S
    clock: Callable[[], float] = time.monotonic
    _last: dict[str, float] = field(default_factory=dict)
    _unlogged: Counter[str] = field(default_factory=Counter)

    def log(self, kind: str, /, **fields: Any) -> None:
        """One occurrence of ``kind``, logged with ``fields`` unless its window is open
        (positional: a field may be called ``key``, a key's fingerprint)."""
        now = self.clock()
        last = self._last.get(kind)
        if last is not None and now - last < self.window_s:
            self._unlogged[kind] += 1
            return
        self._last[kind] = now
        also = self._unlogged.pop(kind, 0)
        extra = {"also": also} if also else {}
        event(LOGGER, self.name, self.level, **fields, **extra)


class LineFormatter(logging.Formatter):
    """`key=value` text or one JSON object per record; fields come from `event`."""

    def __init__(self, as_json: bool) -> None:
        super().__init__()
        self.as_json = as_json

    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, Any] = getattr(record, "fields", {})
        stamp = timestamp(record.created)
        if self.as_json:
            line = {"ts": stamp, "level": record.levelname.lower(), "logger": record.name}
            line["event"] = record.getMessage()
            return json.dumps({**line, **fields}, default=str)
        pairs = " ".join(f"{k}={_quote(v)}" for k, v in fields.items())
        text = f"{stamp} {record.levelname.lower():7} {record.name} {record.getMessage()}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return f"{text} {pairs}" if pairs else text


def timestamp(seconds: float) -> str:
    """RFC 3339 in UTC with milliseconds: ``2026-12-02T13:45:07.123Z``."""
    moment = datetime.fromtimestamp(seconds, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _quote(value: Any) -> str:
    text = str(value)
    return json.dumps(text) if (not text or " " in text or '"' in text) else text


def configure(level: str, as_json: bool) -> None:
    """Send the relay's logs to stderr (stdout carries only the bound URL)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(LineFormatter(as_json))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("websockets").setLevel(logging.WARNING)
