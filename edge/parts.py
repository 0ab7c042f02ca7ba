"""What the parts of one node's handler share: the store, the coalescer, the answers, the
upstream sender, the metrics, the cache options and the clock. Built once by
:class:`edge.handler.EdgeHandler` and handed to the miss path, the refresher and the
pass-through, so that none of them wires itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from cdn_core.cache_policy import CacheOptions
from edge.answers import Answers
from edge.coalesce import Coalescer
from edge.metrics import EdgeMetrics
from edge.sending import Sender
from edge.store import CacheStore


@dataclass(frozen=True, slots=True, kw_only=True)
class Parts:
    answers: Answers
    sender: Sender
    store: CacheStore
    coalescer: Coalescer
    metrics: EdgeMetrics
    options: CacheOptions
    clock: Callable[[], float]
