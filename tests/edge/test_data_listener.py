"""The data listener on the node's own server (edge.server): Expect, guards, targets, the memos.

``Expect`` is answered by the server (100 Continue when the body is read, or 417), the guards
a role hands to ``build_node(guards=...)`` wrap the handler, request targets no origin can
serve get a clear 400, and the hit path's memos (Host values, cache keys, Cache-Status
members) answer exactly what the functions they memoise would.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from cdn_core.testing import FakeClock
from edge.app import Node
from edge.server import Answer, Handler, Request, Response
from tests.edge.conftest import EdgeUnderTest, Origin, engine, make_config
from tests.edge.test_bad_input import raw_exchange


async def test_expect_100_continue_gets_the_interim_answer_then_the_origins(
    origin: Origin, edge: EdgeUnderTest
) -> None:
    @origin.route("/upload")
    async def upload(request: web.Request) -> web.Response:
        return web.Response(text=f"got {await request.text()}")

    address = edge.node.data_address
    assert address is not None
    reader, writer = await asyncio.open_connection(address.host, address.port)
    try:
        writer.write(
            b"POST /upload HTTP/1.1\r\nHost: www.cdn.test\r\nExpect: 100-continue\r\n"
            b"Content-Length: 5\r\n\r\n"
        )
        await writer.drain()
        interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        writer.write(b"hello")
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert head.startswith(b"HTTP/1.1 200 ")
        assert await asyncio.wait_for(reader.readexactly(9), 10) == b"got hello"
    finally:
        writer.close()
    [seen] = origin.seen
    assert "Expect" not in seen.headers


async def test_an_unknown_expectation_gets_417(origin: Origin, edge: EdgeUnderTest) -> None:
    status, data = await raw_exchange(
        edge,
        b"POST /upload HTTP/1.1\r\nHost: www.cdn.test\r\nExpect: fancy\r\n"
        b"Content-Length: 2\r\n\r\nab",
    )
    assert status == 417
    assert b"417 Expectation Failed" in data
    assert origin.hits == {}


async def test_targets_no_origin_serves_get_400(origin: Origin, edge: EdgeUnderTest) -> None:
    status, data = await raw_exchange(edge, b"OPTIONS * HTTP/1.1\r\nHost: www.cdn.test\r\n\r\n")
    assert status == 400
    assert b"unsupported request target '*'" in data
    assert b"Cache-Status: edge-1" in data
    assert origin.hits == {}
    assert edge.counter("cdn_requests_total", cache="rejected", status="4xx") == 1


async def test_trace_and_connect_get_405(origin: Origin, edge: EdgeUnderTest) -> None:
    """TRACE would reflect the request (credentials included); CONNECT makes a tunnel: neither
    is forwarded (RFC 9110 §9.3.6, §9.3.8)."""
    for payload in (
        b"TRACE /t HTTP/1.1\r\nHost: www.cdn.test\r\n\r\n",
        b"CONNECT www.cdn.test:443 HTTP/1.1\r\nHost: www.cdn.test\r\n\r\n",
    ):
        status, data = await raw_exchange(edge, payload)
        assert status == 405
        assert b"\r\nAllow: GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS\r\n" in data
        assert b"Cache-Status: edge-1" in data
    assert origin.hits == {}


async def test_guards_wrap_the_handler_outermost_first(origin: Origin, clock: FakeClock) -> None:
    origin.static("/page", b"page", cache_control="max-age=60")
    order: list[str] = []

    async def outer(request: Request, handler: Handler) -> Answer:
        order.append("outer")
        if request.headers.get("X-Refuse"):
            return Response(403, body=b"refused by the guard\n")
        return await handler(request)

    async def inner(request: Request, handler: Handler) -> Answer:
        order.append("inner")
        return await handler(request)

    config = make_config(origin.url)
    async with engine(config, clock=clock, guards=[outer, inner]) as node:
        await node.start()
        try:
            request = b"GET /page HTTP/1.1\r\nHost: www.cdn.test\r\n"
            status, data = await exchange(node, request + b"\r\n")
            assert status == 200
            assert data.endswith(b"\r\n\r\npage")
            assert order == ["outer", "inner"]
            status, data = await exchange(node, request + b"X-Refuse: yes\r\n\r\n")
            assert status == 403
            assert b"refused by the guard" in data
            assert order == ["outer", "inner", "outer"]
        finally:
            await node.stop()
    assert origin.hits == {"/page": 1}


async def test_host_spellings_share_one_object_and_unknown_hosts_stay_refused(
    origin: Origin, edge: EdgeUnderTest
) -> None:
    origin.static("/shared", b"one", cache_control="max-age=60")
    for host in ("www.cdn.test", "WWW.CDN.Test.:80", "www.cdn.test:8080", "www.cdn.test"):
        async with edge.get("/shared", headers={"Host": host}) as response:
            assert response.status == 200
            assert await response.read() == b"one"
    assert origin.hits == {"/shared": 1}
    for _ in range(2):
        async with edge.get("/shared", headers={"Host": "nope.cdn.test"}) as response:
            assert response.status == 421
            assert "'nope.cdn.test'" in await response.text()
    async with edge.get("/shared", headers={"Host": "alt.cdn.test"}) as response:
        assert response.status == 200  # another origin hostname: its own key, one more fetch
    assert origin.hits == {"/shared": 2}


async def test_hit_cache_status_ttl_follows_the_clock(origin: Origin, edge: EdgeUnderTest) -> None:
    origin.static("/ttl", b"t", cache_control="max-age=60")
    async with edge.get("/ttl") as response:
        assert "stored; ttl=60" in response.headers["Cache-Status"]
    seen: list[str] = []
    for step in (0.0, 0.5, 9.5, 0.0, 39.0):
        edge.clock.advance(step)
        async with edge.get("/ttl") as response:
            seen.append(response.headers["Cache-Status"])
    assert seen == [
        "edge-1; hit; ttl=60",
        "edge-1; hit; ttl=59",
        "edge-1; hit; ttl=50",
        "edge-1; hit; ttl=50",
        "edge-1; hit; ttl=11",
    ]
    assert origin.hits == {"/ttl": 1}


async def test_target_spellings_share_a_key_only_when_normalisation_says_so(
    origin: Origin, edge: EdgeUnderTest
) -> None:
    origin.static("/q", b"q", cache_control="max-age=60")
    for target in (b"/q?a=%7e", b"/q?a=~", b"/q?a=%7E", b"/q?a=%2f", b"/q?a=%2F", b"/q?a=~"):
        status, data = await exchange(
            edge.node, b"GET " + target + b" HTTP/1.1\r\nHost: www.cdn.test\r\n\r\n"
        )
        assert status == 200
        assert data.endswith(b"\r\n\r\nq")
    # %7e, ~ and %7E are one key (unreserved: decoded); %2f and %2F another (case only).
    assert origin.hits == {"/q": 2}


async def exchange(node: Node, payload: bytes) -> tuple[int, bytes]:
    """:func:`raw_exchange` with the data listener of ``node``."""
    return await raw_exchange(EdgeUnderTest(node, FakeClock(now=0.0), _NO_SESSION), payload)


_NO_SESSION: Any = None  # raw_exchange talks over its own socket
