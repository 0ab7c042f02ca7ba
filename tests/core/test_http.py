"""Headers: the immutable, case-insensitive multi-map the cache core reasons about."""

from __future__ import annotations

from cdn_core.http import Headers


def test_membership_is_case_insensitive_and_only_for_names():
    headers = Headers([("Cache-Control", "max-age=5"), ("Vary", "Accept")])
    assert "cache-control" in headers and "VARY" in headers
    assert "age" not in headers
    assert 1 not in headers and None not in headers
