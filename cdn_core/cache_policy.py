"""Cache policy as decisions: what to do with a request (lookup) and a response (store).

Theory of operation. The adapter looks up all stored variants of the request's primary key and
calls :func:`decide_lookup`, which answers one of :class:`Hit`, :class:`Revalidate`,
:class:`ServeStale`, :class:`Miss` or :class:`OnlyIfCachedMiss` (RFC 9111 §4). Whatever comes back
from upstream goes through :func:`decide_store` (§3), or through :func:`freshen` for a 304
(§4.3.4). Unsafe methods invalidate (§4.4) via :func:`invalidated_keys`. Upstream failures are
covered by :func:`can_serve_stale_on_error` (RFC 5861). Nothing here reads a clock or does I/O.

Policy choices, documented here because the RFCs leave them open:

* ``Set-Cookie``: a response with ``Set-Cookie`` is stored only when explicitly ``public`` or
  with ``s-maxage``; the stored head then drops ``Set-Cookie`` so one user's cookie is never
  replayed to another.
* ``private="field"`` (qualified): stored without the named fields (§5.2.2.7).
* ``no-cache="field"`` (qualified): treated as plain ``no-cache`` (validate on every use).
* ``s-maxage`` implies ``proxy-revalidate`` (§5.2.2.10) for client ``max-stale``, but an
  origin's explicit ``stale-while-revalidate`` / ``stale-if-error`` still applies.
* A response that is never fresh (zero lifetime, or ``no-cache``) and has no validator and no
  RFC 5861 directive is not stored: it could never be reused.
* ``DontStore.hit_for_miss`` is False for request-specific refusals (method, request no-store,
  Authorization) and for 5xx / 206 / 304, which say nothing about the next request.
* A request with ``Authorization`` only reuses an entry whose response allows storing it (§3.5).
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urljoin, urlsplit

from cdn_core.cache_control import CacheControl, request_cache_control, response_cache_control
from cdn_core.cache_key import (
    key_of,
    normalize_host,
    normalize_target,
    primary_key,
    variant_of,
    vary_fields,
)
from cdn_core.cache_status import Forward
from cdn_core.entry import StoredEntry
from cdn_core.freshness import (
    HEURISTICALLY_CACHEABLE,
    age_and_ttl,
    entry_freshness,
    has_explicit_freshness,
    remaining_ttl_s,
)
from cdn_core.http import HOP_BY_HOP, Headers, RequestHead, ResponseHead, connection_tokens
from cdn_core.httpdate import format_http_date, parse_http_date
from cdn_core.response_headers import SURROGATE_KEY_FIELDS, surrogate_keys

if TYPE_CHECKING:
    from cdn_core.config import CacheConfig

# Statuses this cache understands well enough to store with explicit freshness (RFC 9111 §3).
# 206 is never stored: the edge only ever asks upstream for full objects.
UNDERSTOOD_STATUSES = (HEURISTICALLY_CACHEABLE - {206}) | {302, 303, 307, 403, 451}
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
LOOKUP_METHODS = frozenset({"GET", "HEAD"})
# RFC 9111 §3.2: fields a 304 never replaces in the stored head.
_NOT_FRESHENED = frozenset({"content-length", *HOP_BY_HOP, *SURROGATE_KEY_FIELDS, "set-cookie"})
MAX_AGE_HEADER = 2_147_483_648


@dataclass(frozen=True, slots=True, kw_only=True)
class CacheOptions:
    """Knobs of the cache policy; ``shared=True`` is the CDN case (s-maxage honoured, private
    refused). ``stale_grace_s`` lets an upstream failure be answered with content stale by at
    most that many seconds even without ``stale-if-error`` (RFC 9111 §4.2.4, disconnected)."""

    shared: bool = True
    heuristic_fraction: float = 0.1
    max_heuristic_s: float = 86400.0
    hit_for_miss_s: float = 120.0
    max_object_bytes: int = 64 * 1024**2
    stale_grace_s: float = 0.0

    @classmethod
    def from_config(cls, config: CacheConfig) -> CacheOptions:
        return cls(
            heuristic_fraction=config.heuristic_fraction,
            max_heuristic_s=config.max_heuristic_s,
            hit_for_miss_s=config.hit_for_miss_s,
            max_object_bytes=config.max_object_bytes,
            stale_grace_s=config.stale_grace_s,
        )


class MissReason(enum.Enum):
    """Why a lookup went forward without a usable entry."""

    METHOD = "method"  # not GET/HEAD: not looked up at all
    NO_ENTRY = "no-entry"  # nothing stored for the URI
    VARY_MISMATCH = "vary-mismatch"  # stored variants, none matching
    AUTHORIZATION = "authorization"  # request has Authorization, entry not shareable (§3.5)
    REQUEST = "request"  # the client asked for a fresh copy; no validator to ask with
    STALE = "stale"  # stale (or always-validate) and no validator to ask with

    @property
    def forward(self) -> Forward:
        """The Cache-Status ``fwd`` value (RFC 9211 §2.2) for this reason."""
        return _MISS_FORWARD[self]


class RevalidateReason(enum.Enum):
    STALE = "stale"  # the entry is stale (or soft-purged)
    NO_CACHE = "no-cache"  # the response says validate on every use
    REQUEST = "request"  # client no-cache / max-age / min-fresh

    @property
    def forward(self) -> Forward:
        return Forward.REQUEST if self is RevalidateReason.REQUEST else Forward.STALE


_MISS_FORWARD = {
    MissReason.METHOD: Forward.METHOD,
    MissReason.NO_ENTRY: Forward.URI_MISS,
    MissReason.VARY_MISMATCH: Forward.VARY_MISS,
    MissReason.AUTHORIZATION: Forward.BYPASS,
    MissReason.REQUEST: Forward.REQUEST,
    MissReason.STALE: Forward.STALE,
}


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
class Hit:
    """Serve ``entry`` from cache with ``Age: age_s``."""

    entry: StoredEntry
    age_s: int
    ttl_s: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Revalidate:
    """Send the request upstream with ``conditional`` added; a 304 means :func:`freshen`."""

    entry: StoredEntry
    conditional: Headers
    reason: RevalidateReason


@dataclass(frozen=True, slots=True, kw_only=True)
class ServeStale:
    """Serve the stale ``entry`` (RFC 5861 stale-while-revalidate, or client max-stale)."""

    entry: StoredEntry
    age_s: int
    revalidate_in_background: bool
    ttl_s: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Miss:
    """Fetch from upstream, then :func:`decide_store`."""

    reason: MissReason


@dataclass(frozen=True, slots=True, kw_only=True)
class OnlyIfCachedMiss:
    """``only-if-cached`` and nothing usable: answer 504 (RFC 9111 §5.2.1.7)."""


LookupDecision = Hit | Revalidate | ServeStale | Miss | OnlyIfCachedMiss


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


def decide_lookup(
    head: RequestHead, candidates: Sequence[StoredEntry], *, now: float, options: CacheOptions
) -> LookupDecision:
    """Decide whether a stored response can answer ``head`` (RFC 9111 §4, RFC 5861).

    Picks the most recent variant matching the request's Vary-selected values (§4.1), then
    applies request ``no-cache`` (or ``Pragma: no-cache``), ``max-age``, ``min-fresh``,
    ``max-stale``, ``only-if-cached`` and response ``no-cache``, ``must-revalidate``,
    ``proxy-revalidate``, ``stale-while-revalidate``. HEAD matches like GET; soft-purged
    entries are stale.

    Args:
        head: the client request.
        candidates: every stored entry for the request's primary key.
        now: the current wall-clock time.
        options: cache options.

    Returns:
        The lookup decision.
    """
    request_cc = request_cache_control(head.headers)
    if head.method not in LOOKUP_METHODS:
        return Miss(reason=MissReason.METHOD)
    entry = select_variant(head, candidates)
    if entry is None:
        reason = MissReason.VARY_MISMATCH if candidates else MissReason.NO_ENTRY
        return _miss(reason, request_cc)
    response_cc = entry_freshness(entry, options=options).cache_control
    if "authorization" in head.headers and not _authorization_allows(response_cc, options):
        return _miss(MissReason.AUTHORIZATION, request_cc)
    if request_cc.no_cache:
        return _validate(entry, RevalidateReason.REQUEST, request_cc)
    if response_cc.no_cache:
        return _validate(entry, RevalidateReason.NO_CACHE, request_cc)
    return _by_freshness(entry, request_cc, response_cc, now=now, options=options)


def select_variant(head: RequestHead, candidates: Sequence[StoredEntry]) -> StoredEntry | None:
    """The most recent candidate whose Vary-selected values match the request (RFC 9111 §4.1)."""
    if len(candidates) == 1:
        only = candidates[0]
        return only if variant_of(head.headers, only.vary) == only.variant else None
    matching = [e for e in candidates if variant_of(head.headers, e.vary) == e.variant]
    return max(matching, key=lambda e: e.response_time, default=None)


def _by_freshness(
    entry: StoredEntry,
    request_cc: CacheControl,
    response_cc: CacheControl,
    *,
    now: float,
    options: CacheOptions,
) -> LookupDecision:
    age, ttl = age_and_ttl(entry, now=now, options=options)
    if request_cc.max_age is not None and age > request_cc.max_age:
        return _validate(entry, RevalidateReason.REQUEST, request_cc)
    if ttl > 0:
        if request_cc.min_fresh is not None and ttl < request_cc.min_fresh:
            return _validate(entry, RevalidateReason.REQUEST, request_cc)
        return Hit(entry=entry, age_s=_age_s(age), ttl_s=ttl)
    staleness = -ttl
    if not _forbids_stale(response_cc, options):
        max_stale = request_cc.max_stale
        if max_stale is not None and response_cc.s_maxage is None and staleness <= max_stale:
            return ServeStale(
                entry=entry, age_s=_age_s(age), revalidate_in_background=False, ttl_s=ttl
            )
        swr = response_cc.stale_while_revalidate
        if swr is not None and staleness <= swr:
            return ServeStale(
                entry=entry, age_s=_age_s(age), revalidate_in_background=True, ttl_s=ttl
            )
    return _validate(entry, RevalidateReason.STALE, request_cc)


def _validate(
    entry: StoredEntry, reason: RevalidateReason, request_cc: CacheControl
) -> LookupDecision:
    if request_cc.only_if_cached:
        return OnlyIfCachedMiss()
    conditional = conditional_headers(entry)
    if not conditional:
        miss = MissReason.REQUEST if reason is RevalidateReason.REQUEST else MissReason.STALE
        return Miss(reason=miss)
    return Revalidate(entry=entry, conditional=conditional, reason=reason)


def _miss(reason: MissReason, request_cc: CacheControl) -> LookupDecision:
    return OnlyIfCachedMiss() if request_cc.only_if_cached else Miss(reason=reason)


def _forbids_stale(cc: CacheControl, options: CacheOptions) -> bool:
    """must-revalidate, proxy-revalidate (shared) and no-cache forbid serving stale (§4.2.4)."""
    return cc.must_revalidate or cc.no_cache or (options.shared and cc.proxy_revalidate)


def _authorization_allows(cc: CacheControl, options: CacheOptions) -> bool:
    """RFC 9111 §3.5: a shared cache reuses for Authorization only with these directives."""
    return not options.shared or cc.public or cc.must_revalidate or cc.s_maxage is not None


def _age_s(age: float) -> int:
    return min(int(age), MAX_AGE_HEADER)


def conditional_headers(entry: StoredEntry) -> Headers:
    """Validators to revalidate ``entry`` upstream (RFC 9111 §4.3.1): If-None-Match from ETag,
    If-Modified-Since from Last-Modified. Empty when the entry has neither.

    Args:
        entry: the stored entry.

    Returns:
        The conditional header fields to add to the upstream request.
    """
    fields: list[tuple[str, str]] = []
    if entry.etag is not None:
        fields.append(("if-none-match", entry.etag))
    if entry.last_modified is not None:
        fields.append(("if-modified-since", entry.last_modified))
    return Headers(fields)


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
    always_validate = entry_freshness(entry, options=options).cache_control.no_cache
    if (ttl <= 0 or always_validate) and not _reusable_when_stale(entry):
        return DontStore(reason=NoStoreReason.NOT_CACHEABLE, hit_for_miss=True)
    return Store(entry=entry, ttl_s=ttl)


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
            "authorization" in head.headers and not _authorization_allows(cc, options),
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


def can_freshen(entry: StoredEntry, response: ResponseHead) -> bool:
    """Whether a 304 applies to ``entry`` (RFC 9111 §4.3.4): its ETag, if any, must match the
    stored one (weak comparison); without an ETag it applies to the revalidated entry."""
    etag = response.headers.get("etag")
    if etag is None:
        return True
    return entry.etag is not None and _weak_equal(etag, entry.etag)


def freshen(
    entry: StoredEntry, response: ResponseHead, *, request_time: float, response_time: float
) -> StoredEntry:
    """Update a stored entry from a 304 (RFC 9111 §4.3.4, §3.2).

    Every field of the 304 replaces the stored one, except Content-Length, hop-by-hop fields,
    surrogate keys and Set-Cookie. An ``Age`` the 304 lacks is removed and a missing ``Date``
    is set to ``response_time``, so the age restarts from this exchange. Clears a soft purge.

    Args:
        entry: the revalidated entry.
        response: the 304 head.
        request_time: when the conditional request was sent.
        response_time: when the 304 arrived.

    Returns:
        The freshened entry.
    """
    updates = response.headers.without(*connection_tokens(response.headers))
    headers = entry.response.headers.merged(updates, exclude=_NOT_FRESHENED)
    if "age" not in updates:
        headers = headers.without("age")
    if parse_http_date(updates.get("date")) is None:
        headers = headers.with_set("date", format_http_date(response_time))
    keys = surrogate_keys(response.headers) or entry.surrogate_keys
    return dataclasses.replace(
        entry,
        response=ResponseHead(status=entry.response.status, headers=headers),
        request_time=request_time,
        response_time=response_time,
        surrogate_keys=keys,
        stale_at=None,
    )


def can_serve_stale_on_error(
    entry: StoredEntry, head: RequestHead, *, now: float, options: CacheOptions | None = None
) -> bool:
    """Whether ``entry`` may answer ``head`` when upstream failed, timed out or sent 5xx.

    Allowed within ``stale-if-error`` (RFC 5861 §4, from the response or the request), the
    request's ``max-stale`` or ``options.stale_grace_s`` (RFC 9111 §4.2.4), and never when the
    response has ``must-revalidate``, ``proxy-revalidate`` or ``no-cache``.

    Args:
        entry: the stored entry that could not be revalidated.
        head: the client request.
        now: the current wall-clock time.
        options: cache options (defaults when None).

    Returns:
        True when serving the stale entry is allowed.
    """
    options = options or CacheOptions()
    response_cc = entry_freshness(entry, options=options).cache_control
    if _forbids_stale(response_cc, options):
        return False
    request_cc = request_cache_control(head.headers)
    allowances = (
        response_cc.stale_if_error,
        request_cc.stale_if_error,
        request_cc.max_stale,
        options.stale_grace_s,
    )
    allowed = max((float(a) for a in allowances if a is not None), default=0.0)
    staleness = -remaining_ttl_s(entry, now=now, options=options)
    return staleness <= allowed


def invalidated_keys(head: RequestHead, response: ResponseHead) -> tuple[str, ...]:
    """Primary keys an unsafe request invalidates (RFC 9111 §4.4).

    A non-error (2xx/3xx) response to an unsafe method invalidates the target URI, and the
    ``Location`` and ``Content-Location`` URIs when they are on the same host.

    Args:
        head: the forwarded request.
        response: the upstream response head.

    Returns:
        The primary keys to drop (all variants), de-duplicated, target first.
    """
    if head.method in SAFE_METHODS or not 200 <= response.status < 400:
        return ()
    keys = [primary_key(head)]
    base = f"{head.scheme}://{head.host}{head.target if head.target.startswith('/') else '/'}"
    for name in ("location", "content-location"):
        value = response.headers.get(name)
        if value is None:
            continue
        parts = urlsplit(urljoin(base, value.strip()))
        if parts.hostname is None or normalize_host(parts.netloc) != normalize_host(head.host):
            continue
        key = key_of(head.host, (parts.path or "/") + (f"?{parts.query}" if parts.query else ""))
        if key not in keys:
            keys.append(key)
    return tuple(keys)


def is_not_modified(head: RequestHead, entry: StoredEntry) -> bool:
    """Whether the client's conditional request is answered 304 from cache (RFC 9111 §4.3.2).

    ``If-None-Match`` (weak comparison, ``*`` matches) wins; otherwise ``If-Modified-Since`` is
    compared with Last-Modified (or the stored Date). Only for GET/HEAD and a stored 200.

    Args:
        head: the client request.
        entry: the entry about to be served.

    Returns:
        True when the answer is 304 Not Modified.
    """
    if head.method not in LOOKUP_METHODS or entry.response.status != 200:
        return False
    if_none_match = head.headers.get_joined("if-none-match")
    if if_none_match is not None:
        return _none_match(if_none_match, entry.etag)
    since = parse_http_date(head.headers.get("if-modified-since"))
    if since is None:
        return False
    modified = parse_http_date(entry.last_modified)
    if modified is None:
        modified = parse_http_date(entry.response.headers.get("date"))
    return modified is not None and modified <= since


def _none_match(if_none_match: str, etag: str | None) -> bool:
    if if_none_match.strip() == "*":
        return True
    if etag is None:
        return False
    return any(_weak_equal(tag, etag) for tag in if_none_match.split(",") if tag.strip())


def _weak_equal(a: str, b: str) -> bool:
    """Weak comparison of entity tags (RFC 9110 §8.8.3.2): opaque tags equal, W/ ignored."""
    return a.strip().removeprefix("W/") == b.strip().removeprefix("W/")
