"""Aggregating per-request records into the report, and the side-by-side tables."""

from __future__ import annotations

import json

import pytest

from loadtest.chaos import chaos_outcome, timeline
from loadtest.records import RequestRecord
from loadtest.report import (
    LoadReport,
    build_report,
    offload_comparison,
    origin_object_requests,
    percentile,
    summary_text,
    ttfb_comparison,
)


def record(
    region: str = "eu",
    ttfb: float = 10.0,
    *,
    hit: bool = False,
    status: int = 200,
    error: str | None = None,
    at: float = 0.0,
    attempts: int = 1,
) -> RequestRecord:
    member = "edge-1; hit" if hit else "edge-1; fwd=uri-miss; fwd-status=200"
    return RequestRecord(
        region=region,
        path="/obj/1",
        started_at=at,
        ttfb_ms=None if error else ttfb,
        total_ms=ttfb,
        status=None if error else status,
        cache_status=None if error else member,
        edge=None if error else "127.0.1.1",
        error=error,
        attempts=attempts,
    )


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [([1, 2, 3, 4, 5], 50, 3), ([1, 2, 3, 4], 50, 2.5), ([10], 95, 10), ([0, 100], 95, 95)],
)
def test_percentile(values, q, expected):
    assert percentile(values, q) == pytest.approx(expected)


def test_percentile_of_nothing_and_bad_q():
    assert percentile([], 50) is None
    with pytest.raises(ValueError, match="0..100"):
        percentile([1], 101)


def test_report_per_region_hits_errors_and_offload():
    records = [
        *(record("eu", float(t), hit=t % 2 == 0) for t in range(1, 101)),
        *(record("us", 50.0, hit=True) for _ in range(10)),
        record("us", error="connect: ConnectionRefusedError"),
        record("us", status=503),
        record("us", attempts=2),
    ]
    report = build_report(records, label="latency", duration_s=60, origin_requests=20)
    eu, us = report.region("eu"), report.region("us")
    assert eu is not None and us is not None
    assert eu.requests == 100 and eu.errors == 0
    assert eu.ttfb_p50_ms == pytest.approx(50.5)
    assert eu.ttfb_p95_ms == pytest.approx(95.05)
    assert eu.hit_ratio == pytest.approx(0.5)
    assert us.requests == 13 and us.errors == 2
    assert us.responses == 12  # the 503 is a response, the refused connection is not
    assert us.ttfb_p50_ms == pytest.approx(50.0)  # errors carry no TTFB
    assert report.overall.requests == 113
    assert report.origin_fraction == pytest.approx(20 / 113)
    assert report.origin_offload == pytest.approx(1 - 20 / 113)
    assert report.errors_by_kind == {"HTTP 503": 1, "connect": 1}
    assert report.failovers == 1
    data = json.loads(json.dumps(report.to_json()))
    assert LoadReport.from_json(data) == report
    assert data["overall"]["hit_ratio"] == pytest.approx(report.overall.hit_ratio)
    assert [r["region"] for r in data["regions"]] == ["eu", "us"]
    text = summary_text(report)
    assert "eu" in text and "offload 82.3%" in text and "HTTP 503: 1" in text


def test_empty_report_has_no_numbers_but_does_not_crash():
    report = build_report([], label="empty", duration_s=0)
    assert report.overall.requests == 0
    assert report.overall.ttfb_p50_ms is None and report.overall.hit_ratio is None
    assert report.origin_offload is None
    assert "errors: none" in summary_text(report)


def test_ttfb_comparison_prints_the_ratio_per_region():
    base = build_report([record("eu", 10.0), record("us", 20.0)], label="latency", duration_s=1)
    other = build_report([record("eu", 30.0)], label="round-robin", duration_s=1)
    lines = ttfb_comparison(base, other).splitlines()
    assert "latency" in lines[0] and "round-robin" in lines[0]
    assert lines[1].split() == ["eu", "10.0", "30.0", "3.00x"]
    assert lines[2].split() == ["us", "20.0", "-", "-"]
    assert lines[3].split()[0] == "all"


def test_offload_comparison():
    base = build_report([record(hit=True)] * 4, label="tiered", duration_s=1, origin_requests=1)
    other = build_report([record()] * 4, label="direct", duration_s=1, origin_requests=4)
    text = offload_comparison(base, other)
    assert "75.0%" in text and "0.0%" in text


def test_origin_object_requests_reads_the_demo_origin_stats():
    assert origin_object_requests({"total": 9, "by_kind": {"obj": 7, "healthz": 2}}) == 7
    with pytest.raises(ValueError, match="by_kind.obj"):
        origin_object_requests({"total": 3})


def test_chaos_outcome_settles_after_the_last_disturbed_request():
    records = [
        record(at=1.0, error="connect: refused"),  # before the kill: ignored
        record(at=10.5, attempts=2, ttfb=500.0),  # ends at 11.0
        record(at=12.0, error="timeout: x", ttfb=1000.0),  # ends at 13.0
        record(at=14.0),
    ]
    outcome = chaos_outcome(records, kill_at=10.0, killed=["edge-eu-1", "shield-eu-1"])
    assert outcome.requests_after_kill == 3
    assert outcome.errors_after_kill == 1
    assert outcome.failovers_after_kill == 1
    assert outcome.settled_after_s == pytest.approx(3.0)
    assert "edge-eu-1, shield-eu-1" in outcome.summary()
    calm = chaos_outcome([record(at=11.0)], kill_at=10.0, killed=["x"])
    assert calm.settled_after_s == 0.0 and calm.errors_after_kill == 0


def test_timeline_buckets_per_second():
    rows = timeline([record(at=0.2), record(at=0.7, error="e: x"), record(at=2.1)], start=0.0)
    assert [(r["t_s"], r["requests"], r["errors"]) for r in rows] == [(0, 2, 1), (2, 1, 0)]
    with pytest.raises(ValueError, match="positive"):
        timeline([], start=0.0, bucket_s=0)
