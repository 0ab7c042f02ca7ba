"""The router's Prometheus metrics, built against an injected registry with bounded labels.

The query path only adds to plain dicts of ints (a few hundred nanoseconds); a custom collector
turns them into labelled counter families when ``/metrics`` is scraped. The decision latency
histogram observes one routed query in :data:`DECISION_SAMPLE` (timing every query would cost
more than the decision it measures).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from cdn_core.routing import ClientRoute
from router.ratelimit import Refusal

_QTYPES = {1: "A", 2: "NS", 6: "SOA", 28: "AAAA", 251: "IXFR", 252: "AXFR", 255: "ANY"}
_RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}
_RCODES[16] = "BADVERS"
UNKNOWN_NETWORK = "(none)"
DECISION_SAMPLE = 64

# What one routed answer adds to the counters: its reason, network label and edge names.
RouteKey = tuple[str, str, tuple[str, ...]]


def qtype_label(qtype: int) -> str:
    return _QTYPES.get(qtype, "OTHER")


def rcode_label(rcode: int) -> str:
    return _RCODES.get(rcode, "OTHER")


class _QueryCounts(Collector):
    """Queries by type and rcode, answers by edge and network, decisions by reason."""

    def __init__(self) -> None:
        self.replies: dict[tuple[int, int], int] = {}
        self.routes: dict[RouteKey, int] = {}

    def describe(self) -> list[Metric]:
        return list(self.collect())  # the names, so that the registry refuses duplicates

    def collect(self) -> Iterator[Metric]:
        queries = CounterMetricFamily(
            "cdn_router_queries",
            "DNS responses sent, by query type and response code",
            labels=["qtype", "rcode"],
        )
        by_label: dict[tuple[str, str], int] = {}
        for (qtype, rcode), count in self.replies.items():
            label = (qtype_label(qtype), rcode_label(rcode))
            by_label[label] = by_label.get(label, 0) + count
        for label, count in sorted(by_label.items()):
            queries.add_metric(label, count)
        answers = CounterMetricFamily(
            "cdn_router_answers",
            "Edges handed out, by edge and client network",
            labels=["edge", "network"],
        )
        reasons = CounterMetricFamily(
            "cdn_router_decisions",
            "Routed answers, by the reason of the decision",
            labels=["reason"],
        )
        by_edge: dict[tuple[str, str], int] = {}
        by_reason: dict[str, int] = {}
        for (reason, network, edges), count in self.routes.items():
            by_reason[reason] = by_reason.get(reason, 0) + count
            for edge in edges:
                by_edge[(edge, network)] = by_edge.get((edge, network), 0) + count
        for edge_label, count in sorted(by_edge.items()):
            answers.add_metric(edge_label, count)
        for reason, count in sorted(by_reason.items()):
            reasons.add_metric([reason], count)
        yield from (queries, answers, reasons)


class RouterMetrics:
    """Queries by type and rcode, answers by edge and client network, decision latency."""

    def __init__(
        self, registry: CollectorRegistry, *, edges: Iterable[str], networks: Iterable[str]
    ) -> None:
        self._edges = frozenset(edges)
        self._networks = frozenset(networks)
        self._counts = _QueryCounts()
        registry.register(self._counts)
        self._replies = self._counts.replies
        self._routes = self._counts.routes
        self.dropped = Counter(
            "cdn_router_dropped",
            "Queries dropped without an answer, by cause",
            ["cause"],
            registry=registry,
        )
        self.decision_seconds = Histogram(
            "cdn_router_decision_seconds",
            f"Time to map a client to its answer (one routed query in {DECISION_SAMPLE})",
            buckets=(1e-6, 3e-6, 1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 1e-2),
            registry=registry,
        )
        self.snapshot_errors = Counter(
            "cdn_router_snapshot_errors",
            "Failed reads of the control plane (the last routing table stays in use)",
            registry=registry,
        )
        self.tcp_refused = Counter(
            "cdn_router_tcp_refused",
            "TCP connections closed at once, by the connection limit they hit",
            ["limit"],
            registry=registry,
        )
        for refusal in Refusal:
            self.tcp_refused.labels(refusal.value)  # exported as 0 before the first refusal
        self._dropped: dict[str, Counter] = {}

    def reply(self, qtype: int, rcode: int) -> None:
        key = (qtype, rcode)
        self._replies[key] = self._replies.get(key, 0) + 1

    def route_key(self, route: ClientRoute) -> RouteKey:
        """What counting ``route`` adds; compute once per route, pass to :meth:`count_route`."""
        network = route.network if route.network in self._networks else UNKNOWN_NETWORK
        edges = tuple(e.name for e in route.edges if e.name in self._edges)
        return route.reason.value, network, edges

    def count_route(self, key: RouteKey) -> None:
        self._routes[key] = self._routes.get(key, 0) + 1

    def drop(self, cause: str) -> None:
        child = self._dropped.get(cause)
        if child is None:
            child = self._dropped[cause] = self.dropped.labels(cause)
        child.inc()

    def refuse_connection(self, refusal: Refusal) -> None:
        self.tcp_refused.labels(refusal.value).inc()
