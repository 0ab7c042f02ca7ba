"""Freshness lifetime and initial age of a response head (RFC 9111 §4.2.1–§4.2.3).

What a stored head yields (its directives, the inputs of its lifetime, its corrected initial
age) does not change while it is stored: :func:`head_freshness` derives it once, as the
:class:`HeadFreshness` that every :class:`~cdn_core.entry.StoredEntry` computes when it is
built, so that answering a hit (:mod:`cdn_core.freshness`) is arithmetic on ``now`` and the
cache options. :func:`freshness_lifetime` is the same rule for a head that is not stored.
"""

from __future__ import annotations

from dataclasses import dataclass

from cdn_core.cache_control import (
    MAX_DELTA_SECONDS,
    CacheControl,
    response_cache_control,
    targeted_cache_control,
)
from cdn_core.cache_options import CacheOptions
from cdn_core.http import Headers, ResponseHead
from cdn_core.httpdate import parse_http_date

# RFC 9110 §15.1 / RFC 9111 §4.2.2: statuses cacheable by default (heuristic freshness allowed).
HEURISTICALLY_CACHEABLE = frozenset({200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501})


@dataclass(frozen=True, slots=True, kw_only=True)
class HeadFreshness:
    """What reusing a response head needs from it, derived once (RFC 9111 §4.2).

    ``cache_control`` is the head's effective directives (RFC 9213 §2.1) and ``initial_age_s``
    its corrected initial age (§4.2.3): the age when it was received, before any time resident
    in this cache. The lifetime depends on the cache options, so its inputs are kept:
    ``s_maxage_s`` (shared caches only), ``explicit_s`` (``max-age``, else ``Expires - Date``)
    and ``heuristic_base_s`` (``Date - Last-Modified`` where a heuristic is allowed).
    """

    cache_control: CacheControl
    initial_age_s: float = 0.0
    s_maxage_s: float | None = None
    explicit_s: float | None = None
    heuristic_base_s: float | None = None

    def lifetime_s(self, options: CacheOptions) -> float:
        """The freshness lifetime under ``options`` (see :func:`freshness_lifetime`)."""
        if self.s_maxage_s is not None and options.shared:
            return self.s_maxage_s
        if self.explicit_s is not None:
            return self.explicit_s
        if self.heuristic_base_s is None:
            return 0.0
        lifetime = options.heuristic_fraction * self.heuristic_base_s
        return min(max(0.0, lifetime), options.max_heuristic_s)


def head_freshness(
    response: ResponseHead, *, request_time: float | None, response_time: float | None
) -> HeadFreshness:
    """The freshness facts of ``response`` (RFC 9111 §4.2.1–§4.2.3).

    Args:
        response: the response head.
        request_time: when the request that produced it was sent.
        response_time: when it was received; used as Date when it has no valid Date. None
            (with ``request_time``) for a head that was not received: it has no initial age.

    Returns:
        Its directives, the inputs of its lifetime and its corrected initial age.
    """
    headers = response.headers
    cc = response_cache_control(headers)
    date = parse_http_date(headers.get("date"))
    if date is None:
        date = response_time
    explicit: float | None = None
    if cc.max_age is not None:
        explicit = float(cc.max_age)
    elif "expires" in headers and targeted_cache_control(headers) is None:
        # An invalid Expires (or no date to subtract) means already expired (§5.3).
        expires = parse_http_date(headers.get("expires"))
        explicit = 0.0 if expires is None or date is None else max(0.0, expires - date)
    return HeadFreshness(
        cache_control=cc,
        initial_age_s=_initial_age(
            headers, date=date, request_time=request_time, response_time=response_time
        ),
        s_maxage_s=None if cc.s_maxage is None else float(cc.s_maxage),
        explicit_s=explicit,
        heuristic_base_s=_heuristic_base(response, date=date, public=cc.public),
    )


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
    facts = head_freshness(response, request_time=received_at, response_time=received_at)
    return facts.lifetime_s(options)


def has_explicit_freshness(response: ResponseHead, *, options: CacheOptions) -> bool:
    """Whether the response carries explicit expiration (RFC 9111 §4.2.1) for this cache."""
    headers = response.headers
    cc = response_cache_control(headers)
    if cc.max_age is not None or (options.shared and cc.s_maxage is not None):
        return True
    return "expires" in headers and targeted_cache_control(headers) is None


def _heuristic_base(response: ResponseHead, *, date: float | None, public: bool) -> float | None:
    """``Date - Last-Modified`` when a heuristic lifetime is allowed (§4.2.2), else None."""
    if response.status not in HEURISTICALLY_CACHEABLE and not public:
        return None
    last_modified = parse_http_date(response.headers.get("last-modified"))
    if last_modified is None or date is None:
        return None
    return date - last_modified


def _initial_age(
    headers: Headers,
    *,
    date: float | None,
    request_time: float | None,
    response_time: float | None,
) -> float:
    """``corrected_initial_age`` (RFC 9111 §4.2.3): the age of the response when received."""
    if request_time is None or response_time is None or date is None:
        return 0.0  # a head that was not received has no age
    apparent_age = max(0.0, response_time - date)
    response_delay = max(0.0, response_time - request_time)
    return max(apparent_age, _age_value(headers.get("age")) + response_delay)


def _age_value(value: str | None) -> float:
    if value is None:
        return 0.0
    value = value.split(",", 1)[0].strip()
    if not value.isascii() or not value.isdigit():
        return 0.0
    return float(min(int(value), MAX_DELTA_SECONDS))
