"""The knobs of the cache policy (:class:`CacheOptions`), shared by every policy module.

:mod:`cdn_core.lifetime`, :mod:`cdn_core.freshness`, :mod:`cdn_core.storability` and
:mod:`cdn_core.cache_policy` take a ``CacheOptions``; it lives here, below all of them, so that
none imports another for it (:mod:`cdn_core.cache_policy` re-exports it for adapters). Its
defaults are those of ``[cache]`` (:class:`cdn_core.config.CacheConfig`), written once there.
"""

from __future__ import annotations

from dataclasses import dataclass

from cdn_core.config import CacheConfig

_CACHE = CacheConfig()


@dataclass(frozen=True, slots=True, kw_only=True)
class CacheOptions:
    """Knobs of the cache policy; ``shared=True`` is the CDN case (s-maxage honoured, private
    refused). ``stale_grace_s`` lets an upstream failure be answered with content stale by at
    most that many seconds even without ``stale-if-error`` (RFC 9111 §4.2.4, disconnected)."""

    shared: bool = True
    heuristic_fraction: float = _CACHE.heuristic_fraction
    max_heuristic_s: float = _CACHE.max_heuristic_s
    hit_for_miss_s: float = _CACHE.hit_for_miss_s
    max_object_bytes: int = _CACHE.max_object_bytes
    stale_grace_s: float = _CACHE.stale_grace_s

    @classmethod
    def from_config(cls, config: CacheConfig) -> CacheOptions:
        """The options of a ``[cache]`` section (for a shared cache).

        Args:
            config: the validated ``[cache]`` section.

        Returns:
            The options the cache policy runs with.
        """
        return cls(
            heuristic_fraction=config.heuristic_fraction,
            max_heuristic_s=config.max_heuristic_s,
            hit_for_miss_s=config.hit_for_miss_s,
            max_object_bytes=config.max_object_bytes,
            stale_grace_s=config.stale_grace_s,
        )
