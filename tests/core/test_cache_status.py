"""The Cache-Status response field (RFC 9211 §2): hit, fwd, fwd-status, stored, collapsed,
ttl and detail parameters, and the cache identifier as sf-token or sf-string (RFC 8941)."""

from __future__ import annotations

from cdn_core.cache_status import Forward, cache_status_entry


class TestCacheStatus:
    def test_hit_with_ttl(self):
        assert cache_status_entry("edge-eu-1", hit=True, ttl_s=42.9) == "edge-eu-1; hit; ttl=42"

    def test_forwarded_and_stored(self):
        value = cache_status_entry(
            "edge-eu-1",
            hit=False,
            fwd=Forward.URI_MISS,
            fwd_status=200,
            stored=True,
            collapsed=True,
        )
        assert value == "edge-eu-1; fwd=uri-miss; fwd-status=200; stored; collapsed"

    def test_negative_ttl_for_stale(self):
        value = cache_status_entry("e", hit=True, ttl_s=-0.5)
        assert value == "e; hit; ttl=-1"

    def test_infinite_ttl_omitted(self):
        assert cache_status_entry("e", hit=True, ttl_s=float("inf")) == "e; hit"

    def test_detail_is_quoted_and_escaped(self):
        value = cache_status_entry("e", hit=False, fwd=Forward.BYPASS, detail='say "hi"\\\n')
        assert value == 'e; fwd=bypass; detail="say \\"hi\\"\\\\"'

    def test_node_that_is_not_a_token_is_quoted(self):
        assert cache_status_entry("edge 1", hit=True) == '"edge 1"; hit'
        assert cache_status_entry("1edge", hit=True) == '"1edge"; hit'

    def test_all_forward_values_are_rfc_tokens(self):
        assert {f.value for f in Forward} == {
            "bypass",
            "method",
            "uri-miss",
            "vary-miss",
            "miss",
            "request",
            "stale",
        }
