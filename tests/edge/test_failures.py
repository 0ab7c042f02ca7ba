"""Upstream failure: stale-if-error (RFC 5861 §4) when allowed, else a clear 502 or 504."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from aiohttp import web

from tests.edge.conftest import EdgeFactory, EdgeUnderTest, Origin


async def test_origin_killed_stale_if_error_object_still_served(
    origin: Origin, edge: EdgeUnderTest
) -> None:
    origin.static("/sie", b"still here", cache_control="max-age=10, stale-if-error=600")
    origin.static("/plain", b"gone soon", cache_control="max-age=10")
    for path in ("/sie", "/plain"):
        async with edge.get(path) as response:
            assert response.status == 200
    await origin.stop()
    edge.clock.advance(60)
    async with edge.get("/sie") as stale:
        assert stale.status == 200
        assert await stale.read() == b"still here"
        assert "stale-if-error" in stale.headers["Cache-Status"]
        assert int(stale.headers["Age"]) >= 60
    async with edge.get("/plain") as failed:
        assert failed.status == 502
        assert "502 Bad Gateway: the origin of www.cdn.test failed" in await failed.text()


async def test_origin_5xx_serves_stale_if_error(origin: Origin, edge: EdgeUnderTest) -> None:
    broken = False

    @origin.route("/flaky")
    async def flaky(request: web.Request) -> web.Response:
        if broken:
            return web.Response(status=503, text="down for maintenance")
        return web.Response(
            text="good copy", headers={"Cache-Control": "max-age=5, stale-if-error=300"}
        )

    async with edge.get("/flaky"):
        pass
    broken = True
    edge.clock.advance(30)
    async with edge.get("/flaky") as response:
        assert response.status == 200
        assert await response.text() == "good copy"
        assert "fwd-status=503" in response.headers["Cache-Status"]


async def test_cold_miss_with_dead_origin_gets_502(origin: Origin, edge: EdgeUnderTest) -> None:
    await origin.stop()
    async with edge.get("/anything") as response:
        assert response.status == 502
        assert "could not be reached" in await response.text()
        assert response.headers["Via"] == "1.1 edge-1"


async def test_slow_origin_gets_504(origin: Origin, make_edge: EdgeFactory) -> None:
    edge = await make_edge(proxy={"first_byte_timeout": "200ms"})
    never = asyncio.Event()

    @origin.route("/slow")
    async def slow(request: web.Request) -> web.Response:
        await asyncio.wait_for(never.wait(), 30)
        return web.Response(text="too late")

    async with edge.get("/slow") as response:
        assert response.status == 504
        assert "did not answer in time" in await response.text()
    assert edge.counter("cdn_upstream_requests_total", result="timeout") == 1
    never.set()


async def test_only_if_cached_without_a_copy_gets_504(origin: Origin, edge: EdgeUnderTest) -> None:
    async with edge.get("/cold", headers={"Cache-Control": "only-if-cached"}) as response:
        assert response.status == 504
        assert "only-if-cached" in await response.text()
    assert origin.hits == {}


async def test_origin_dying_mid_body_cuts_the_client_and_stores_nothing(
    origin: Origin, edge: EdgeUnderTest
) -> None:
    @origin.route("/cut")
    async def cut(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Cache-Control": "max-age=60"})
        response.content_length = 100_000
        await response.prepare(request)
        await response.write(b"p" * 1000)
        assert request.transport is not None
        request.transport.close()
        return response

    with pytest.raises(aiohttp.ClientPayloadError):
        async with edge.get("/cut") as response:
            await response.read()
    assert len(edge.node.store) == 0


async def test_connect_is_never_tunnelled(origin: Origin, edge: EdgeUnderTest) -> None:
    from tests.edge.test_bad_input import raw_exchange

    status, data = await raw_exchange(
        edge, b"CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\n\r\n"
    )
    # aiohttp's router finds no origin-form path: refused before any proxying logic runs.
    assert 400 <= status < 500
    assert origin.hits == {}
