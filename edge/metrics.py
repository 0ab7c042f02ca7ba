"""Prometheus metrics of one node, built against an injected registry.

Every label value comes from a closed set (:class:`Outcome`, status classes, upstream results),
so the number of series stays bounded whatever the traffic. The per-request counters
(``cdn_requests``, ``cdn_bytes_served``) are plain integers read when scraped: counting an answer
is two additions, with no label lookup and no lock (the node is one event loop).
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector


class Outcome(enum.Enum):
    """How the node answered one request (the ``cache`` label)."""

    HIT = "hit"
    STALE = "stale"  # served stale: stale-while-revalidate or stale-if-error
    REVALIDATED = "revalidated"  # a conditional request upstream answered 304
    MISS = "miss"
    COLLAPSED = "collapsed"  # waited for another request's upstream fetch, then hit
    PASS = "pass"  # not cacheable: unsafe method, hit-for-miss, no-store...
    ERROR = "error"  # upstream failed and nothing usable was cached
    REJECTED = "rejected"  # bad input or a Host this node does not serve


class UpstreamResult(enum.Enum):
    OK = "ok"
    TIMEOUT = "timeout"
    UNAVAILABLE = "unavailable"
    BREAKER_OPEN = "breaker-open"  # not sent: the upstream's circuit breaker is open


_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


def status_class(status: int) -> str:
    return f"{status // 100}xx" if 100 <= status < 600 else "other"


class _Tally:
    """One series' running total and when it was created (the ``_created`` sample)."""

    __slots__ = ("created", "value")

    def __init__(self) -> None:
        self.value = 0
        self.created = time.time()


class AnswerCounters(Collector):
    """``cdn_requests{cache,status}`` and ``cdn_bytes_served{cache}`` as plain counters."""

    def __init__(self) -> None:
        self.requests: dict[tuple[str, str], _Tally] = {}
        # Pre-created so a scrape shows zeros before the first request.
        self.bytes_served: dict[str, _Tally] = {o.value: _Tally() for o in Outcome}
        self._by_answer: dict[tuple[Outcome, int], tuple[_Tally, _Tally]] = {}

    def tallies(self, outcome: Outcome, status: int) -> tuple[_Tally, _Tally]:
        """The (requests, bytes) tallies of an answer; created on first use."""
        found = self._by_answer.get((outcome, status))
        if found is None:
            key = (outcome.value, status_class(status))
            requests = self.requests.get(key)
            if requests is None:
                requests = self.requests[key] = _Tally()
            found = self._by_answer[(outcome, status)] = (
                requests,
                self.bytes_served[outcome.value],
            )
        return found

    def describe(self) -> Iterator[Metric]:
        yield from self._families()

    def collect(self) -> Iterator[Metric]:
        yield from self._families()

    def _families(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "cdn_requests",
            "Client requests answered, by cache outcome and status class.",
            labels=["cache", "status"],
        )
        for (cache, status), tally in list(self.requests.items()):
            requests.add_metric([cache, status], tally.value, created=tally.created)
        served = CounterMetricFamily(
            "cdn_bytes_served", "Body bytes sent to clients.", labels=["cache"]
        )
        for cache, tally in self.bytes_served.items():
            served.add_metric([cache], tally.value, created=tally.created)
        yield requests
        yield served


class EdgeMetrics:
    """The node's collectors; cache size gauges read the store when scraped."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.answers = AnswerCounters()
        registry.register(self.answers)
        self.upstream_requests = Counter(
            "cdn_upstream_requests",
            "Requests sent upstream (origin or next overlay hop), by result.",
            ["result"],
            registry=registry,
        )
        self.upstream_latency = Histogram(
            "cdn_upstream_first_byte_seconds",
            "Time from sending an upstream request to its response head.",
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.coalesced_waiters = Counter(
            "cdn_coalesced_waiters",
            "Requests that waited for another request's upstream fetch of the same key.",
            registry=registry,
        )
        self.evictions = Counter(
            "cdn_cache_evictions", "Objects evicted to make room.", registry=registry
        )
        self.background_refreshes = Counter(
            "cdn_background_refreshes",
            "stale-while-revalidate refreshes started in the background.",
            registry=registry,
        )
        self.breaker_transitions = Counter(
            "cdn_upstream_breaker_transitions",
            "Circuit-breaker state changes per origin, by the state entered.",
            ["origin", "state"],
            registry=registry,
        )
        self.cache_bytes = Gauge("cdn_cache_bytes", "Bytes held by the cache.", registry=registry)
        self.cache_objects = Gauge(
            "cdn_cache_objects", "Objects (variants) held by the cache.", registry=registry
        )
        # Pre-create the series so a scrape shows zeros before the first upstream request.
        self._upstream = {r: self.upstream_requests.labels(r.value) for r in UpstreamResult}

    def watch_store(self, used_bytes: Callable[[], float], objects: Callable[[], float]) -> None:
        self.cache_bytes.set_function(used_bytes)
        self.cache_objects.set_function(objects)

    def answered(self, outcome: Outcome, status: int, body_bytes: int) -> None:
        requests, served = self.answers.tallies(outcome, status)
        requests.value += 1
        served.value += body_bytes

    def upstream(self, result: UpstreamResult, latency_s: float | None = None) -> None:
        self._upstream[result].inc()
        if latency_s is not None:
            self.upstream_latency.observe(latency_s)


class RateMeter:
    """Requests per second between two readings (the heartbeat's ``load_rps``)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.count = 0
        self._clock = clock
        self._last = (clock(), 0)

    def rate(self) -> float:
        now, count = self._clock(), self.count
        then, before = self._last
        self._last = (now, count)
        return (count - before) / (now - then) if now > then else 0.0
