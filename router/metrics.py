"""The router's Prometheus metrics, built against an injected registry with bounded labels."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram

from cdn_core.routing import ClientRoute

_QTYPES = {1: "A", 2: "NS", 6: "SOA", 28: "AAAA", 255: "ANY"}
_RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}
_RCODES[16] = "BADVERS"
UNKNOWN_NETWORK = "(none)"


def qtype_label(qtype: int) -> str:
    return _QTYPES.get(qtype, "OTHER")


def rcode_label(rcode: int) -> str:
    return _RCODES.get(rcode, "OTHER")


class RouterMetrics:
    """Queries by type and rcode, answers by edge and client network, decision latency."""

    def __init__(
        self, registry: CollectorRegistry, *, edges: Iterable[str], networks: Iterable[str]
    ) -> None:
        self._edges = frozenset(edges)
        self._networks = frozenset(networks)
        self.queries = Counter(
            "cdn_router_queries",
            "DNS responses sent, by query type and response code",
            ["qtype", "rcode"],
            registry=registry,
        )
        self.answers = Counter(
            "cdn_router_answers",
            "Edges handed out, by edge and client network",
            ["edge", "network"],
            registry=registry,
        )
        self.reasons = Counter(
            "cdn_router_decisions",
            "Routed answers, by the reason of the decision",
            ["reason"],
            registry=registry,
        )
        self.dropped = Counter(
            "cdn_router_dropped",
            "Queries dropped without an answer, by cause",
            ["cause"],
            registry=registry,
        )
        self.decision_seconds = Histogram(
            "cdn_router_decision_seconds",
            "Time to map a client to its answer",
            buckets=(1e-6, 3e-6, 1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 1e-2),
            registry=registry,
        )
        self.snapshot_errors = Counter(
            "cdn_router_snapshot_errors",
            "Failed reads of the control plane (the last routing table stays in use)",
            registry=registry,
        )

        # Labelled children are cached: .labels() costs more than .inc() on the query path.
        self._children: dict[tuple[object, ...], Counter] = {}

    def _child(self, counter: Counter, *labels: str) -> Counter:
        key = (id(counter), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = counter.labels(*labels)
        return child

    def reply(self, qtype: int, rcode: int) -> None:
        self._child(self.queries, qtype_label(qtype), rcode_label(rcode)).inc()

    def route(self, route: ClientRoute, seconds: float) -> None:
        self.decision_seconds.observe(seconds)
        self._child(self.reasons, route.reason.value).inc()
        network = route.network if route.network in self._networks else UNKNOWN_NETWORK
        for edge in route.edges:
            if edge.name in self._edges:
                self._child(self.answers, edge.name, network).inc()

    def drop(self, cause: str) -> None:
        self.dropped.labels(cause).inc()
