"""Wall-clock time in milliseconds: the relay's timestamps (message ts, joined, last_seen)."""

import time


def now_ms() -> int:
    return time.time_ns() // 1_000_000
