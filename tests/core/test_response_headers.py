"""Header fields sent to clients: hop-by-hop removal (RFC 9110 §7.6.1), Age (RFC 9111 §5.1),
CDN-Cache-Control stripped (RFC 9213), surrogate keys, Via (RFC 9110 §7.6.3) and 304 fields
(RFC 9110 §15.4.5)."""

from __future__ import annotations

from cdn_core.http import Headers
from cdn_core.response_headers import (
    client_headers,
    not_modified_headers,
    surrogate_keys,
    with_via,
)

STORED = Headers(
    [
        ("content-type", "text/html"),
        ("connection", "x-secret"),
        ("x-secret", "1"),
        ("transfer-encoding", "chunked"),
        ("cdn-cache-control", "max-age=600"),
        ("surrogate-key", "a b"),
        ("cache-tag", "c"),
        ("age", "3"),
        ("etag", '"x"'),
        ("cache-control", "max-age=60"),
    ]
)


class TestClientHeaders:
    def test_strips_hop_by_hop_and_cdn_fields_and_sets_age(self):
        headers = client_headers(STORED, age_s=12)
        assert headers.names() == {"content-type", "age", "etag", "cache-control"}
        assert headers.get_all("age") == ["12"]

    def test_negative_age_clamped(self):
        assert client_headers(Headers(), age_s=-3).get("age") == "0"

    def test_pass_through_keeps_upstream_age(self):
        assert client_headers(STORED, age_s=None).get("age") == "3"
        assert "age" not in client_headers(Headers(), age_s=None)


class TestNotModifiedHeaders:
    def test_only_validator_and_cache_fields(self):
        headers = not_modified_headers(STORED, age_s=5)
        assert headers.names() == {"etag", "cache-control", "age"}
        assert headers.get("age") == "5"


class TestSurrogateKeys:
    def test_both_fields_comma_and_space_separated(self):
        headers = Headers([("surrogate-key", "a  b,c"), ("cache-tag", "d, e"), ("cache-tag", "f")])
        assert surrogate_keys(headers) == {"a", "b", "c", "d", "e", "f"}

    def test_none(self):
        assert surrogate_keys(Headers({"surrogate-key": " , "})) == frozenset()


class TestVia:
    def test_first_hop(self):
        assert with_via(Headers(), node="edge-1").get("via") == "1.1 edge-1"

    def test_appended_to_existing(self):
        headers = Headers([("via", "1.1 shield-1"), ("via", "1.0 origin")])
        assert with_via(headers, node="edge-1").get_all("via") == [
            "1.1 shield-1, 1.0 origin, 1.1 edge-1"
        ]
