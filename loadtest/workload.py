"""What simulated users ask for: a Zipf popularity law over the catalogue, plus one-hit wonders.

Web object popularity is close to Zipf's law: the k-th most popular object is requested with a
probability proportional to ``1 / k**alpha``, with alpha usually between 0.6 and 1 (Breslau et
al., "Web Caching and Zipf-like Distributions", 1999). A share of requests goes to URLs that are
asked for once and never again (one-hit wonders, here ``/obj/<id>?v=<unique>``): they can only
miss, and a cache that admits them wastes room.
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

DEFAULT_ALPHA = 0.9
DEFAULT_ONE_HIT_SHARE = 0.1


class ZipfSampler:
    """Draw ranks 0..n-1 with probability proportional to ``1 / (rank + 1) ** alpha``."""

    def __init__(self, n: int, alpha: float = DEFAULT_ALPHA) -> None:
        if n < 1:
            raise ValueError(f"a Zipf law needs at least one item (got n={n})")
        if not alpha > 0:
            raise ValueError(f"the Zipf exponent must be positive (got alpha={alpha})")
        weights = [math.pow(rank, -alpha) for rank in range(1, n + 1)]
        self._cumulative = list(itertools.accumulate(weights))
        self._total = self._cumulative[-1]
        self.n = n
        self.alpha = alpha

    def probability(self, rank: int) -> float:
        """The probability of drawing ``rank`` (0 is the most popular)."""
        if not 0 <= rank < self.n:
            raise ValueError(f"rank must be in 0..{self.n - 1} (got {rank})")
        previous = self._cumulative[rank - 1] if rank else 0.0
        return (self._cumulative[rank] - previous) / self._total

    def sample(self, rng: random.Random) -> int:
        """One rank, drawn with ``rng`` (inverse transform sampling over the cumulative sum)."""
        rank = bisect.bisect_right(self._cumulative, rng.random() * self._total)
        return min(rank, self.n - 1)


@dataclass(frozen=True, slots=True, kw_only=True)
class Request:
    path: str
    one_hit: bool


class Workload:
    """The paths one user requests: popular ids by Zipf rank, and unique one-hit wonders.

    ``ids`` are ordered most popular first. ``token`` makes one-hit URLs unique across users.
    """

    def __init__(
        self,
        ids: Sequence[int],
        *,
        rng: random.Random,
        token: str,
        alpha: float = DEFAULT_ALPHA,
        one_hit_share: float = DEFAULT_ONE_HIT_SHARE,
    ) -> None:
        if not ids:
            raise ValueError("the workload needs at least one object id")
        if not 0.0 <= one_hit_share <= 1.0:
            raise ValueError(f"one_hit_share must be in [0, 1] (got {one_hit_share})")
        self._ids = tuple(ids)
        self._zipf = ZipfSampler(len(self._ids), alpha)
        self._rng = rng
        self._token = token
        self._one_hit_share = one_hit_share
        self._counter = itertools.count()

    def next_request(self) -> Request:
        object_id = self._ids[self._zipf.sample(self._rng)]
        if self._rng.random() < self._one_hit_share:
            unique = f"{self._token}-{next(self._counter)}"
            return Request(path=f"/obj/{object_id}?v={unique}", one_hit=True)
        return Request(path=f"/obj/{object_id}", one_hit=False)


def popular_order(ids: Sequence[int], *, seed: int) -> list[int]:
    """``ids`` shuffled by ``seed``: the popularity order every user of one run shares."""
    order = list(ids)
    random.Random(seed).shuffle(order)
    return order
