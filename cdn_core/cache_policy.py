"""Cache policy as decisions: what to do with a request (lookup), and the façade of the core.

Theory of operation. The adapter looks up all stored variants of the request's primary key and
calls :func:`decide_lookup`, which answers one of :class:`Hit`, :class:`Revalidate`,
:class:`ServeStale`, :class:`Miss` or :class:`OnlyIfCachedMiss` (RFC 9111 §4). Whatever comes back
from upstream goes through :func:`decide_store` (§3, in :mod:`cdn_core.storability`), through
:func:`freshen` for a 304 (§4.3.4) or :func:`freshen_from_head` for a 200 to HEAD (§4.3.5), both
in :mod:`cdn_core.validation`. Unsafe methods invalidate (§4.4) via :func:`invalidated_keys`.
Upstream failures are covered by :func:`can_serve_stale_on_error` (RFC 5861). Nothing here reads
a clock or does I/O. :class:`CacheOptions` (from :mod:`cdn_core.cache_options`) and the names of
:mod:`cdn_core.storability` and :mod:`cdn_core.validation` are re-exported here, so adapters can
import the whole policy from one place.

Policy choices, documented here because the RFCs leave them open (storing: see
:mod:`cdn_core.storability`):

* ``no-cache="field"`` (qualified): treated as plain ``no-cache`` (validate on every use).
* ``s-maxage`` implies ``proxy-revalidate`` (§5.2.2.10) for client ``max-stale``, but an
  origin's explicit ``stale-while-revalidate`` / ``stale-if-error`` still applies.
* A request with ``Authorization`` only reuses an entry whose response allows storing it (§3.5).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

from cdn_core.cache_control import CacheControl, request_cache_control
from cdn_core.cache_key import key_of, normalize_host, primary_key, variant_of
from cdn_core.cache_options import CacheOptions as CacheOptions
from cdn_core.cache_status import Forward
from cdn_core.entry import StoredEntry
from cdn_core.freshness import age_and_ttl, remaining_ttl_s
from cdn_core.http import Headers, RequestHead, ResponseHead
from cdn_core.storability import (
    UNDERSTOOD_STATUSES as UNDERSTOOD_STATUSES,
    DontStore as DontStore,
    NoStoreReason as NoStoreReason,
    Store as Store,
    StoreDecision as StoreDecision,
    authorization_allows,
    decide_store as decide_store,
)
from cdn_core.validation import (
    HeadFreshen as HeadFreshen,
    HeadInvalidate as HeadInvalidate,
    HeadMismatch as HeadMismatch,
    HeadUpdate as HeadUpdate,
    can_freshen as can_freshen,
    conditional_headers as conditional_headers,
    freshen as freshen,
    freshen_from_head as freshen_from_head,
    is_not_modified as is_not_modified,
)

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
LOOKUP_METHODS = frozenset({"GET", "HEAD"})
MAX_AGE_HEADER = 2_147_483_648


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
    response_cc = entry.freshness.cache_control
    if "authorization" in head.headers and not authorization_allows(response_cc, options):
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


def _age_s(age: float) -> int:
    return min(int(age), MAX_AGE_HEADER)


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
    response_cc = entry.freshness.cache_control
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
