"""The edge as an RFC 9111 shared cache, against a real origin on loopback.

Covers reuse with Age (§4, §5.1), Vary variants (§4.1), revalidation (§4.3), client
conditionals (§4.3.2), invalidation by unsafe methods (§4.4), stale-while-revalidate
(RFC 5861 §3), coalescing and hit-for-miss, object size limits, Range and HEAD.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from tests.edge.conftest import EdgeFactory, EdgeUnderTest, Origin, wait_until


async def test_second_get_is_a_hit_with_age(origin: Origin, edge: EdgeUnderTest) -> None:
    origin.static("/a", b"hello", cache_control="max-age=60")
    async with edge.get("/a") as first:
        assert first.status == 200
        assert "fwd=uri-miss" in first.headers["Cache-Status"]
        assert "stored" in first.headers["Cache-Status"]
    edge.clock.advance(7)
    async with edge.get("/a") as second:
        assert await second.read() == b"hello"
        assert second.headers["Cache-Status"].startswith("edge-1; hit")
        assert int(second.headers["Age"]) >= 7
    assert origin.hits["/a"] == 1


async def test_accept_language_variants_are_kept_apart(origin: Origin, edge: EdgeUnderTest) -> None:
    @origin.route("/greet")
    async def greet(request: web.Request) -> web.Response:
        lang = request.headers.get("Accept-Language", "en")
        text = "bonjour" if lang.startswith("fr") else "hello"
        return web.Response(
            text=text, headers={"Cache-Control": "max-age=60", "Vary": "Accept-Language"}
        )

    for lang, expected in [("en", "hello"), ("fr", "bonjour"), ("en", "hello"), ("fr", "bonjour")]:
        async with edge.get("/greet", headers={"Accept-Language": lang}) as response:
            assert await response.text() == expected
    assert origin.hits["/greet"] == 2
    assert len(edge.node.store.candidates("www.cdn.test/greet")) == 2


async def test_expired_etag_object_revalidates_with_one_304(
    origin: Origin, edge: EdgeUnderTest
) -> None:
    statuses: list[int] = []

    @origin.route("/doc")
    async def doc(request: web.Request) -> web.Response:
        headers = {"ETag": '"v1"', "Cache-Control": "max-age=10"}
        if request.headers.get("If-None-Match") == '"v1"':
            statuses.append(304)
            return web.Response(status=304, headers=headers)
        statuses.append(200)
        return web.Response(text="document", headers=headers)

    async with edge.get("/doc") as response:
        assert await response.text() == "document"
    edge.clock.advance(30)
    async with edge.get("/doc") as response:
        assert await response.text() == "document"
        assert "fwd=stale; fwd-status=304" in response.headers["Cache-Status"]
    async with edge.get("/doc") as response:
        assert response.headers["Cache-Status"].startswith("edge-1; hit")
    assert statuses == [200, 304]


async def test_client_conditional_is_answered_304_from_cache(
    origin: Origin, edge: EdgeUnderTest
) -> None:
    origin.static("/c", b"content", cache_control="max-age=60", etag='"abc"')
    async with edge.get("/c"):
        pass
    async with edge.get("/c", headers={"If-None-Match": '"abc"'}) as response:
        assert response.status == 304
        assert response.headers["ETag"] == '"abc"'
        assert "hit" in response.headers["Cache-Status"]
    assert origin.hits["/c"] == 1


async def test_200_concurrent_cold_requests_make_one_origin_request(
    origin: Origin, edge: EdgeUnderTest
) -> None:
    release = asyncio.Event()

    @origin.route("/hot")
    async def hot(request: web.Request) -> web.Response:
        await asyncio.wait_for(release.wait(), 20)
        return web.Response(body=b"x" * 5000, headers={"Cache-Control": "max-age=60"})

    async def fetch() -> tuple[int, bytes, str]:
        async with edge.get("/hot") as response:
            return response.status, await response.read(), response.headers["Cache-Status"]

    tasks = [asyncio.create_task(fetch()) for _ in range(200)]
    await wait_until(lambda: edge.counter("cdn_coalesced_waiters_total") >= 199)
    release.set()
    results = await asyncio.gather(*tasks)
    assert origin.hits["/hot"] == 1
    assert all(status == 200 and body == b"x" * 5000 for status, body, _ in results)
    assert sum("collapsed" in status for _, _, status in results) == 199


async def test_hit_for_miss_does_not_serialize_uncacheable_requests(
    origin: Origin, make_edge: EdgeFactory
) -> None:
    edge = await make_edge(cache={"coalesce_wait": "60s"})
    inside = 0
    all_inside = asyncio.Event()

    @origin.route("/private")
    async def private(request: web.Request) -> web.Response:
        nonlocal inside
        inside += 1
        if inside >= 4:
            all_inside.set()
        if inside > 1:  # requests after the first must all be at the origin together
            await asyncio.wait_for(all_inside.wait(), 10)
        return web.Response(text="yours", headers={"Cache-Control": "private"})

    async with edge.get("/private") as first:
        assert first.status == 200
        assert "stored" not in first.headers["Cache-Status"]

    async def fetch() -> int:
        async with edge.get("/private") as response:
            await response.read()
            status: int = response.status
            return status

    assert await asyncio.gather(*(fetch() for _ in range(3))) == [200, 200, 200]
    assert origin.hits["/private"] == 4


async def test_object_over_max_object_bytes_passes_uncached(
    origin: Origin, make_edge: EdgeFactory
) -> None:
    edge = await make_edge(cache={"max_object_bytes": "64KiB"})
    big = bytes(range(256)) * 1024  # 256 KiB

    @origin.route("/big")
    async def big_chunked(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Cache-Control": "max-age=60"})
        await response.prepare(request)
        for start in range(0, len(big), 16384):
            await response.write(big[start : start + 16384])
        await response.write_eof()
        return response

    origin.static("/big-cl", big, cache_control="max-age=60")
    for path in ("/big", "/big-cl"):
        for _ in range(2):
            async with edge.get(path) as response:
                assert await response.read() == big
    assert origin.hits == {"/big": 2, "/big-cl": 2}
    assert len(edge.node.store) == 0


async def test_range_requests_from_a_cached_object(origin: Origin, edge: EdgeUnderTest) -> None:
    origin.static("/r", b"0123456789", cache_control="max-age=60", etag='"r1"')
    async with edge.get("/r", headers={"Range": "bytes=2-5"}) as miss:
        assert miss.status == 206
        assert await miss.read() == b"2345"
        assert miss.headers["Content-Range"] == "bytes 2-5/10"
    async with edge.get("/r", headers={"Range": "bytes=-3"}) as hit:
        assert hit.status == 206
        assert await hit.read() == b"789"
        assert "hit" in hit.headers["Cache-Status"]
    async with edge.get("/r", headers={"Range": "bytes=50-60"}) as unsatisfiable:
        assert unsatisfiable.status == 416
        assert unsatisfiable.headers["Content-Range"] == "bytes */10"
    assert origin.hits["/r"] == 1
    assert origin.seen[0].headers.get("Range") is None  # upstream always asked for all of it


async def test_head_is_served_from_a_cached_get(origin: Origin, edge: EdgeUnderTest) -> None:
    origin.static("/h", b"x" * 1234, cache_control="max-age=60")
    async with edge.request("HEAD", "/h") as miss:
        assert miss.status == 200
        assert miss.headers["Content-Length"] == "1234"
    async with edge.request("HEAD", "/h") as hit:
        assert hit.headers["Content-Length"] == "1234"
        assert "hit" in hit.headers["Cache-Status"]
        assert await hit.read() == b""
    async with edge.get("/h") as get:
        assert await get.read() == b"x" * 1234
        assert "hit" in get.headers["Cache-Status"]
    assert [r.method for r in origin.seen] == ["GET"]


async def test_unsafe_method_invalidates_target_and_location(
    origin: Origin, edge: EdgeUnderTest
) -> None:
    origin.static("/item", b"item v1", cache_control="max-age=600")
    origin.static("/list", b"list v1", cache_control="max-age=600")

    @origin.route("/item-update")
    async def update(request: web.Request) -> web.Response:
        body = await request.read()
        return web.Response(status=201, text=f"got {len(body)}", headers={"Location": "/list"})

    for path in ("/item", "/list", "/item", "/list"):
        async with edge.get(path):
            pass
    assert origin.hits == {"/item": 1, "/list": 1}
    async with edge.request("POST", "/item", data=b"new") as post:
        assert post.status == 200
        assert "fwd=method" in post.headers["Cache-Status"]
    async with edge.get("/item") as after:
        assert "fwd=uri-miss" in after.headers["Cache-Status"]
    async with edge.request("PUT", "/item-update", data=b"payload") as put:
        assert put.status == 201
        assert await put.text() == "got 7"
    async with edge.get("/list") as after:
        assert "fwd=uri-miss" in after.headers["Cache-Status"]
    assert origin.hits["/list"] == 2


async def test_stale_while_revalidate_refreshes_in_the_background(
    origin: Origin, edge: EdgeUnderTest
) -> None:
    version = 1

    @origin.route("/swr")
    async def swr(request: web.Request) -> web.Response:
        return web.Response(
            text=f"v{version}",
            headers={"Cache-Control": "max-age=10, stale-while-revalidate=600"},
        )

    async with edge.get("/swr") as response:
        assert await response.text() == "v1"
    version = 2
    edge.clock.advance(30)
    async with edge.get("/swr") as stale:
        assert await stale.text() == "v1"
        assert "stale-while-revalidate" in stale.headers["Cache-Status"]
    await wait_until(lambda: not edge.node.handler.background and origin.hits["/swr"] == 2)
    async with edge.get("/swr") as refreshed:
        assert await refreshed.text() == "v2"
        assert refreshed.headers["Cache-Status"].startswith("edge-1; hit")
    assert edge.counter("cdn_background_refreshes_total") == 1


async def test_streamed_miss_is_stored_while_sent(origin: Origin, edge: EdgeUnderTest) -> None:
    parts = [b"a" * 10000, b"b" * 10000, b"c" * 10000]

    @origin.route("/stream")
    async def stream(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Cache-Control": "max-age=60"})
        await response.prepare(request)
        for part in parts:
            await response.write(part)
        await response.write_eof()
        return response

    async with edge.get("/stream") as miss:
        assert await miss.read() == b"".join(parts)
    async with edge.get("/stream") as hit:
        assert await hit.read() == b"".join(parts)
        assert "hit" in hit.headers["Cache-Status"]
    assert origin.hits["/stream"] == 1


async def test_waiter_goes_upstream_itself_after_the_wait_cap(
    origin: Origin, make_edge: EdgeFactory
) -> None:
    edge = await make_edge(cache={"coalesce_wait": "100ms"})
    stuck = asyncio.Event()
    calls = 0

    @origin.route("/stuck")
    async def first_stalls(request: web.Request) -> web.Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            await asyncio.wait_for(stuck.wait(), 20)
        return web.Response(text=f"call {calls}", headers={"Cache-Control": "max-age=60"})

    async def fetch() -> str:
        async with edge.get("/stuck") as response:
            text: str = await response.text()
            return text

    leader = asyncio.create_task(fetch())
    await wait_until(lambda: calls == 1)
    assert await fetch() == "call 2"  # did not wait for the stalled leader
    stuck.set()
    assert await leader == "call 2"  # the leader's late answer saw the same counter
    assert edge.counter("cdn_coalesced_waiters_total") == 1


async def test_soft_purged_object_is_revalidated(origin: Origin, edge: EdgeUnderTest) -> None:
    from cdn_core.purge import PurgeKind, PurgeRule

    origin.static("/soft", b"soft", cache_control="max-age=600", etag='"s"')
    async with edge.get("/soft"):
        pass
    purge = PurgeRule(id="x", kind=PurgeKind.URL, values=("www.cdn.test/soft",), soft=True)
    assert edge.node.store.purge(purge, now=edge.clock()) == 1
    async with edge.get("/soft") as response:
        assert "fwd=stale" in response.headers["Cache-Status"]
    assert origin.seen[-1].headers["If-None-Match"] == '"s"'


async def test_an_invalid_cdn_cache_control_is_ignored(origin: Origin, edge: EdgeUnderTest) -> None:
    """RFC 9213 §2.1: a CDN-Cache-Control that is not a valid Structured Field Dictionary is
    ignored as a whole, so Cache-Control: no-store decides (the object is not stored)."""
    for path, targeted in (("/amp", "max-age=10000, &&&&&"), ("/quoted", 'max-age="10000"')):
        origin.static(path, b"fresh?", cache_control="no-store", cdn_cache_control=targeted)
        for _ in range(2):
            async with edge.get(path) as response:
                assert response.status == 200
        assert origin.hits[path] == 2
    origin.static("/valid", b"kept", cache_control="no-store", cdn_cache_control="max-age=600")
    for _ in range(2):
        async with edge.get("/valid") as response:
            assert await response.read() == b"kept"
    assert origin.hits["/valid"] == 1
