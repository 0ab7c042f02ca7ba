"""From per-request records to a load-test report: TTFB percentiles, hit ratio, origin offload.

Everything here is pure: it takes records and counters and returns values or text, so the
experiment driver, the locustfile and the tests share one definition of each number.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from loadtest.records import RequestRecord

ALL_REGIONS = "all"


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0..100) with linear interpolation between ranks; None if empty."""
    if not 0 <= q <= 100:
        raise ValueError(f"a percentile is in 0..100 (got {q})")
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def origin_object_requests(stats: Mapping[str, Any]) -> int:
    """The ``/obj/`` requests the demo origin served, from its ``/stats`` JSON."""
    by_kind = stats.get("by_kind")
    if not isinstance(by_kind, Mapping) or not isinstance(by_kind.get("obj"), int):
        raise ValueError(f"not the demo origin's /stats (no by_kind.obj count): {stats!r}")
    count: int = by_kind["obj"]
    return count


@dataclass(frozen=True, slots=True, kw_only=True)
class RegionStats:
    region: str
    requests: int
    errors: int
    responses: int
    edge_hits: int
    ttfb_p50_ms: float | None
    ttfb_p95_ms: float | None

    @property
    def hit_ratio(self) -> float | None:
        return self.edge_hits / self.responses if self.responses else None


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadReport:
    """One run: per-region numbers, the whole run (region ``all``), origin offload and errors."""

    label: str
    duration_s: float
    regions: tuple[RegionStats, ...]
    overall: RegionStats
    origin_requests: int | None
    errors_by_kind: dict[str, int] = field(default_factory=dict)
    failovers: int = 0

    @property
    def origin_fraction(self) -> float | None:
        """Origin requests over user requests (what reached the origin)."""
        if self.origin_requests is None or not self.overall.requests:
            return None
        return self.origin_requests / self.overall.requests

    @property
    def origin_offload(self) -> float | None:
        """The share of user requests the CDN kept away from the origin: 1 - origin fraction."""
        fraction = self.origin_fraction
        return None if fraction is None else 1.0 - fraction

    def region(self, name: str) -> RegionStats | None:
        return next((r for r in self.regions if r.region == name), None)

    def to_json(self) -> dict[str, Any]:
        def stats(r: RegionStats) -> dict[str, Any]:
            return {**asdict(r), "hit_ratio": r.hit_ratio}

        return {
            "label": self.label,
            "duration_s": self.duration_s,
            "regions": [stats(r) for r in self.regions],
            "overall": stats(self.overall),
            "origin_requests": self.origin_requests,
            "origin_fraction": self.origin_fraction,
            "origin_offload": self.origin_offload,
            "errors_by_kind": dict(self.errors_by_kind),
            "failovers": self.failovers,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LoadReport:
        """The report back from its :meth:`to_json` form."""

        def stats(d: Mapping[str, Any]) -> RegionStats:
            return RegionStats(**{k: v for k, v in d.items() if k != "hit_ratio"})

        return cls(
            label=data["label"],
            duration_s=data["duration_s"],
            regions=tuple(stats(r) for r in data["regions"]),
            overall=stats(data["overall"]),
            origin_requests=data["origin_requests"],
            errors_by_kind=dict(data["errors_by_kind"]),
            failovers=data["failovers"],
        )


def region_stats(region: str, records: Sequence[RequestRecord]) -> RegionStats:
    ttfbs = [r.ttfb_ms for r in records if r.ok and r.ttfb_ms is not None]
    return RegionStats(
        region=region,
        requests=len(records),
        errors=sum(1 for r in records if not r.ok),
        responses=sum(1 for r in records if r.status is not None),
        edge_hits=sum(1 for r in records if r.status is not None and r.edge_hit),
        ttfb_p50_ms=percentile(ttfbs, 50),
        ttfb_p95_ms=percentile(ttfbs, 95),
    )


def build_report(
    records: Iterable[RequestRecord],
    *,
    label: str,
    duration_s: float,
    origin_requests: int | None = None,
) -> LoadReport:
    """Aggregate ``records``; ``origin_requests`` is the origin's count over the same window."""
    all_records = list(records)
    by_region: dict[str, list[RequestRecord]] = {}
    for record in all_records:
        by_region.setdefault(record.region, []).append(record)
    errors = Counter(_error_kind(r) for r in all_records if not r.ok)
    return LoadReport(
        label=label,
        duration_s=duration_s,
        regions=tuple(region_stats(name, by_region[name]) for name in sorted(by_region)),
        overall=region_stats(ALL_REGIONS, all_records),
        origin_requests=origin_requests,
        errors_by_kind=dict(sorted(errors.items())),
        failovers=sum(1 for r in all_records if r.attempts > 1),
    )


def _error_kind(record: RequestRecord) -> str:
    if record.error is not None:
        return record.error.split(":", 1)[0]
    return f"HTTP {record.status}"


# --- text -----------------------------------------------------------------------------------


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def summary_text(report: LoadReport) -> str:
    """A readable summary of one run."""
    lines = [
        f"run {report.label!r}: {report.overall.requests} requests in {report.duration_s:.0f}s",
        f"{'region':<10} {'requests':>9} {'errors':>7} {'TTFB p50':>10} {'TTFB p95':>10} "
        f"{'hit ratio':>10}",
    ]
    for stats in (*report.regions, report.overall):
        lines.append(
            f"{stats.region:<10} {stats.requests:>9} {stats.errors:>7} "
            f"{_ms(stats.ttfb_p50_ms):>10} {_ms(stats.ttfb_p95_ms):>10} "
            f"{_pct(stats.hit_ratio):>10}"
        )
    if report.origin_requests is not None:
        lines.append(
            f"origin: {report.origin_requests} object requests for {report.overall.requests} "
            f"user requests (fraction {_pct(report.origin_fraction)}, "
            f"offload {_pct(report.origin_offload)})"
        )
    errors = ", ".join(f"{k}: {n}" for k, n in report.errors_by_kind.items()) or "none"
    lines.append(f"errors: {errors}; requests that failed over to another edge: {report.failovers}")
    return "\n".join(lines)


def _ratio(numerator: float | None, denominator: float | None) -> str:
    if numerator is None or not denominator:
        return "-"
    return f"{numerator / denominator:.2f}x"


def ttfb_comparison(base: LoadReport, other: LoadReport) -> str:
    """Per-region p50 TTFB of two runs side by side, with ``other / base``."""
    lines = [
        f"p50 TTFB (ms)   {base.label:>14} {other.label:>14} {'ratio':>8}",
    ]
    names = sorted({r.region for r in (*base.regions, *other.regions)})
    for name in [*names, ALL_REGIONS]:
        a = base.overall if name == ALL_REGIONS else base.region(name)
        b = other.overall if name == ALL_REGIONS else other.region(name)
        pa = a.ttfb_p50_ms if a else None
        pb = b.ttfb_p50_ms if b else None
        lines.append(f"{name:<15} {_ms(pa):>14} {_ms(pb):>14} {_ratio(pb, pa):>8}")
    return "\n".join(lines)


def offload_comparison(base: LoadReport, other: LoadReport) -> str:
    """Origin offload and edge hit ratio of two runs side by side."""
    rows = [
        ("user requests", str(base.overall.requests), str(other.overall.requests)),
        ("origin requests", str(base.origin_requests), str(other.origin_requests)),
        ("origin fraction", _pct(base.origin_fraction), _pct(other.origin_fraction)),
        ("origin offload", _pct(base.origin_offload), _pct(other.origin_offload)),
        ("edge hit ratio", _pct(base.overall.hit_ratio), _pct(other.overall.hit_ratio)),
    ]
    lines = [f"{'':<16} {base.label:>14} {other.label:>14}"]
    lines += [f"{name:<16} {a:>14} {b:>14}" for name, a, b in rows]
    return "\n".join(lines)
