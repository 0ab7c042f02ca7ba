"""Freshness lifetime and age (RFC 9111 §4.2), with the clock passed in as ``now``.

A soft-purged entry (``stale_at``) stops being fresh at ``stale_at``: its remaining time to
live is capped by ``stale_at - now``, so staleness for max-stale / stale-while-revalidate /
stale-if-error counts from the purge at the latest.

What a stored head yields (its directives, lifetime and corrected initial age) does not change
while it is stored, so :func:`entry_freshness` derives it once per entry and keeps it on the
entry's ``memo``: answering a hit is then arithmetic on ``now``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from cdn_core.cache_control import (
    MAX_DELTA_SECONDS,
    CacheControl,
    response_cache_control,
    targeted_cache_control,
)
from cdn_core.entry import StoredEntry
from cdn_core.http import ResponseHead
from cdn_core.httpdate import parse_http_date

if TYPE_CHECKING:
    from cdn_core.cache_policy import CacheOptions

# RFC 9110 §15.1 / RFC 9111 §4.2.2: statuses cacheable by default (heuristic freshness allowed).
HEURISTICALLY_CACHEABLE = frozenset({200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501})


@dataclass(frozen=True, slots=True, kw_only=True)
class EntryFreshness:
    """What reusing a stored entry needs from its head, derived once (RFC 9111 §4.2).

    ``cache_control`` is the head's effective directives (RFC 9213 §2.1), ``lifetime_s`` its
    freshness lifetime under ``options`` and ``initial_age_s`` its corrected initial age
    (§4.2.3): the age when it was received, before any time resident in this cache.
    """

    options: CacheOptions
    cache_control: CacheControl
    lifetime_s: float
    initial_age_s: float


def entry_freshness(entry: StoredEntry, *, options: CacheOptions) -> EntryFreshness:
    """The freshness facts of ``entry``'s stored head, computed on first use and memoised on it.

    Args:
        entry: the stored entry.
        options: cache options (the memo is recomputed if they differ from the memoised ones).

    Returns:
        The entry's directives, freshness lifetime and corrected initial age.
    """
    memo = entry.memo
    if isinstance(memo, EntryFreshness) and (memo.options is options or memo.options == options):
        return memo
    facts = EntryFreshness(
        options=options,
        cache_control=response_cache_control(entry.response.headers),
        lifetime_s=freshness_lifetime(
            entry.response, options=options, received_at=entry.response_time
        ),
        initial_age_s=_initial_age(entry),
    )
    # The memo is a pure function of the frozen entry's own fields (see StoredEntry).
    object.__setattr__(entry, "memo", facts)
    return facts


def freshness_lifetime(
    response: ResponseHead, *, options: CacheOptions, received_at: float | None = None
) -> float:
    """Freshness lifetime in seconds (RFC 9111 §4.2.1); s-maxage wins for shared caches.

    Order: ``s-maxage`` (shared only) > ``max-age`` > ``Expires - Date`` (an invalid Expires
    means 0, ignored when CDN-Cache-Control applies, RFC 9213 §2.1) > heuristic
    ``fraction * (Date - Last-Modified)`` capped by ``max_heuristic_s``, only for heuristically
    cacheable statuses or ``public`` responses (§4.2.2).

    Args:
        response: the stored response head.
        options: cache options (shared, heuristic fraction and cap).
        received_at: used as Date when the response has no valid Date.

    Returns:
        The lifetime in seconds, never negative.
    """
    headers = response.headers
    cc = response_cache_control(headers)
    if options.shared and cc.s_maxage is not None:
        return float(cc.s_maxage)
    if cc.max_age is not None:
        return float(cc.max_age)
    date = parse_http_date(headers.get("date"))
    if date is None:
        date = received_at
    if "expires" in headers and targeted_cache_control(headers) is None:
        expires = parse_http_date(headers.get("expires"))
        if expires is None or date is None:
            return 0.0
        return max(0.0, expires - date)
    return _heuristic_lifetime(response, date=date, public=cc.public, options=options)


def _heuristic_lifetime(
    response: ResponseHead, *, date: float | None, public: bool, options: CacheOptions
) -> float:
    if response.status not in HEURISTICALLY_CACHEABLE and not public:
        return 0.0
    last_modified = parse_http_date(response.headers.get("last-modified"))
    if last_modified is None or date is None:
        return 0.0
    lifetime = options.heuristic_fraction * (date - last_modified)
    return min(max(0.0, lifetime), options.max_heuristic_s)


def has_explicit_freshness(response: ResponseHead, *, options: CacheOptions) -> bool:
    """Whether the response carries explicit expiration (RFC 9111 §4.2.1) for this cache."""
    headers = response.headers
    cc = response_cache_control(headers)
    if cc.max_age is not None or (options.shared and cc.s_maxage is not None):
        return True
    return "expires" in headers and targeted_cache_control(headers) is None


def current_age(entry: StoredEntry, *, now: float) -> float:
    """The entry's current age in seconds (RFC 9111 §4.2.3), never negative.

    ``corrected_initial_age = max(apparent_age, age_value + response_delay)`` plus the time
    resident in this cache. Clock steps backwards are clamped to 0.

    Args:
        entry: the stored entry.
        now: the current wall-clock time.

    Returns:
        The age in seconds.
    """
    memo = entry.memo
    initial_age = memo.initial_age_s if isinstance(memo, EntryFreshness) else _initial_age(entry)
    return initial_age + max(0.0, now - entry.response_time)


def _initial_age(entry: StoredEntry) -> float:
    """``corrected_initial_age`` (RFC 9111 §4.2.3): the age of the response when received."""
    headers = entry.response.headers
    age_value = _age_value(headers.get("age"))
    date_value = parse_http_date(headers.get("date"))
    if date_value is None:
        date_value = entry.response_time
    apparent_age = max(0.0, entry.response_time - date_value)
    response_delay = max(0.0, entry.response_time - entry.request_time)
    return max(apparent_age, age_value + response_delay)


def _age_value(value: str | None) -> float:
    if value is None:
        return 0.0
    value = value.split(",", 1)[0].strip()
    if not value.isascii() or not value.isdigit():
        return 0.0
    return float(min(int(value), MAX_DELTA_SECONDS))


def remaining_ttl_s(entry: StoredEntry, *, now: float, options: CacheOptions) -> float:
    """Seconds of freshness left (lifetime - age, RFC 9111 §4.2); zero or negative once stale.

    A soft purge caps it at ``stale_at - now``.
    """
    return age_and_ttl(entry, now=now, options=options)[1]


def age_and_ttl(entry: StoredEntry, *, now: float, options: CacheOptions) -> tuple[float, float]:
    """:func:`current_age` and :func:`remaining_ttl_s` of ``entry`` at ``now``, together.

    Args:
        entry: the stored entry.
        now: the current wall-clock time.
        options: cache options.

    Returns:
        ``(age_s, ttl_s)``.
    """
    facts = entry_freshness(entry, options=options)
    age = facts.initial_age_s + max(0.0, now - entry.response_time)
    ttl = facts.lifetime_s - age
    if entry.stale_at is not None:
        ttl = min(ttl, entry.stale_at - now)
    return age, ttl


def is_fresh(entry: StoredEntry, *, now: float, options: CacheOptions) -> bool:
    """Whether the entry is fresh at ``now`` (RFC 9111 §4.2): lifetime exceeds current age and
    it is not soft-purged."""
    return remaining_ttl_s(entry, now=now, options=options) > 0
