"""Header fields on every response and on every upstream request.

Cache-Status (RFC 9211) appended after the upstream's, Via (RFC 9110 §7.6.3), hop-by-hop and
Connection-named fields removed (§7.6.1), CDN-Cache-Control (RFC 9213) honoured and stripped,
surrogate keys recorded and stripped; upstream requests carry X-Forwarded-For and Via and never
the client's validators or ranges.
"""

from __future__ import annotations

from aiohttp import web

from tests.edge.conftest import EdgeUnderTest, Origin


async def test_cache_status_via_and_hop_by_hop(origin: Origin, edge: EdgeUnderTest) -> None:
    @origin.route("/h")
    async def with_fields(request: web.Request) -> web.Response:
        response = web.Response(text="ok")
        response.headers["Cache-Control"] = "max-age=60"
        response.headers["Connection"] = "X-Secret"
        response.headers["X-Secret"] = "hop only"
        response.headers["Keep-Alive"] = "timeout=5"
        response.headers["Cache-Status"] = "origin-cache; hit"
        response.headers["Via"] = "1.1 upstream-proxy"
        return response

    for expected in ("fwd=uri-miss", "hit"):
        async with edge.get("/h") as response:
            statuses = response.headers.getall("Cache-Status")
            joined = ", ".join(statuses)
            assert joined.startswith("origin-cache; hit, edge-1; ")
            assert expected in joined.split(", ")[-1]
            assert response.headers["Via"] == "1.1 upstream-proxy, 1.1 edge-1"
            assert "X-Secret" not in response.headers
            assert "Keep-Alive" not in response.headers


async def test_cdn_cache_control_wins_and_cdn_fields_are_stripped(
    origin: Origin, edge: EdgeUnderTest
) -> None:
    origin.static(
        "/cdn",
        b"tagged",
        cache_control="no-store",
        CDN_Cache_Control="max-age=120",
        Surrogate_Key="product-1 catalog",
        Cache_Tag="blue",
    )
    for _ in range(2):
        async with edge.get("/cdn") as response:
            for name in ("CDN-Cache-Control", "Surrogate-Key", "Cache-Tag"):
                assert name not in response.headers
            assert response.headers["Cache-Control"] == "no-store"
    assert origin.hits["/cdn"] == 1
    (entry,) = edge.node.store.candidates("www.cdn.test/cdn")
    assert entry.surrogate_keys == {"product-1", "catalog", "blue"}


async def test_upstream_request_fields(origin: Origin, edge: EdgeUnderTest) -> None:
    origin.static("/u", b"0123456789", cache_control="max-age=60", etag='"u"')
    headers = {
        "Range": "bytes=0-1",
        "If-None-Match": '"other"',
        "Connection": "X-Client-Hop",
        "X-Client-Hop": "drop me",
        "X-Forwarded-For": "203.0.113.9",
    }
    async with edge.get("/u", headers=headers) as response:
        assert response.status == 206
    (seen,) = origin.seen
    assert seen.headers["Host"] == "www.cdn.test"
    # A user's X-Forwarded-For is not trusted: the edge sets its own (cdn_core.forwarding).
    assert seen.headers.getall("X-Forwarded-For") == ["127.0.0.1"]
    assert seen.headers["X-Forwarded-Proto"] == "http"
    assert seen.headers["Via"] == "1.1 edge-1"
    for name in ("Range", "If-None-Match", "X-Client-Hop"):
        assert name not in seen.headers


async def test_every_error_response_carries_the_node_fields(edge: EdgeUnderTest) -> None:
    async with edge.get("/", headers={"Host": "elsewhere.example"}) as response:
        assert response.status == 421
        assert response.headers["Via"] == "1.1 edge-1"
        assert response.headers["Cache-Status"].startswith("edge-1")
