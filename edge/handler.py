"""The data-plane request handler: aiohttp requests in, cdn_core decisions, aiohttp responses out.

Theory of operation. :meth:`EdgeHandler.handle` admits the request (Host of a configured origin,
header and body limits) and turns it into a :class:`RequestHead`. GET and HEAD go through the one
``match`` on :func:`decide_lookup`: a hit is answered from the store; a miss or a revalidation
goes upstream through the request coalescer (one fetch per key, others wait); whatever comes back
goes through :func:`decide_store` and is streamed to the client while it is stored. Unsafe
methods pass through and invalidate (RFC 9111 §4.4). When the upstream fails, a stored response
that ``stale-if-error`` allows is served, else 502/504.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import time
from collections.abc import Callable, Mapping
from http import HTTPStatus
from typing import Any, assert_never
from urllib.parse import urlsplit

from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

from cdn_core.cache_key import normalize_host, primary_key
from cdn_core.cache_policy import (
    LOOKUP_METHODS,
    CacheOptions,
    DontStore,
    Hit,
    Miss,
    OnlyIfCachedMiss,
    Revalidate,
    ServeStale,
    Store,
    can_freshen,
    can_serve_stale_on_error,
    conditional_headers,
    decide_lookup,
    decide_store,
    freshen,
    invalidated_keys,
    select_variant,
)
from cdn_core.cache_status import Forward, cache_status_entry
from cdn_core.config import Config, NodeConfig, OriginConfig, Role
from cdn_core.entry import StoredEntry
from cdn_core.errors import UpstreamError, UpstreamTimeout
from cdn_core.forwarding import upstream_fields, vary_with
from cdn_core.freshness import current_age, remaining_ttl_s
from cdn_core.hop import OVERLAY_PREFIX, HopRefused, check_client_loop, is_overlay_header
from cdn_core.http import Headers, RequestHead, ResponseHead
from cdn_core.response_headers import client_headers
from edge.breaker import CircuitOpen
from edge.coalesce import Coalescer, Flight
from edge.forward import declared_length, read_all, relay, request_body
from edge.limits import (
    RequestRejected,
    check_body_size,
    check_head,
    check_message,
    transfer_coding,
)
from edge.metrics import EdgeMetrics, Outcome, RateMeter, UpstreamResult
from edge.respond import error_response, from_cache, to_aiohttp, with_node_fields
from edge.store import CacheStore, Slot
from edge.upstream import RequestBody, StreamBody, Timeouts, Upstream, UpstreamResponse

log = logging.getLogger(__name__)

MAX_BACKGROUND_REFRESHES = 64

# Bounds of the hit path's memos (each is cleared when full): Host values of configured origins,
# primary keys of (host, target) pairs, and this node's Cache-Status member of a hit per TTL.
_MAX_HOSTS = 256
_MAX_KEYS = 4096
_MAX_HIT_STATUSES = 1024

# The edge always asks upstream for the full object: the client's own validators and ranges
# are answered from the stored copy (RFC 9111 §4.3.2, RFC 9110 §14.2).
_CLIENT_ONLY_FIELDS = (
    "range",
    "if-range",
    "if-none-match",
    "if-modified-since",
    "if-match",
    "if-unmodified-since",
)


class EdgeHandler:
    """Serves one node's data plane; the cache store, coalescer and upstreams are injected."""

    def __init__(
        self,
        *,
        config: Config,
        node: NodeConfig,
        store: CacheStore,
        coalescer: Coalescer,
        upstreams: Mapping[str, Upstream],
        metrics: EdgeMetrics,
        clock: Callable[[], float],
        meter: RateMeter | None = None,
        role: Role | None = None,
    ) -> None:
        self._origins = {host: o for o in config.origins for host in o.hostnames}
        self._node = node.name
        self._cluster = config.cluster
        # An edge faces users; a shield faces edges (its ingress middleware checks the hop).
        self._is_edge = (role or node.role) is Role.EDGE
        self._via = f"1.1 {node.name}"
        self._proxy = config.proxy
        self._options = CacheOptions.from_config(config.cache)
        self._timeouts = Timeouts.from_config(config.proxy)
        self._store = store
        self._coalescer = coalescer
        self._upstreams = upstreams
        self._metrics = metrics
        self._clock = clock
        self._background: set[asyncio.Task[None]] = set()
        self._meter = meter
        # Until the control-plane agent has applied every purge it missed, nothing is served
        # from the cache (DESIGN.md: no purge is lost).
        self.cache_ready: Callable[[], bool] = _always
        # Memos of pure functions of the request, so that a hit does not redo them.
        self._sites: dict[str, tuple[str, OriginConfig]] = {}
        self._keys: dict[tuple[str, str], str] = {}
        self._hit_statuses: dict[int, str] = {}

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        if self._meter is not None:
            self._meter.count += 1
        try:
            head, origin = self._admit(request)
        except RequestRejected as exc:
            return self._reject(exc)
        upstream = self._upstreams[origin.name]
        if head.method in LOOKUP_METHODS:
            return await self._lookup(request, head, upstream)
        return await self._pass_unsafe(request, head, upstream)

    async def close(self) -> None:
        """Stop the background refreshes still running."""
        tasks = list(self._background)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- admission -------------------------------------------------------------------------

    def _admit(self, request: web.BaseRequest) -> tuple[RequestHead, OriginConfig]:
        check_head(request.raw_headers, self._proxy)
        check_message(
            request.version,
            request.method,
            has_body=request.body_exists,
            transfer_coding=transfer_coding(request.headers),
        )
        fields = request.headers
        target = request.raw_path
        if target.startswith("/"):
            host = fields.get("Host", "")
        else:
            # RFC 9112 §3.2.2: the target's authority replaces Host.
            host, target = _absolute_form(target)
        site = self._sites.get(host)
        if site is None:
            site = self._site(host)
        name, origin = site
        check_body_size(request.content_length, self._proxy)
        headers = Headers(fields.items())
        if self._is_edge:
            headers = self._user_fields(fields, headers)
        return RequestHead(method=request.method, host=name, target=target, headers=headers), origin

    def _site(self, host: str) -> tuple[str, OriginConfig]:
        """The normalised name and the origin of a ``Host`` value; 400 or 421 when none."""
        if not host:
            raise RequestRejected(400, "the request has no Host header")
        name = normalize_host(host)
        origin = self._origins.get(name)
        if origin is None:
            raise RequestRejected(
                421, f"this CDN node does not serve the host {name!r} (not a configured origin)"
            )
        if len(self._sites) >= _MAX_HOSTS:
            self._sites.clear()
        self._sites[host] = (name, origin)
        return name, origin

    def _user_fields(self, fields: CIMultiDictProxy[str], headers: Headers) -> Headers:
        """A user's fields minus any ``X-Overlay-*``; 508 when it already crossed this CDN."""
        if "CDN-Loop" in fields and isinstance(
            check_client_loop(headers, cluster=self._cluster), HopRefused
        ):
            raise RequestRejected(
                508, f"the request already went through the CDN {self._cluster!r} (CDN-Loop)"
            )
        # Headers holds lower-cased names: a prefix test is is_overlay_header.
        if any(name.startswith(OVERLAY_PREFIX) for name, _ in headers):
            headers = Headers((k, v) for k, v in headers if not is_overlay_header(k))
        return headers

    def _reject(self, exc: RequestRejected) -> web.Response:
        status = self._status(hit=False, detail="rejected")
        text = f"{exc.status} {HTTPStatus(exc.status).phrase}: {exc.reason}"
        self._metrics.answered(Outcome.REJECTED, exc.status, 0)
        response = error_response(exc.status, text, cache_status=status, via=self._via)
        for name, value in exc.fields:
            response.headers[name] = value
        if exc.close:
            # The rest of what the client sent is not read: the connection cannot go on.
            response.force_close()
        return response

    # -- lookups ---------------------------------------------------------------------------

    async def _lookup(
        self, request: web.BaseRequest, head: RequestHead, upstream: Upstream
    ) -> web.StreamResponse:
        key = self._key(head)
        if not self.cache_ready():
            return await self._forward(request, head, key, upstream, Forward.BYPASS, None)
        now = self._clock()
        decision = decide_lookup(head, self._store.candidates(key), now=now, options=self._options)
        match decision:
            case Hit(entry=entry, age_s=age, ttl_s=ttl):
                status = self._hit_status(ttl)
                served = self._serve(head, entry, age, status, Outcome.HIT)
            case ServeStale(entry=entry, age_s=age, revalidate_in_background=refresh, ttl_s=ttl):
                if refresh:
                    self._refresh_later(head, key, upstream, entry, request.remote)
                detail = "stale-while-revalidate" if refresh else "max-stale"
                status = self._status(hit=True, ttl_s=ttl, detail=detail)
                served = self._serve(head, entry, age, status, Outcome.STALE)
            case Revalidate(entry=entry, reason=reason):
                return await self._forward(request, head, key, upstream, reason.forward, entry)
            case Miss(reason=reason):
                return await self._forward(request, head, key, upstream, reason.forward, None)
            case OnlyIfCachedMiss():
                text = "504 Gateway Timeout: only-if-cached and no usable stored response"
                return self._error(504, text)
            case unreachable:
                assert_never(unreachable)
        if served is not None:
            return served
        return await self._forward(request, head, key, upstream, Forward.URI_MISS, None)

    def _serve(
        self, head: RequestHead, entry: StoredEntry, age_s: int, status: str, outcome: Outcome
    ) -> web.StreamResponse | None:
        slot = self._store.slot(entry)
        if slot is None:
            return None
        response, sent = from_cache(head, slot, age_s=age_s, cache_status=status, via=self._via)
        self._metrics.answered(outcome, response.status, sent)
        return response

    # -- going upstream for GET / HEAD -----------------------------------------------------

    async def _forward(
        self,
        request: web.BaseRequest,
        head: RequestHead,
        key: str,
        upstream: Upstream,
        fwd: Forward,
        entry: StoredEntry | None,
    ) -> web.StreamResponse:
        """Fetch through the coalescer: lead the flight for ``key``, or wait for its leader."""
        if self._coalescer.is_uncacheable(key):
            return await self._fetch(request, head, key, upstream, fwd, entry, None)
        flight = self._coalescer.lead(key)
        if flight is not None:
            try:
                return await self._fetch(request, head, key, upstream, fwd, entry, flight)
            finally:
                self._coalescer.land(key, flight)
        stale = self._stale_on_error(head, key, self._clock())
        if stale is not None:
            # Another request is refetching this object. Waiting on it would make a slow or
            # hung origin stall every request behind it: what stale-if-error allows is served
            # now, and the refetch lands for everyone.
            return self._serve_stale_on_error(
                head, stale, fwd, None, detail="stale-while-revalidating"
            )
        self._metrics.coalesced_waiters.inc()
        await self._coalescer.wait(key)
        decision = decide_lookup(
            head, self._store.candidates(key), now=self._clock(), options=self._options
        )
        if isinstance(decision, Hit):
            stored = decision.entry
            status = self._status(
                hit=False,
                fwd=fwd,
                fwd_status=stored.response.status,
                ttl_s=decision.ttl_s,
                collapsed=True,
            )
            served = self._serve(head, stored, decision.age_s, status, Outcome.COLLAPSED)
            if served is not None:
                return served
        return await self._fetch(request, head, key, upstream, fwd, entry, None)

    async def _fetch(
        self,
        request: web.BaseRequest,
        head: RequestHead,
        key: str,
        upstream: Upstream,
        fwd: Forward,
        entry: StoredEntry | None,
        flight: Flight | None,
    ) -> web.StreamResponse:
        conditional = _conditional(entry)
        up_head = self._upstream_head(head, request.remote, full_object=True, extra=conditional)
        request_time = self._clock()
        try:
            response = await self._send(upstream, up_head, None)
        except UpstreamError as exc:
            return self._upstream_failed(head, key, fwd, exc, None)
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
            return await self._fetch(request, head, key, upstream, fwd, None, flight)
        if response.status >= 500:
            stale = self._stale_on_error(head, key, response_time)
            if stale is not None:
                response.release()
                return self._serve_stale_on_error(head, stale, fwd, response.status)
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
                self._coalescer.forget_uncacheable(key)
                status = self._status(
                    hit=False, fwd=fwd, fwd_status=response.status, stored=True, ttl_s=ttl
                )
                return await self._store_and_send(request, head, key, response, new, status, flight)
            case DontStore(hit_for_miss=hit_for_miss, reason=reason):
                if hit_for_miss:
                    self._coalescer.mark_uncacheable(key, self._options.hit_for_miss_s)
                if flight is not None:
                    self._coalescer.land(key, flight)
                status = self._status(
                    hit=False, fwd=fwd, fwd_status=response.status, detail=reason.value
                )
                return await self._pass_response(request, head, response, status)
            case unreachable:
                assert_never(unreachable)

    def _freshened(
        self, head: RequestHead, fresh: StoredEntry, fwd: Forward, now: float
    ) -> web.StreamResponse | None:
        if not self._store.replace_head(fresh):
            return None
        ttl = remaining_ttl_s(fresh, now=now, options=self._options)
        status = self._status(hit=False, fwd=fwd, fwd_status=304, ttl_s=ttl)
        age = int(current_age(fresh, now=now))
        return self._serve(head, fresh, age, status, Outcome.REVALIDATED)

    async def _store_and_send(
        self,
        request: web.BaseRequest,
        head: RequestHead,
        key: str,
        response: UpstreamResponse,
        new: StoredEntry,
        status: str,
        flight: Flight | None,
    ) -> web.StreamResponse:
        limit = self._options.max_object_bytes
        if _needs_whole_body(head):
            # HEAD, Range and conditional requests are answered from the stored copy.
            try:
                body, prefix = await read_all(response, limit=limit)
            except UpstreamError as exc:
                response.release()
                return self._upstream_failed(head, key, Forward.MISS, exc, None)
            if body is not None:
                response.release()
                stored = self._put(new, body)
                if flight is not None:
                    self._coalescer.land(key, flight)
                age = int(current_age(stored, now=self._clock()))
                served = self._serve(head, stored, age, status, Outcome.MISS)
                if served is not None:
                    return served
                return self._from_buffer(head, stored, body, age, status)
            return await self._pass_response(request, head, response, status, prefix=prefix)

        def complete(body: bytes | None) -> None:
            if body is not None:
                self._put(new, body)
            if flight is not None:
                self._coalescer.land(key, flight)

        fields = self._client_fields(response.headers, status)
        relayed = await relay(
            request,
            response,
            status=response.status,
            headers=fields,
            keep_copy_up_to=limit,
            on_complete=complete,
        )
        self._metrics.answered(Outcome.MISS, response.status, relayed.sent_bytes)
        return relayed.response

    def _put(self, new: StoredEntry, body: bytes) -> StoredEntry:
        stored = dataclasses.replace(new, body_size=len(body))
        self._store.put(stored, body)
        return stored

    def _from_buffer(
        self, head: RequestHead, entry: StoredEntry, body: bytes, age: int, status: str
    ) -> web.StreamResponse:
        """Answer from a fetched body the store did not admit (the policy's call)."""
        slot = Slot(entry, body)
        response, sent = from_cache(head, slot, age_s=age, cache_status=status, via=self._via)
        self._metrics.answered(Outcome.MISS, response.status, sent)
        return response

    async def _pass_response(
        self,
        request: web.BaseRequest,
        head: RequestHead,
        response: UpstreamResponse,
        status: str,
        *,
        prefix: list[bytes] | None = None,
    ) -> web.StreamResponse:
        fields = self._client_fields(response.headers, status)
        if head.method == "HEAD":
            response.release()
            length = declared_length(response.headers)
            if length is not None:
                fields["Content-Length"] = str(length)
            self._metrics.answered(Outcome.PASS, response.status, 0)
            return web.Response(status=response.status, headers=fields)
        relayed = await relay(
            request,
            response,
            status=response.status,
            headers=fields,
            keep_copy_up_to=None,
            prefix=prefix,
        )
        self._metrics.answered(Outcome.PASS, response.status, relayed.sent_bytes)
        return relayed.response

    def _client_fields(self, upstream_headers: Headers, status: str) -> CIMultiDict[str]:
        headers = client_headers(upstream_headers, age_s=None).without("content-length")
        return to_aiohttp(with_node_fields(headers, cache_status=status, via=self._via))

    # -- failures --------------------------------------------------------------------------

    def _stale_on_error(self, head: RequestHead, key: str, now: float) -> StoredEntry | None:
        entry = select_variant(head, self._store.candidates(key))
        if entry is not None and can_serve_stale_on_error(
            entry, head, now=now, options=self._options
        ):
            return entry
        return None

    def _serve_stale_on_error(
        self,
        head: RequestHead,
        entry: StoredEntry,
        fwd: Forward,
        fwd_status: int | None,
        *,
        detail: str = "stale-if-error",
    ) -> web.StreamResponse:
        now = self._clock()
        ttl = remaining_ttl_s(entry, now=now, options=self._options)
        status = self._status(hit=False, fwd=fwd, fwd_status=fwd_status, ttl_s=ttl, detail=detail)
        age = int(current_age(entry, now=now))
        served = self._serve(head, entry, age, status, Outcome.STALE)
        if served is None:
            return self._error(502, "502 Bad Gateway: the origin failed")
        return served

    def _upstream_failed(
        self,
        head: RequestHead,
        key: str | None,
        fwd: Forward,
        exc: UpstreamError,
        fwd_status: int | None,
    ) -> web.StreamResponse:
        if key is not None:
            stale = self._stale_on_error(head, key, self._clock())
            if stale is not None:
                return self._serve_stale_on_error(head, stale, fwd, fwd_status)
        status = exc.status_hint
        phrase = HTTPStatus(status).phrase
        kind = "did not answer in time" if isinstance(exc, UpstreamTimeout) else "failed"
        text = f"{status} {phrase}: the origin of {head.host} {kind} ({exc})"
        response = self._error(status, text, fwd=fwd)
        if isinstance(exc, CircuitOpen):
            response.headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after_s)))
        return response

    def _error(self, status: int, text: str, *, fwd: Forward | None = None) -> web.Response:
        cache_status = self._status(hit=False, fwd=fwd)
        self._metrics.answered(Outcome.ERROR, status, 0)
        return error_response(status, text, cache_status=cache_status, via=self._via)

    # -- unsafe methods --------------------------------------------------------------------

    async def _pass_unsafe(
        self, request: web.BaseRequest, head: RequestHead, upstream: Upstream
    ) -> web.StreamResponse:
        up_head = self._upstream_head(head, request.remote, full_object=False)
        exceeded: list[bool] = []
        body: RequestBody = None
        if request.body_exists:
            limit = self._proxy.max_request_body_bytes
            chunks = request_body(request, limit=limit, exceeded=exceeded)
            body = StreamBody(chunks, request.content_length)
        try:
            response = await self._send(upstream, up_head, body)
        except Exception as exc:
            if exceeded:
                limit = self._proxy.max_request_body_bytes
                return self._reject(
                    RequestRejected(413, f"request body is over the limit of {limit} bytes")
                )
            if isinstance(exc, UpstreamError):
                return self._upstream_failed(head, None, Forward.METHOD, exc, None)
            raise
        answer = ResponseHead(status=response.status, headers=response.headers)
        for key in invalidated_keys(head, answer):
            self._store.invalidate(key)
        status = self._status(hit=False, fwd=Forward.METHOD, fwd_status=response.status)
        return await self._pass_response(request, head, response, status)

    # -- background refresh (stale-while-revalidate) ---------------------------------------

    def _refresh_later(
        self,
        head: RequestHead,
        key: str,
        upstream: Upstream,
        entry: StoredEntry,
        client_ip: str | None,
    ) -> None:
        if len(self._background) >= MAX_BACKGROUND_REFRESHES:
            return
        flight = self._coalescer.lead(key)
        if flight is None:
            return  # a refresh (or a miss) of this key is already in the air
        self._metrics.background_refreshes.inc()
        task = asyncio.get_running_loop().create_task(
            self._refresh(head, key, upstream, entry, client_ip, flight)
        )
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _refresh(
        self,
        head: RequestHead,
        key: str,
        upstream: Upstream,
        entry: StoredEntry,
        client_ip: str | None,
        flight: Flight,
    ) -> None:
        try:
            await self._refetch(head, upstream, entry, client_ip)
        except UpstreamError as exc:
            log.info("background refresh of %s failed: %s", key, exc)
        except Exception:
            log.exception("background refresh of %s crashed", key)
        finally:
            self._coalescer.land(key, flight)

    async def _refetch(
        self, head: RequestHead, upstream: Upstream, entry: StoredEntry, client_ip: str | None
    ) -> None:
        get = dataclasses.replace(head, method="GET")
        up_head = self._upstream_head(get, client_ip, full_object=True, extra=_conditional(entry))
        request_time = self._clock()
        response = await self._send(upstream, up_head, None)
        try:
            response_time = self._clock()
            answer = ResponseHead(status=response.status, headers=response.headers)
            if response.status == 304:
                if can_freshen(entry, answer):
                    self._store.replace_head(
                        freshen(
                            entry, answer, request_time=request_time, response_time=response_time
                        )
                    )
                return
            decision = decide_store(
                get,
                answer,
                request_time=request_time,
                response_time=response_time,
                body_size=declared_length(response.headers),
                options=self._options,
            )
            if isinstance(decision, Store):
                body, _ = await read_all(response, limit=self._options.max_object_bytes)
                if body is not None:
                    self._put(decision.entry, body)
        finally:
            response.release()

    # -- plumbing --------------------------------------------------------------------------

    def _upstream_head(
        self,
        head: RequestHead,
        client_ip: str | None,
        *,
        full_object: bool,
        extra: Headers | None = None,
    ) -> RequestHead:
        headers = head.headers
        method = head.method
        if full_object:
            headers = headers.without(*_CLIENT_ONLY_FIELDS)
            method = "GET"
        if extra:
            headers = Headers([*headers, *extra])
        headers = upstream_fields(
            headers,
            host=head.host,
            via=self._via,
            client_ip=client_ip,
            from_user=self._is_edge,
            passed=self._origins[head.host].pass_headers,
        )
        return dataclasses.replace(head, method=method, headers=headers)

    async def _send(
        self, upstream: Upstream, head: RequestHead, body: RequestBody
    ) -> UpstreamResponse:
        started = time.monotonic()
        try:
            response = await upstream.fetch(head, body, timeouts=self._timeouts)
        except CircuitOpen:
            self._metrics.upstream(UpstreamResult.BREAKER_OPEN)
            raise
        except UpstreamTimeout:
            self._metrics.upstream(UpstreamResult.TIMEOUT)
            raise
        except UpstreamError:
            self._metrics.upstream(UpstreamResult.UNAVAILABLE)
            raise
        self._metrics.upstream(UpstreamResult.OK, time.monotonic() - started)
        passed = self._origins[head.host].pass_headers
        if passed:
            # Passed-through fields select the variant: they cannot poison (cdn_core.forwarding).
            response.headers = vary_with(response.headers, passed)
        return response

    def _status(self, **params: Any) -> str:
        return cache_status_entry(self._node, **params)

    def _hit_status(self, ttl_s: float) -> str:
        """``self._status(hit=True, ttl_s=ttl_s)``, memoised per whole second of TTL."""
        if not math.isfinite(ttl_s):
            return self._status(hit=True, ttl_s=ttl_s)
        whole = math.floor(ttl_s)
        status = self._hit_statuses.get(whole)
        if status is None:
            if len(self._hit_statuses) >= _MAX_HIT_STATUSES:
                self._hit_statuses.clear()
            status = self._hit_statuses[whole] = self._status(hit=True, ttl_s=whole)
        return status

    def _key(self, head: RequestHead) -> str:
        """``primary_key(head)``, memoised per (host, target)."""
        pair = (head.host, head.target)
        key = self._keys.get(pair)
        if key is None:
            if len(self._keys) >= _MAX_KEYS:
                self._keys.clear()
            key = self._keys[pair] = primary_key(head)
        return key


def _always() -> bool:
    return True


def _conditional(entry: StoredEntry | None) -> Headers | None:
    return None if entry is None else conditional_headers(entry)


def _needs_whole_body(head: RequestHead) -> bool:
    if head.method == "HEAD":
        return True
    headers = head.headers
    return "range" in headers or "if-none-match" in headers or "if-modified-since" in headers


def _absolute_form(target: str) -> tuple[str, str]:
    """Host and origin-form target of an absolute-form request target (RFC 9112 §3.2.2)."""
    try:
        parts = urlsplit(target)
        host = parts.hostname or ""
    except ValueError:
        raise RequestRejected(400, f"malformed request target {target[:200]!r}") from None
    if parts.scheme not in ("http", "https") or not host:
        raise RequestRejected(400, f"unsupported request target {target[:200]!r}")
    path = parts.path or "/"
    return host, f"{path}?{parts.query}" if parts.query else path
