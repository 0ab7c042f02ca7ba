"""The overlay's Prometheus alerting rules, as data (``rules.yml`` here is their YAML).

Every expression uses the metric names the nodes and the router export (``edge/metrics.py``,
``overlay/path.py``, ``router/metrics.py``) and the job names of
:mod:`infra.monitoring.scrape`; the tests check both. ``cdn monitoring rules`` prints
:func:`render`. Thresholds are starting points: tune them
to the traffic of the overlay.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from infra.monitoring.yaml_text import dump

_ALL_JOBS = 'job=~"cdn-edges|cdn-shields|cdn-router"'
_NODE_JOBS = 'job=~"cdn-edges|cdn-shields"'


@dataclass(frozen=True, slots=True, kw_only=True)
class Rule:
    alert: str
    expr: str
    for_: str
    severity: str
    summary: str

    def document(self) -> dict[str, Any]:
        return {
            "alert": self.alert,
            "expr": self.expr,
            "for": self.for_,
            "labels": {"severity": self.severity},
            "annotations": {"summary": self.summary},
        }


NODE_RULES = (
    Rule(
        alert="CdnTargetDown",
        expr=f"up{{{_ALL_JOBS}}} == 0",
        for_="1m",
        severity="critical",
        summary="{{ $labels.node }} ({{ $labels.role }}) has not answered scrapes for 1m",
    ),
    Rule(
        alert="CdnServerErrors",
        expr=(
            'sum by (node, role) (rate(cdn_requests_total{status="5xx"}[5m]))'
            f" / sum by (node, role) (rate(cdn_requests_total{{{_NODE_JOBS}}}[5m])) > 0.05"
        ),
        for_="5m",
        severity="critical",
        summary="{{ $labels.node }} answers more than 5% of requests with a 5xx",
    ),
    Rule(
        alert="CdnEdgeHitRatioLow",
        expr=(
            'sum by (node) (rate(cdn_requests_total{job="cdn-edges",'
            'cache=~"hit|stale|revalidated|collapsed"}[15m]))'
            ' / sum by (node) (rate(cdn_requests_total{job="cdn-edges",cache!="rejected"}[15m]))'
            ' < 0.5 and sum by (node) (rate(cdn_requests_total{job="cdn-edges"}[15m])) > 10'
        ),
        for_="30m",
        severity="warning",
        summary="{{ $labels.node }} serves less than half of its requests from cache",
    ),
    Rule(
        alert="CdnUpstreamFailing",
        expr=(
            'sum by (node, role) (rate(cdn_upstream_requests_total{result!="ok"}[5m]))'
            " / sum by (node, role) (rate(cdn_upstream_requests_total[5m])) > 0.1"
        ),
        for_="5m",
        severity="warning",
        summary="more than 10% of {{ $labels.node }}'s upstream requests time out or fail",
    ),
    Rule(
        alert="CdnUpstreamSlow",
        expr=(
            "histogram_quantile(0.95, sum by (node, role, le)"
            " (rate(cdn_upstream_first_byte_seconds_bucket[5m]))) > 2"
        ),
        for_="10m",
        severity="warning",
        summary="{{ $labels.node }}'s 95th percentile upstream first byte is above 2s",
    ),
    Rule(
        alert="CdnOverlayFailovers",
        expr="sum by (node) (rate(cdn_overlay_failovers_total[5m])) > 1",
        for_="10m",
        severity="warning",
        summary="{{ $labels.node }} abandons more than one overlay path a second",
    ),
)

ROUTER_RULES = (
    Rule(
        alert="CdnRouterControlPlaneUnreadable",
        expr="increase(cdn_router_snapshot_errors_total[5m]) > 0",
        for_="5m",
        severity="critical",
        summary="the router cannot read the control plane: it routes on an old table",
    ),
    Rule(
        alert="CdnRouterNoHealthyEdge",
        expr='sum(rate(cdn_router_decisions_total{reason="no_healthy_edge"}[5m])) > 0',
        for_="2m",
        severity="critical",
        summary="the router answers some clients with no healthy edge",
    ),
    Rule(
        alert="CdnRouterNoRttData",
        expr=(
            'sum(rate(cdn_router_decisions_total{reason=~"no_rtt_data|unknown_network"}[15m]))'
            " / sum(rate(cdn_router_decisions_total[15m])) > 0.2"
        ),
        for_="15m",
        severity="warning",
        summary="more than 20% of DNS answers are not latency-based (unknown networks, no RTT)",
    ),
    Rule(
        alert="CdnRouterServfail",
        expr='sum(rate(cdn_router_queries_total{rcode="SERVFAIL"}[5m])) > 0',
        for_="5m",
        severity="warning",
        summary="the router answers queries with SERVFAIL",
    ),
    Rule(
        alert="CdnRouterRateLimiting",
        expr='sum(rate(cdn_router_dropped_total{cause="rate_limited"}[5m])) > 10',
        for_="10m",
        severity="warning",
        summary="the router drops more than 10 queries a second to its rate limit",
    ),
)


def rules_document() -> dict[str, Any]:
    """The Prometheus rule file: one group for the nodes, one for the router."""
    return {
        "groups": [
            {"name": "cdn-nodes", "rules": [r.document() for r in NODE_RULES]},
            {"name": "cdn-router", "rules": [r.document() for r in ROUTER_RULES]},
        ]
    }


_HEADER = (
    "# Alerting rules of the overlay, generated by `cdn monitoring rules` from\n"
    "# infra/monitoring/rules.py. Edit that file and regenerate this one.\n"
)


def render() -> str:
    """:func:`rules_document` as YAML text, with a header naming its origin (``rules.yml``)."""
    return _HEADER + dump(rules_document())
