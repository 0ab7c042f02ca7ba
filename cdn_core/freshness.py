"""Freshness and age of a stored entry (RFC 9111 §4.2), with the clock passed in as ``now``.

A soft-purged entry (``stale_at``) stops being fresh at ``stale_at``: its remaining time to
live is capped by ``stale_at - now``, so staleness for max-stale / stale-while-revalidate /
stale-if-error counts from the purge at the latest.

What a stored head yields (its directives, lifetime inputs and corrected initial age) is
derived once, when the entry is built (:attr:`StoredEntry.freshness`, see
:mod:`cdn_core.lifetime`): answering a hit is then arithmetic on ``now`` and the options.
"""

from __future__ import annotations

from cdn_core.cache_options import CacheOptions
from cdn_core.entry import StoredEntry


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
    return entry.freshness.initial_age_s + max(0.0, now - entry.response_time)


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
    facts = entry.freshness
    age = facts.initial_age_s + max(0.0, now - entry.response_time)
    ttl = facts.lifetime_s(options) - age
    if entry.stale_at is not None:
        ttl = min(ttl, entry.stale_at - now)
    return age, ttl


def is_fresh(entry: StoredEntry, *, now: float, options: CacheOptions) -> bool:
    """Whether the entry is fresh at ``now`` (RFC 9111 §4.2): lifetime exceeds current age and
    it is not soft-purged."""
    return remaining_ttl_s(entry, now=now, options=options) > 0
