"""Misses and revalidations of GET and HEAD: one upstream fetch per key, stored as it streams.

Theory of operation. :meth:`MissPath.forward` goes through the coalescer: the first request for
a key leads a :class:`~edge.coalesce.Flight` and fetches inside ``async with flight:``, so the
flight lands (waking the waiters) exactly when that block is left, with the outcome in the
store. A request that finds a flight in the air is served what ``stale-if-error`` allows at
once (a slow or hung origin must not stall it), or waits for the flight and answers from what
it stored. A key found uncacheable skips coalescing for ``hit_for_miss`` (hit-for-miss).

:meth:`MissPath._fetch` sends the request (conditional when a stored copy can be revalidated,
RFC 9111 §4.3.1), freshens the stored copy on a 304 (§4.3.4), serves stale on a 5xx when
allowed (RFC 5861 §4), and otherwise asks :func:`decide_store` (§3). A stored response is
relayed to the client while it is stored; one that is not stored comes back as a
:class:`PassOn`, which is relayed only once the flight has landed, so that waiters need not
wait for its body.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import assert_never

from cdn_core.cache_policy import (
    DontStore,
    Hit,
    Store,
    can_freshen,
    conditional_headers,
    decide_lookup,
    decide_store,
    freshen,
)
from cdn_core.cache_status import Forward
from cdn_core.entry import StoredEntry
from cdn_core.errors import UpstreamError
from cdn_core.freshness import current_age, remaining_ttl_s
from cdn_core.http import RequestHead, ResponseHead
from edge.exchange import Exchange
from edge.forward import declared_length, read_all, relay
from edge.metrics import Outcome
from edge.parts import Parts
from edge.server import Answer, Response
from overlay.upstream import UpstreamResponse


@dataclass(frozen=True, slots=True)
class PassOn:
    """An upstream response to relay uncached, once the flight (if any) has landed."""

    response: UpstreamResponse
    status: str  # this node's Cache-Status member
    prefix: list[bytes] | None = None  # body chunks already read


# What a flight produces: an answer (None: already streamed to the client) or a PassOn.
Fetched = Answer | PassOn


class MissPath:
    """Fetch, revalidate and store for one node."""

    def __init__(self, parts: Parts) -> None:
        self._answers = parts.answers
        self._sender = parts.sender
        self._store = parts.store
        self._coalescer = parts.coalescer
        self._metrics = parts.metrics
        self._options = parts.options
        self._clock = parts.clock

    async def forward(self, x: Exchange, fwd: Forward, entry: StoredEntry | None) -> Answer:
        """Fetch ``x`` through the coalescer: lead the flight for its key, or follow it."""
        if self._coalescer.is_uncacheable(x.key):
            return await self._finish(x, await self._fetch(x, fwd, entry))
        flight = self._coalescer.lead(x.key)
        if flight is None:
            return await self._follow(x, fwd, entry)
        async with flight:
            fetched = await self._fetch(x, fwd, entry)
        return await self._finish(x, fetched)

    async def _follow(self, x: Exchange, fwd: Forward, entry: StoredEntry | None) -> Answer:
        head = x.head
        stale = self._answers.stale_on_error(head, x.key)
        if stale is not None:
            # Another request is refetching this object. Waiting on it would make a slow or
            # hung origin stall every request behind it: what stale-if-error allows is served
            # now, and the refetch lands for everyone.
            return self._answers.serve_stale(
                head, stale, fwd, None, detail="stale-while-revalidating"
            )
        self._metrics.coalesced_waiters.inc()
        await self._coalescer.wait(x.key)
        decision = decide_lookup(
            head, self._store.candidates(x.key), now=self._clock(), options=self._options
        )
        if isinstance(decision, Hit):
            stored = decision.entry
            status = self._answers.status(
                hit=False,
                fwd=fwd,
                fwd_status=stored.response.status,
                ttl_s=decision.ttl_s,
                collapsed=True,
            )
            served = self._answers.serve(head, stored, decision.age_s, status, Outcome.COLLAPSED)
            if served is not None:
                return served
        return await self._finish(x, await self._fetch(x, fwd, entry))

    async def _finish(self, x: Exchange, fetched: Fetched) -> Answer:
        if isinstance(fetched, PassOn):
            return await self.pass_on(x, fetched)
        return fetched

    async def _fetch(self, x: Exchange, fwd: Forward, entry: StoredEntry | None) -> Fetched:
        head = x.head
        conditional = None if entry is None else conditional_headers(entry)
        up_head = self._sender.head_for(head, x.client_ip, full_object=True, extra=conditional)
        request_time = self._clock()
        try:
            response = await self._sender.send(x.upstream, up_head, None)
        except UpstreamError as exc:
            return self._answers.upstream_failed(head, x.key, fwd, exc)
        response_time = self._clock()
        answer = ResponseHead(status=response.status, headers=response.headers)
        if entry is not None and response.status == 304:
            response.release()
            if can_freshen(entry, answer):
                fresh = freshen(
                    entry, answer, request_time=request_time, response_time=response_time
                )
                served = self._freshened(head, fresh, fwd, response_time)
                if served is not None:
                    return served
            return await self._fetch(x, fwd, None)  # the copy is gone or changed: fetch it all
        if response.status >= 500:
            stale = self._answers.stale_on_error(head, x.key)
            if stale is not None:
                response.release()
                return self._answers.serve_stale(head, stale, fwd, response.status)
        decision = decide_store(
            dataclasses.replace(head, method="GET"),
            answer,
            request_time=request_time,
            response_time=response_time,
            body_size=declared_length(response.headers),
            options=self._options,
        )
        match decision:
            case Store(entry=new, ttl_s=ttl):
                self._coalescer.forget_uncacheable(x.key)
                status = self._answers.status(
                    hit=False, fwd=fwd, fwd_status=response.status, stored=True, ttl_s=ttl
                )
                return await self._store_and_send(x, response, new, status)
            case DontStore(hit_for_miss=hit_for_miss, reason=reason):
                if hit_for_miss:
                    self._coalescer.mark_uncacheable(x.key, self._options.hit_for_miss_s)
                status = self._answers.status(
                    hit=False, fwd=fwd, fwd_status=response.status, detail=reason.value
                )
                return PassOn(response, status)
            case unreachable:
                assert_never(unreachable)

    def _freshened(self, head: RequestHead, fresh: StoredEntry, fwd: Forward, now: float) -> Answer:
        if not self._store.replace_head(fresh):
            return None
        ttl = remaining_ttl_s(fresh, now=now, options=self._options)
        status = self._answers.status(hit=False, fwd=fwd, fwd_status=304, ttl_s=ttl)
        age = int(current_age(fresh, now=now))
        return self._answers.serve(head, fresh, age, status, Outcome.REVALIDATED)

    async def _store_and_send(
        self, x: Exchange, response: UpstreamResponse, new: StoredEntry, status: str
    ) -> Fetched:
        head = x.head
        limit = self._options.max_object_bytes
        if _needs_whole_body(head):
            # HEAD, Range and conditional requests are answered from the stored copy.
            try:
                body, prefix = await read_all(response, limit=limit)
            except UpstreamError as exc:
                response.release()
                return self._answers.upstream_failed(head, x.key, Forward.MISS, exc)
            if body is None:
                return PassOn(response, status, prefix)  # too large to keep
            response.release()
            stored = self.put(new, body)
            age = int(current_age(stored, now=self._clock()))
            served = self._answers.serve(head, stored, age, status, Outcome.MISS)
            if served is not None:
                return served
            return self._answers.from_buffer(head, stored, body, age, status)

        def complete(body: bytes | None) -> None:
            if body is not None:
                self.put(new, body)

        relayed = await relay(
            x.request,
            response,
            status=response.status,
            fields=self._answers.client_fields(response.headers, status),
            keep_copy_up_to=limit,
            on_complete=complete,
        )
        self._metrics.answered(Outcome.MISS, response.status, relayed.sent_bytes)
        return None

    def put(self, new: StoredEntry, body: bytes) -> StoredEntry:
        """Store ``new`` with ``body``; the entry as stored (its body size set)."""
        stored = dataclasses.replace(new, body_size=len(body))
        self._store.put(stored, body)
        return stored

    async def pass_on(self, x: Exchange, passed: PassOn) -> Answer:
        """Relay an upstream response to the client without storing it."""
        response = passed.response
        fields = self._answers.client_fields(response.headers, passed.status)
        if x.head.method == "HEAD":
            response.release()
            length = declared_length(response.headers)
            if length is not None and response.status not in (204, 304):
                fields.append(("Content-Length", str(length)))
            self._metrics.answered(Outcome.PASS, response.status, 0)
            return Response(response.status, fields)
        relayed = await relay(
            x.request,
            response,
            status=response.status,
            fields=fields,
            keep_copy_up_to=None,
            prefix=passed.prefix,
        )
        self._metrics.answered(Outcome.PASS, response.status, relayed.sent_bytes)
        return None


def _needs_whole_body(head: RequestHead) -> bool:
    if head.method == "HEAD":
        return True
    headers = head.headers
    return "range" in headers or "if-none-match" in headers or "if-modified-since" in headers
