"""The chaos scenario's verdict: errors after the kill, and how long until traffic settled.

Traffic counts as settled from the end of the last request, started after the kill, that failed
or needed a failover to another edge; after that every request succeeded on its first edge.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from loadtest.records import RequestRecord
from loadtest.report import percentile


@dataclass(frozen=True, slots=True, kw_only=True)
class ChaosOutcome:
    killed: tuple[str, ...]
    kill_at: float
    requests_after_kill: int
    errors_after_kill: int
    failovers_after_kill: int
    settled_after_s: float

    def to_json(self) -> dict[str, Any]:
        return {
            "killed": list(self.killed),
            "requests_after_kill": self.requests_after_kill,
            "errors_after_kill": self.errors_after_kill,
            "failovers_after_kill": self.failovers_after_kill,
            "settled_after_s": round(self.settled_after_s, 3),
        }

    def summary(self) -> str:
        return (
            f"chaos: killed {', '.join(self.killed)}; after the kill "
            f"{self.errors_after_kill} errors (goal 0) and {self.failovers_after_kill} failovers "
            f"in {self.requests_after_kill} requests; traffic settled "
            f"{self.settled_after_s:.1f}s after the kill"
        )


def chaos_outcome(
    records: Iterable[RequestRecord], *, kill_at: float, killed: Sequence[str]
) -> ChaosOutcome:
    """Judge the records of a run in which ``killed`` nodes died at wall-clock ``kill_at``."""
    after = [r for r in records if r.started_at + r.total_ms / 1000 >= kill_at]
    disturbed = [r for r in after if not r.ok or r.attempts > 1]
    last_end = max((r.started_at + r.total_ms / 1000 for r in disturbed), default=kill_at)
    return ChaosOutcome(
        killed=tuple(killed),
        kill_at=kill_at,
        requests_after_kill=len(after),
        errors_after_kill=sum(1 for r in after if not r.ok),
        failovers_after_kill=sum(1 for r in after if r.attempts > 1),
        settled_after_s=max(0.0, last_end - kill_at),
    )


def timeline(
    records: Iterable[RequestRecord], *, start: float, bucket_s: float = 1.0
) -> list[dict[str, Any]]:
    """Per ``bucket_s`` from ``start``: requests, errors, failovers and p50 TTFB."""
    if bucket_s <= 0:
        raise ValueError(f"bucket_s must be positive (got {bucket_s})")
    buckets: dict[int, list[RequestRecord]] = {}
    for record in records:
        buckets.setdefault(int((record.started_at - start) // bucket_s), []).append(record)
    rows = []
    for index in sorted(buckets):
        group = buckets[index]
        ttfbs = [r.ttfb_ms for r in group if r.ok and r.ttfb_ms is not None]
        p50 = percentile(ttfbs, 50)
        rows.append(
            {
                "t_s": round(index * bucket_s, 3),
                "requests": len(group),
                "errors": sum(1 for r in group if not r.ok),
                "failovers": sum(1 for r in group if r.attempts > 1),
                "ttfb_p50_ms": None if p50 is None else round(p50, 1),
            }
        )
    return rows
