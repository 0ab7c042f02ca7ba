"""An edge on user requests: loop refusal (508) and no spoofed overlay fields."""

from __future__ import annotations

from tests.edge.conftest import EdgeUnderTest, Origin


async def test_a_request_that_already_crossed_this_cdn_gets_508(
    origin: Origin, edge: EdgeUnderTest
) -> None:
    origin.static("/loop", b"never", cache_control="max-age=60")
    for loop in ("edgetest", "other-cdn, EdgeTest; ttl=3"):
        async with edge.get("/loop", headers={"CDN-Loop": loop}) as response:
            assert response.status == 508
            assert "CDN-Loop" in await response.text()
    assert origin.hits.get("/loop", 0) == 0
    # Another CDN's cdn-id, or one of our node ids (a shield hop), is not a client loop.
    async with edge.get("/loop", headers={"CDN-Loop": "other-cdn"}) as response:
        assert response.status == 200
    assert edge.counter("cdn_requests_total", cache="rejected", status="5xx") == 2


async def test_user_overlay_fields_never_reach_the_origin(
    origin: Origin, edge: EdgeUnderTest
) -> None:
    origin.static("/spoof", b"ok", cache_control="max-age=60")
    spoofed = {"X-Overlay-Route": "shield-1", "X-Overlay-Auth": "forged", "X-Other": "kept"}
    async with edge.get("/spoof", headers=spoofed) as response:
        assert response.status == 200
    [seen] = origin.seen
    assert not [name for name in seen.headers if name.lower().startswith("x-overlay-")]
    assert seen.headers["X-Other"] == "kept"
    assert seen.headers["X-Forwarded-For"] == "127.0.0.1"
