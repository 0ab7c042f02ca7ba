"""A stored response: the head plus what the cache needs to reuse it (RFC 9111 §3, §4)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from cdn_core.http import ResponseHead
from cdn_core.lifetime import HeadFreshness, head_freshness


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredEntry:
    """One stored variant of a primary key. Bodies live in the adapter's store.

    ``response`` is the stored head: hop-by-hop fields, ``Surrogate-Key`` / ``Cache-Tag``,
    ``Set-Cookie`` and qualified-``private`` fields are stripped, and a ``Date`` is always
    present. ``CDN-Cache-Control`` stays (freshness needs it) and is removed on the way out.
    ``stale_at`` marks a soft purge: from that time on the entry counts as stale.

    ``freshness`` is what the stored head yields for reuse (parsed directives, lifetime inputs,
    corrected initial age: :func:`cdn_core.lifetime.head_freshness`), so that a hit does
    arithmetic only. It is computed from the other fields while the entry is built (a copy
    made with :func:`dataclasses.replace` computes its own), and never compared or shown.
    """

    key: str
    variant: tuple[tuple[str, str], ...]
    vary: tuple[str, ...]
    method: str
    host: str
    target: str
    response: ResponseHead
    request_time: float
    response_time: float
    body_size: int
    surrogate_keys: frozenset[str] = frozenset()
    stale_at: float | None = None
    freshness: HeadFreshness = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Part of building the (frozen) entry, not a later change: the value depends only on
        # the fields above, and dataclasses.replace runs this again for every copy.
        facts = head_freshness(
            self.response, request_time=self.request_time, response_time=self.response_time
        )
        object.__setattr__(self, "freshness", facts)

    @property
    def etag(self) -> str | None:
        return self.response.headers.get("etag")

    @property
    def last_modified(self) -> str | None:
        return self.response.headers.get("last-modified")

    def is_soft_purged(self, *, now: float) -> bool:
        return self.stale_at is not None and self.stale_at <= now

    def soft_purged(self, *, now: float) -> StoredEntry:
        """A copy that counts as stale from ``now`` on (an earlier soft purge is kept)."""
        if self.stale_at is not None and self.stale_at <= now:
            return self
        return dataclasses.replace(self, stale_at=now)
