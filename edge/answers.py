"""The node's answers: objects served from the store, stale copies, refusals and errors.

:class:`Answers` is what every part of the handler calls to respond without going upstream:
it serves a stored object (:func:`edge.respond.from_cache`) and counts it, serves what
``stale-if-error`` allows (RFC 5861 §4), turns an upstream failure into a stale copy or a
502/503/504, refuses bad input, and writes this node's ``Cache-Status`` member (RFC 9211).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from cdn_core.cache_policy import CacheOptions, can_serve_stale_on_error, select_variant
from cdn_core.cache_status import Forward, cache_status_entry
from cdn_core.entry import StoredEntry
from cdn_core.errors import UpstreamError, UpstreamTimeout
from cdn_core.freshness import current_age, remaining_ttl_s
from cdn_core.http import Headers, RequestHead
from cdn_core.response_headers import client_headers
from edge.breaker import CircuitOpen
from edge.limits import RequestRejected
from edge.metrics import EdgeMetrics, Outcome
from edge.respond import (
    Field,
    ServerResponse,
    error_response,
    from_cache,
    to_fields,
    with_node_fields,
)
from edge.server import Response
from edge.store import CacheStore, Slot

# The memo of this node's Cache-Status member of a hit, per whole second of TTL (bounded).
_MAX_HIT_STATUSES = 1024


class Answers:
    """Responses of one node that need no upstream; ``node`` names its Cache-Status member."""

    def __init__(
        self,
        *,
        node: str,
        store: CacheStore,
        metrics: EdgeMetrics,
        options: CacheOptions,
        clock: Callable[[], float],
    ) -> None:
        self.node = node
        self.via = f"1.1 {node}"
        self._store = store
        self._metrics = metrics
        self._options = options
        self._clock = clock
        self._hit_statuses: dict[int, str] = {}

    # -- Cache-Status ----------------------------------------------------------------------

    def status(self, **params: Any) -> str:
        return cache_status_entry(self.node, **params)

    def hit_status(self, ttl_s: float) -> str:
        """``self.status(hit=True, ttl_s=ttl_s)``, memoised per whole second of TTL."""
        if not math.isfinite(ttl_s):
            return self.status(hit=True, ttl_s=ttl_s)
        whole = math.floor(ttl_s)
        status = self._hit_statuses.get(whole)
        if status is None:
            if len(self._hit_statuses) >= _MAX_HIT_STATUSES:
                self._hit_statuses.clear()
            status = self._hit_statuses[whole] = self.status(hit=True, ttl_s=whole)
        return status

    # -- from the store --------------------------------------------------------------------

    def serve(
        self, head: RequestHead, entry: StoredEntry, age_s: int, status: str, outcome: Outcome
    ) -> ServerResponse | None:
        """``entry`` from the store, or None when it was evicted meanwhile."""
        slot = self._store.slot(entry)
        if slot is None:
            return None
        return self._from_slot(head, slot, age_s, status, outcome)

    def from_buffer(
        self, head: RequestHead, entry: StoredEntry, body: bytes, age_s: int, status: str
    ) -> ServerResponse:
        """Answer from a fetched body the store did not admit (the policy's call)."""
        return self._from_slot(head, Slot(entry, body), age_s, status, Outcome.MISS)

    def _from_slot(
        self, head: RequestHead, slot: Slot, age_s: int, status: str, outcome: Outcome
    ) -> ServerResponse:
        response, sent = from_cache(head, slot, age_s=age_s, cache_status=status, via=self.via)
        self._metrics.answered(outcome, response.status, sent)
        return response

    def client_fields(self, upstream_headers: Headers, status: str) -> list[Field]:
        """An upstream response's fields as the client gets them, framing left to the server."""
        headers = client_headers(upstream_headers, age_s=None).without("content-length")
        return to_fields(with_node_fields(headers, cache_status=status, via=self.via))

    # -- stale -----------------------------------------------------------------------------

    def stale_on_error(self, head: RequestHead, key: str) -> StoredEntry | None:
        """The stored response that ``stale-if-error`` lets this request have now, if any."""
        entry = select_variant(head, self._store.candidates(key))
        if entry is not None and can_serve_stale_on_error(
            entry, head, now=self._clock(), options=self._options
        ):
            return entry
        return None

    def serve_stale(
        self,
        head: RequestHead,
        entry: StoredEntry,
        fwd: Forward,
        fwd_status: int | None,
        *,
        detail: str = "stale-if-error",
    ) -> ServerResponse:
        now = self._clock()
        ttl = remaining_ttl_s(entry, now=now, options=self._options)
        status = self.status(hit=False, fwd=fwd, fwd_status=fwd_status, ttl_s=ttl, detail=detail)
        age = int(current_age(entry, now=now))
        served = self.serve(head, entry, age, status, Outcome.STALE)
        if served is None:
            return self.error(502, "502 Bad Gateway: the origin failed")
        return served

    # -- failures and refusals -------------------------------------------------------------

    def upstream_failed(
        self,
        head: RequestHead,
        key: str | None,
        fwd: Forward,
        exc: UpstreamError,
        fwd_status: int | None = None,
    ) -> ServerResponse:
        """What stale-if-error allows for ``key``, else the error ``exc`` hints (502/503/504)."""
        if key is not None:
            stale = self.stale_on_error(head, key)
            if stale is not None:
                return self.serve_stale(head, stale, fwd, fwd_status)
        status = exc.status_hint
        phrase = HTTPStatus(status).phrase
        kind = "did not answer in time" if isinstance(exc, UpstreamTimeout) else "failed"
        text = f"{status} {phrase}: the origin of {head.host} {kind} ({exc})"
        extra: tuple[Field, ...] = ()
        if isinstance(exc, CircuitOpen):
            extra = (("Retry-After", str(max(1, math.ceil(exc.retry_after_s)))),)
        return self.error(status, text, fwd=fwd, extra=extra)

    def error(
        self,
        status: int,
        text: str,
        *,
        fwd: Forward | None = None,
        extra: tuple[Field, ...] = (),
    ) -> Response:
        cache_status = self.status(hit=False, fwd=fwd)
        self._metrics.answered(Outcome.ERROR, status, 0)
        return error_response(status, text, cache_status=cache_status, via=self.via, extra=extra)

    def reject(self, exc: RequestRejected) -> Response:
        status = self.status(hit=False, detail="rejected")
        text = f"{exc.status} {HTTPStatus(exc.status).phrase}: {exc.reason}"
        self._metrics.answered(Outcome.REJECTED, exc.status, 0)
        # ``close``: the rest of what the client sent is not read; the connection cannot go on.
        return error_response(
            exc.status, text, cache_status=status, via=self.via, extra=exc.fields, close=exc.close
        )
