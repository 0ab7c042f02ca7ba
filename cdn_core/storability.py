"""Storing responses (RFC 9111 §3): may a response from upstream be kept, and as what?

:func:`decide_store` answers :class:`Store` (with the :class:`StoredEntry` to keep) or
:class:`DontStore` (with a :class:`NoStoreReason`). Nothing here reads a clock or does I/O.

Policy choices, documented here because the RFCs leave them open:

* ``Set-Cookie``: a response with ``Set-Cookie`` is stored only when explicitly ``public`` or
  with ``s-maxage``; the stored head then drops ``Set-Cookie`` so one user's cookie is never
  replayed to another.
* ``private="field"`` (qualified): stored without the named fields (§5.2.2.7).
* A response that is never fresh (zero lifetime, or ``no-cache``) and has no validator and no
  RFC 5861 directive is not stored: it could never be reused.
* ``DontStore.hit_for_miss`` is False for request-specific refusals (method, request no-store,
  Authorization) and for 5xx / 206 / 304, which say nothing about the next request.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from cdn_core.cache_control import CacheControl, request_cache_control, response_cache_control
from cdn_core.cache_key import (
    normalize_host,
    normalize_target,
    primary_key,
    variant_of,
    vary_fields,
)
from cdn_core.cache_options import CacheOptions
from cdn_core.entry import StoredEntry
from cdn_core.freshness import remaining_ttl_s
from cdn_core.http import HOP_BY_HOP, Headers, RequestHead, ResponseHead, connection_tokens
from cdn_core.httpdate import format_http_date, parse_http_date
from cdn_core.lifetime import HEURISTICALLY_CACHEABLE, has_explicit_freshness
from cdn_core.response_headers import SURROGATE_KEY_FIELDS, surrogate_keys

# Statuses this cache understands well enough to store with explicit freshness (RFC 9111 §3).
# 206 is never stored: the edge only ever asks upstream for full objects.
UNDERSTOOD_STATUSES = (HEURISTICALLY_CACHEABLE - {206}) | {302, 303, 307, 403, 451}


class NoStoreReason(enum.Enum):
    METHOD = "method"
    STATUS = "status"
    NO_STORE = "no-store"
    REQUEST_NO_STORE = "request-no-store"
    PRIVATE = "private"
    AUTHORIZATION = "authorization"
    SET_COOKIE = "set-cookie"
    VARY_STAR = "vary-star"
    TOO_LARGE = "too-large"
    NOT_CACHEABLE = "not-cacheable"


@dataclass(frozen=True, slots=True, kw_only=True)
class Store:
    """Store ``entry`` (the body goes along in the adapter); ``ttl_s`` may be <= 0 (stale but
    revalidatable)."""

    entry: StoredEntry
    ttl_s: float


@dataclass(frozen=True, slots=True, kw_only=True)
class DontStore:
    """Do not store; ``hit_for_miss`` means remember this URI as uncacheable for a while."""

    reason: NoStoreReason
    hit_for_miss: bool


StoreDecision = Store | DontStore


def decide_store(
    head: RequestHead,
    response: ResponseHead,
    *,
    request_time: float,
    response_time: float,
    body_size: int | None,
    options: CacheOptions,
) -> StoreDecision:
    """Decide whether a response from upstream may be stored (RFC 9111 §3, §3.5, RFC 9213).

    Args:
        head: the request that was forwarded.
        response: the upstream response head.
        request_time: when the request was sent upstream.
        response_time: when the response head arrived.
        body_size: the body length when known (Content-Length), else None.
        options: cache options.

    Returns:
        :class:`Store` with the entry to keep, or :class:`DontStore` with the reason.
    """
    refusal = _refusal(head, response, body_size=body_size, options=options)
    if refusal is not None:
        return refusal
    vary = vary_fields(response.headers)
    if vary is None:
        return DontStore(reason=NoStoreReason.VARY_STAR, hit_for_miss=True)
    entry = StoredEntry(
        key=primary_key(head),
        variant=variant_of(head.headers, vary),
        vary=vary,
        method="GET",
        host=normalize_host(head.host),
        target=normalize_target(head.target),
        response=ResponseHead(
            status=response.status,
            headers=_storable_headers(response.headers, response_time=response_time),
        ),
        request_time=request_time,
        response_time=response_time,
        body_size=body_size or 0,
        surrogate_keys=surrogate_keys(response.headers),
    )
    ttl = remaining_ttl_s(entry, now=response_time, options=options)
    always_validate = entry.freshness.cache_control.no_cache
    if (ttl <= 0 or always_validate) and not _reusable_when_stale(entry):
        return DontStore(reason=NoStoreReason.NOT_CACHEABLE, hit_for_miss=True)
    return Store(entry=entry, ttl_s=ttl)


def authorization_allows(cc: CacheControl, options: CacheOptions) -> bool:
    """Whether a response may be stored, and reused, for a request with ``Authorization``
    (RFC 9111 §3.5): a shared cache needs ``public``, ``must-revalidate`` or ``s-maxage``."""
    return not options.shared or cc.public or cc.must_revalidate or cc.s_maxage is not None


def _refusal(
    head: RequestHead, response: ResponseHead, *, body_size: int | None, options: CacheOptions
) -> DontStore | None:
    cc = response_cache_control(response.headers)
    shared = options.shared
    checks = (
        (head.method != "GET", NoStoreReason.METHOD, False),
        (
            response.status not in UNDERSTOOD_STATUSES,
            NoStoreReason.STATUS,
            # 5xx are transient, 206/304 answer the request's own Range/conditional: neither
            # says anything about the next request for this URI.
            response.status < 500 and response.status not in (206, 304),
        ),
        (request_cache_control(head.headers).no_store, NoStoreReason.REQUEST_NO_STORE, False),
        (cc.no_store, NoStoreReason.NO_STORE, True),
        (shared and cc.private and not cc.private_fields, NoStoreReason.PRIVATE, True),
        (
            "authorization" in head.headers and not authorization_allows(cc, options),
            NoStoreReason.AUTHORIZATION,
            False,
        ),
        (
            shared and "set-cookie" in response.headers and not (cc.public or cc.s_maxage),
            NoStoreReason.SET_COOKIE,
            True,
        ),
        (
            body_size is not None and body_size > options.max_object_bytes,
            NoStoreReason.TOO_LARGE,
            True,
        ),
        (not _has_freshness_source(response, cc, options), NoStoreReason.NOT_CACHEABLE, True),
    )
    for failed, reason, hit_for_miss in checks:
        if failed:
            return DontStore(reason=reason, hit_for_miss=hit_for_miss)
    return None


def _has_freshness_source(response: ResponseHead, cc: CacheControl, options: CacheOptions) -> bool:
    """RFC 9111 §3: explicit expiration, ``public``, ``no-cache`` (store, validate every use) or
    a heuristically cacheable status."""
    return (
        has_explicit_freshness(response, options=options)
        or cc.public
        or cc.no_cache
        or response.status in HEURISTICALLY_CACHEABLE
    )


def _reusable_when_stale(entry: StoredEntry) -> bool:
    cc = response_cache_control(entry.response.headers)
    has_validator = entry.etag is not None or entry.last_modified is not None
    return has_validator or cc.stale_while_revalidate is not None or cc.stale_if_error is not None


def _storable_headers(headers: Headers, *, response_time: float) -> Headers:
    """Strip what is never stored (hop-by-hop, surrogate keys, Set-Cookie, private fields) and
    make sure a Date is present (RFC 9110 §6.6.1)."""
    cc = response_cache_control(headers)
    stored = headers.without(
        *HOP_BY_HOP,
        *connection_tokens(headers),
        *SURROGATE_KEY_FIELDS,
        "set-cookie",
        *cc.private_fields,
    )
    if parse_http_date(stored.get("date")) is None:
        stored = stored.with_set("date", format_http_date(response_time))
    return stored
