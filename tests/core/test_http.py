"""Headers: the immutable, case-insensitive multi-map the cache core reasons about."""

from __future__ import annotations

from cdn_core.http import Headers, RequestHead


def test_membership_is_case_insensitive_and_only_for_names():
    headers = Headers([("Cache-Control", "max-age=5"), ("Vary", "Accept")])
    assert "cache-control" in headers and "VARY" in headers
    assert "age" not in headers
    assert 1 not in headers and None not in headers


def test_equal_heads_hash_alike_and_order_matters() -> None:
    a = Headers([("Vary", "Accept"), ("Age", "3")])
    same = Headers([("vary", "Accept"), ("age", "3")])
    reordered = Headers([("age", "3"), ("vary", "Accept")])

    assert a == same and hash(a) == hash(same)
    assert a != reordered
    assert len({a, same, reordered}) == 2


def test_with_added_appends_a_value_and_keeps_the_original() -> None:
    base = Headers([("Via", "1.1 a")])

    added = base.with_added("VIA", "1.1 b")

    assert added.get_all("via") == ["1.1 a", "1.1 b"]
    assert list(added) == [("via", "1.1 a"), ("via", "1.1 b")]
    assert base.get_all("via") == ["1.1 a"]


def test_request_url_joins_scheme_host_and_target() -> None:
    request = RequestHead(method="GET", host="www.cdn.test", target="/a?b=1")

    assert request.url == "http://www.cdn.test/a?b=1"
    https = RequestHead(method="GET", host="x.test", target="/", scheme="https")
    assert https.url == "https://x.test/"
