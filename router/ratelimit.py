"""Per-source limits: a flood from one address is dropped, others are unaffected.

:class:`RateLimiter` meters UDP queries with a token bucket per source; :class:`ConnectionLimit`
caps the TCP connections open at once, per source and in total, so that one address cannot
hold every connection the router allows.
"""

from __future__ import annotations

import enum
from collections.abc import Callable


class RateLimiter:
    """A token bucket per source address, refilled at ``rate_qps`` up to ``burst`` tokens.

    The table is bounded: when it holds ``max_sources`` buckets the oldest one is forgotten
    (a forgotten source starts again with a full bucket, which errs on the side of answering).
    """

    def __init__(
        self,
        rate_qps: float,
        burst: float,
        *,
        clock: Callable[[], float],
        max_sources: int = 65536,
    ) -> None:
        if rate_qps <= 0 or burst < 1 or max_sources < 1:
            raise ValueError("rate_qps must be > 0, burst >= 1 and max_sources >= 1")
        self.rate_qps = rate_qps
        self.burst = burst
        self.max_sources = max_sources
        self._clock = clock
        self._buckets: dict[str, list[float]] = {}

    def allow(self, source: str) -> bool:
        """Take one token for ``source``; False means drop the query."""
        now = self._clock()
        bucket = self._buckets.get(source)
        if bucket is None:
            if len(self._buckets) >= self.max_sources:
                del self._buckets[next(iter(self._buckets))]
            self._buckets[source] = [self.burst - 1, now]
            return True
        tokens = min(self.burst, bucket[0] + (now - bucket[1]) * self.rate_qps)
        bucket[1] = now
        if tokens < 1:
            bucket[0] = tokens
            return False
        bucket[0] = tokens - 1
        return True

    def __len__(self) -> int:
        return len(self._buckets)


class Refusal(enum.Enum):
    """Which cap a refused TCP connection hit (a metric label)."""

    TOTAL = "total"
    PER_SOURCE = "per_source"


class ConnectionLimit:
    """Counts open connections per source; :meth:`open` refuses one past either cap.

    Only sources with a connection open are in the table, so it is bounded by ``total``.
    """

    def __init__(self, per_source: int, total: int) -> None:
        if per_source < 1 or total < 1:
            raise ValueError("per_source and total must be >= 1")
        self.per_source = per_source
        self.total = total
        self._open: dict[str, int] = {}
        self._count = 0

    def open(self, source: str) -> Refusal | None:
        """Count a new connection from ``source``; a :class:`Refusal` means close it at once."""
        if self._count >= self.total:
            return Refusal.TOTAL
        held = self._open.get(source, 0)
        if held >= self.per_source:
            return Refusal.PER_SOURCE
        self._open[source] = held + 1
        self._count += 1
        return None

    def close(self, source: str) -> None:
        """Forget one connection that :meth:`open` admitted from ``source``."""
        held = self._open.pop(source)
        if held > 1:
            self._open[source] = held - 1
        self._count -= 1

    def held(self, source: str) -> int:
        return self._open.get(source, 0)

    def __len__(self) -> int:
        return self._count
