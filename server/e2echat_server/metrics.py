"""Counters the relay keeps, exposed through prometheus_client.

Plain attributes and dicts, bumped inline on the hot path (no locks: one event loop),
read by a custom collector at scrape time, beside prometheus_client's process, platform
and GC collectors and a build-info gauge. Nothing here ever holds a key, a name or a
body, only counts and sizes.
"""

import bisect
import platform
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from prometheus_client import (
    CollectorRegistry,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from e2echat.protocol import PROTOCOL_VERSION
from e2echat_server.refusal_log import RefusalLog
from e2echat_server.version import __version__

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


@dataclass(slots=True, eq=False)  # hashable: the registry keys collectors
class Metrics:
    """Everything /metrics reports."""

    connections: int = 0
    connections_total: int = 0
    authenticated: int = 0
    # The directory's sizes, read at each scrape: on a node over Redis, rooms and users
    # also come and go by the other nodes' notices, which no handler here sees.
    count_rooms: Callable[[], int] = lambda: 0
    count_users: Callable[[], int] = lambda: 0
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
    _registry: CollectorRegistry | None = None

    def observe_store(self, operation: str, seconds: float) -> None:
        histogram = self.store.get(operation)
        if histogram is None:
            histogram = self.store[operation] = Histogram()
        histogram.observe(seconds)

    def collect(self) -> Iterator[Metric]:
        """Every metric as prometheus_client families (the registry calls this per scrape)."""

        def gauge(name: str, text: str, value: float) -> GaugeMetricFamily:
            return GaugeMetricFamily(f"e2echat_{name}", text, value=value)

        def counter(name: str, text: str, value: float) -> CounterMetricFamily:
            return CounterMetricFamily(f"e2echat_{name}", text, value=value)

        def by(name: str, text: str, label: str, counts: Counter[str]) -> CounterMetricFamily:
            family = CounterMetricFamily(f"e2echat_{name}", text, labels=[label])
            for value, n in sorted(counts.items()):
                family.add_metric([value], n)
            return family

        yield gauge("connections", "Open WebSocket connections.", self.connections)
        yield gauge(
            "authenticated_connections", "Connections past the handshake.", self.authenticated
        )
        yield counter(
            "connections_accepted", "WebSocket connections accepted.", self.connections_total
        )
        yield gauge("rooms", "Rooms that exist.", self.count_rooms())
        yield gauge("users", "Keys the relay knows (in memory).", self.count_users())
        yield counter(
            "users_forgotten",
            "Idle users forgotten (no room, no mail, offline past forget_after_s).",
            self.users_forgotten,
        )
        yield counter(
            "presence_deferred",
            "Online/offline changes not broadcast at once (over the user's presence budget).",
            self.presence_deferred,
        )
        yield counter("messages_in", "Room messages accepted.", self.messages_in)
        yield counter("messages_out", "Room messages delivered to connections.", self.messages_out)
        yield counter("directs_in", "Direct frames accepted.", self.directs_in)
        yield counter("frames_in", "Frames received.", self.frames_in)
        yield counter("bytes_in", "WebSocket payload bytes received.", self.bytes_in)
        yield counter("bytes_out", "WebSocket payload bytes sent.", self.bytes_out)
        yield counter(
            "slow_consumers",
            "Connections dropped because their send buffer overflowed.",
            self.slow_consumers,
        )
        yield counter("http_requests", "Plain HTTP requests.", self.http_requests)
        yield by("errors", "Error frames sent, by code.", "code", self.errors)
        yield by(
            "handshake_failures",
            "Failed authentications, by reason.",
            "reason",
            self.handshake_failures,
        )
        yield by(
            "refusals",
            "Connections, identities and frames refused, by reason.",
            "reason",
            self.refusals.counts,
        )
        store = HistogramMetricFamily(
            "e2echat_store_seconds", "Latency of store operations.", labels=["op"]
        )
        for operation, histogram in sorted(self.store.items()):
            running, buckets = 0, []
            for bound, count in zip(
                (*histogram.bounds, float("inf")), histogram.counts, strict=True
            ):
                running += count
                buckets.append(("+Inf" if bound == float("inf") else repr(bound), running))
            store.add_metric([operation], buckets, histogram.total)
        yield store
        build = GaugeMetricFamily(
            "e2echat_build_info",
            "The relay's version, protocol and Python (always 1).",
            labels=["version", "protocol", "python"],
        )
        build.add_metric([__version__, str(PROTOCOL_VERSION), platform.python_version()], 1)
        yield build

    def registry(self) -> CollectorRegistry:
        """A registry of these metrics and the process's (CPU, memory, open files)."""
        registry = CollectorRegistry(auto_describe=False)
        registry.register(self)
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        GCCollector(registry=registry)
        return registry

    def render(self) -> str:
        """The Prometheus text format (version 0.0.4) of every metric."""
        if self._registry is None:
            self._registry = self.registry()
        return generate_latest(self._registry).decode()
