"""Counters the relay keeps, rendered in the Prometheus text exposition format.

Plain attributes and dicts, bumped inline on the hot path: no locks (one event loop),
no library. Nothing here ever holds a key, a name or a body, only counts and sizes.
"""

import bisect
from collections import Counter
from dataclasses import dataclass, field

from e2echat_server.refusal_log import RefusalLog

STORE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


@dataclass(slots=True)
class Histogram:
    """A cumulative-bucket histogram of seconds."""

    bounds: tuple[float, ...] = STORE_BUCKETS
    counts: list[int] = field(default_factory=lambda: [0] * (len(STORE_BUCKETS) + 1))
    total: float = 0.0
    count: int = 0

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, seconds)] += 1
        self.total += seconds
        self.count += 1


@dataclass(slots=True)
class Metrics:
    """Everything /metrics reports."""

    connections: int = 0
    connections_total: int = 0
    authenticated: int = 0
    rooms: int = 0
    users: int = 0
    users_forgotten: int = 0
    presence_deferred: int = 0
    messages_in: int = 0
    messages_out: int = 0
    directs_in: int = 0
    frames_in: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    slow_consumers: int = 0
    http_requests: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    handshake_failures: Counter[str] = field(default_factory=Counter)
    store: dict[str, Histogram] = field(default_factory=dict)
    refusals: RefusalLog = field(default_factory=RefusalLog)

    def observe_store(self, operation: str, seconds: float) -> None:
        histogram = self.store.get(operation)
        if histogram is None:
            histogram = self.store[operation] = Histogram()
        histogram.observe(seconds)

    def render(self) -> str:
        """The Prometheus text format (version 0.0.4) of every metric."""
        out: list[str] = []

        def metric(name: str, kind: str, help_text: str, samples: list[tuple[str, float]]) -> None:
            out.append(f"# HELP e2echat_{name} {help_text}")
            out.append(f"# TYPE e2echat_{name} {kind}")
            out.extend(f"e2echat_{name}{labels} {_number(value)}" for labels, value in samples)

        metric("connections", "gauge", "Open WebSocket connections.", [("", self.connections)])
        metric(
            "authenticated_connections",
            "gauge",
            "Connections past the handshake.",
            [("", self.authenticated)],
        )
        metric(
            "connections_total",
            "counter",
            "WebSocket connections accepted.",
            [("", self.connections_total)],
        )
        metric("rooms", "gauge", "Rooms that exist.", [("", self.rooms)])
        metric("users", "gauge", "Keys the relay knows (in memory).", [("", self.users)])
        metric(
            "users_forgotten_total",
            "counter",
            "Idle users forgotten (no room, no mail, offline past forget_after_s).",
            [("", self.users_forgotten)],
        )
        metric(
            "presence_deferred_total",
            "counter",
            "Online/offline changes not broadcast at once (over the user's presence budget).",
            [("", self.presence_deferred)],
        )
        metric("messages_in_total", "counter", "Room messages accepted.", [("", self.messages_in)])
        metric(
            "messages_out_total",
            "counter",
            "Room messages delivered to connections.",
            [("", self.messages_out)],
        )
        metric("directs_in_total", "counter", "Direct frames accepted.", [("", self.directs_in)])
        metric("frames_in_total", "counter", "Frames received.", [("", self.frames_in)])
        metric(
            "bytes_in_total", "counter", "WebSocket payload bytes received.", [("", self.bytes_in)]
        )
        metric(
            "bytes_out_total", "counter", "WebSocket payload bytes sent.", [("", self.bytes_out)]
        )
        metric(
            "slow_consumers_total",
            "counter",
            "Connections dropped because their send buffer overflowed.",
            [("", self.slow_consumers)],
        )
        metric("http_requests_total", "counter", "Plain HTTP requests.", [("", self.http_requests)])
        metric(
            "errors_total",
            "counter",
            "Error frames sent, by code.",
            [(f'{{code="{code}"}}', n) for code, n in sorted(self.errors.items())],
        )
        metric(
            "handshake_failures_total",
            "counter",
            "Failed authentications, by reason.",
            [(f'{{reason="{why}"}}', n) for why, n in sorted(self.handshake_failures.items())],
        )
        metric(
            "refusals_total",
            "counter",
            "Connections, identities and frames refused, by reason.",
            [(f'{{reason="{why}"}}', n) for why, n in sorted(self.refusals.counts.items())],
        )
        out.append("# HELP e2echat_store_seconds Latency of store operations.")
        out.append("# TYPE e2echat_store_seconds histogram")
        for operation, histogram in sorted(self.store.items()):
            running = 0
            for bound, count in zip(
                (*histogram.bounds, float("inf")), histogram.counts, strict=True
            ):
                running += count
                le = "+Inf" if bound == float("inf") else _number(bound)
                out.append(f'e2echat_store_seconds_bucket{{op="{operation}",le="{le}"}} {running}')
            out.append(f'e2echat_store_seconds_sum{{op="{operation}"}} {_number(histogram.total)}')
            out.append(f'e2echat_store_seconds_count{{op="{operation}"}} {histogram.count}')
        return "\n".join(out) + "\n"


def _number(value: float) -> str:
    return repr(value) if isinstance(value, float) else str(value)
