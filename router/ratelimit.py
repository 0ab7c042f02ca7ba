"""Per-source token buckets: a flood from one address is dropped, others are unaffected."""

from __future__ import annotations

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
