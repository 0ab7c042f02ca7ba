"""The cache policy's knobs (cdn_core.cache_options): defaults written once, in ``[cache]``."""

from __future__ import annotations

import dataclasses

from cdn_core import cache_policy
from cdn_core.cache_options import CacheOptions
from cdn_core.config import CacheConfig


class TestCacheOptions:
    def test_from_config(self):
        config = CacheConfig(max_object_bytes=123, hit_for_miss_s=7.0, stale_grace_s=3.0)
        options = CacheOptions.from_config(config)
        assert options.shared
        assert (options.max_object_bytes, options.hit_for_miss_s) == (123, 7.0)
        assert options.stale_grace_s == 3.0
        assert options.heuristic_fraction == config.heuristic_fraction

    def test_defaults_are_the_cache_sections_defaults(self):
        assert CacheOptions() == CacheOptions.from_config(CacheConfig())

    def test_every_option_but_shared_comes_from_the_cache_section(self):
        options = {f.name for f in dataclasses.fields(CacheOptions)}
        assert options - {"shared"} <= {f.name for f in dataclasses.fields(CacheConfig)}

    def test_the_policy_facade_reexports_it(self):
        assert cache_policy.CacheOptions is CacheOptions
