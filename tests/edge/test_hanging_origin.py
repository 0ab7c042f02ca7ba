"""An origin that hangs stalls nothing that may be served stale (RFC 5861 §4), and a circuit
breaker stops the node from waiting on it at all (cdn_core.breaker).

The origin here hangs on an event that the test only sets at the end, with a first-byte
timeout far longer than the test: an answer that arrives while the origin still hangs was not
waiting for it. No test measures time.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from tests.edge.conftest import EdgeFactory, EdgeUnderTest, Origin, wait_until

GOOD = "max-age=1, stale-if-error=600"


class Hang:
    """``answer`` serves a good copy until ``hanging``, then hangs until ``release``."""

    def __init__(self) -> None:
        self.hanging = False
        self.release = asyncio.Event()

    async def answer(self, request: web.Request) -> web.Response:
        if self.hanging:
            await self.release.wait()
        return web.Response(text=f"good {request.path}", headers={"Cache-Control": GOOD})


@pytest.fixture
async def hang(origin: Origin) -> AsyncIterator[Hang]:
    hang = Hang()
    for path in ("/a", "/b", "/c"):
        origin.routes[path] = hang.answer
    yield hang
    hang.release.set()  # let the origin's handlers finish before it stops


async def text_and_status(edge: EdgeUnderTest, path: str) -> tuple[int, str, str]:
    async with edge.get(path) as response:
        return response.status, await response.text(), response.headers["Cache-Status"]


async def test_waiters_get_the_stale_copy_while_a_revalidation_hangs(
    origin: Origin, hang: Hang, make_edge: EdgeFactory
) -> None:
    edge = await make_edge(proxy={"first_byte_timeout": "60s"})
    assert (await text_and_status(edge, "/a"))[0] == 200
    edge.clock.advance(5)  # stale now; stale-if-error allows it for 600 s
    hang.hanging = True
    leader = asyncio.ensure_future(text_and_status(edge, "/a"))
    await wait_until(lambda: origin.hits.get("/a") == 2)
    answers = await asyncio.gather(*(text_and_status(edge, "/a") for _ in range(20)))
    assert not leader.done()  # the revalidation still hangs at the origin
    for status, text, cache_status in answers:
        assert (status, text) == (200, "good /a")
        assert 'detail="stale-while-revalidating"' in cache_status
    assert origin.hits["/a"] == 2
    hang.release.set()
    status, text, _ = await leader
    assert (status, text) == (200, "good /a")


async def test_the_breaker_opens_after_repeated_timeouts_and_answers_at_once(
    origin: Origin, hang: Hang, make_edge: EdgeFactory
) -> None:
    edge = await make_edge(
        proxy={"first_byte_timeout": "300ms", "breaker_failures": 2, "breaker_open": "30s"}
    )
    assert (await text_and_status(edge, "/a"))[0] == 200  # stored, stale-if-error=600
    edge.clock.advance(5)
    hang.hanging = True
    for _ in range(2):
        status, _, _ = await text_and_status(edge, "/b")
        assert status == 504
    assert origin.hits["/b"] == 2
    assert edge.counter("cdn_upstream_breaker_transitions_total", origin="site", state="open") == 1

    # Open: nothing goes to the origin; what stale-if-error allows is served, the rest is 503.
    async with edge.get("/b") as response:
        assert response.status == 503
        assert int(response.headers["Retry-After"]) >= 29
        assert "stopped answering" in await response.text()
    status, text, cache_status = await text_and_status(edge, "/a")
    assert (status, text) == (200, "good /a")
    assert "stale-if-error" in cache_status
    assert (origin.hits["/a"], origin.hits["/b"]) == (1, 2)
    assert edge.counter("cdn_upstream_requests_total", result="breaker-open") == 2

    # After breaker_open, one trial goes through; the origin answers again, and it closes.
    hang.hanging = False
    edge.clock.advance(31)
    assert (await text_and_status(edge, "/c"))[0] == 200
    assert (await text_and_status(edge, "/b"))[0] == 200
    assert origin.hits["/b"] == 3
    assert (
        edge.counter("cdn_upstream_breaker_transitions_total", origin="site", state="closed") == 1
    )


async def test_a_failed_trial_reopens_the_breaker(
    origin: Origin, hang: Hang, make_edge: EdgeFactory
) -> None:
    edge = await make_edge(
        proxy={"first_byte_timeout": "300ms", "breaker_failures": 1, "breaker_open": "10s"}
    )
    hang.hanging = True
    assert (await text_and_status(edge, "/b"))[0] == 504
    assert (await text_and_status(edge, "/b"))[0] == 503
    edge.clock.advance(11)
    assert (await text_and_status(edge, "/b"))[0] == 504  # the trial, which times out
    assert (await text_and_status(edge, "/b"))[0] == 503
    assert origin.hits["/b"] == 2
    assert edge.counter("cdn_upstream_breaker_transitions_total", origin="site", state="open") == 2


async def test_breaker_failures_zero_turns_it_off(
    origin: Origin, hang: Hang, make_edge: EdgeFactory
) -> None:
    edge = await make_edge(proxy={"first_byte_timeout": "200ms", "breaker_failures": 0})
    hang.hanging = True
    for _ in range(3):
        assert (await text_and_status(edge, "/b"))[0] == 504
    assert origin.hits["/b"] == 3


async def test_an_abandoned_upload_does_not_open_the_breaker(
    origin: Origin, hang: Hang, make_edge: EdgeFactory
) -> None:
    """An upstream request that fails because its client stopped sending the body is the
    client's doing: it must not open the breaker for every other request."""

    @origin.route("/upload")
    async def upload(request: web.Request) -> web.Response:
        return web.Response(text=f"got {len(await request.read())}")

    edge = await make_edge(proxy={"breaker_failures": 1})
    address = edge.node.data_address
    assert address is not None
    abandoned = (
        b"POST /upload HTTP/1.1\r\nHost: www.cdn.test\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n"  # and then the client goes away
    )
    _, writer = await asyncio.open_connection(address.host, address.port)
    writer.write(abandoned)
    await writer.drain()
    await wait_until(lambda: origin.hits.get("/upload") == 1)
    writer.close()
    await wait_until(lambda: edge.counter("cdn_upstream_requests_total", result="unavailable") == 1)
    assert (await text_and_status(edge, "/a"))[0] == 200  # still asked: the breaker is closed
    assert edge.counter("cdn_upstream_breaker_transitions_total", origin="site", state="open") == 0
