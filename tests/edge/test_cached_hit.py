"""The pre-serialised hit (:class:`edge.respond.CachedHit`) writes what ``web.Response`` writes.

The data plane's low-level aiohttp server (:class:`edge.limits.EdgeRunner`) on loopback answers
``/fast/<case>`` with :func:`from_cache` (the pre-serialised path) and ``/slow/<case>`` with the
``web.Response`` the hit path built before, from the same fields; the raw bytes on the wire must
be the same for HTTP/1.1 and HTTP/1.0 requests, with and without keep-alive. These tests fail
when an aiohttp upgrade changes what its responses look like or how its server drives a
response: re-check ``edge/respond.py`` (``_write_message``).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from cdn_core.config import ProxyConfig
from cdn_core.http import Headers, RequestHead
from cdn_core.testing import make_entry
from edge.limits import EdgeRunner
from edge.respond import CachedHit, _prepared, from_cache
from edge.store import Slot
from tests.conftest import free_port

VIA = "1.1 edge-1"
AGE = 7
CACHE_STATUS = "edge-1; hit; ttl=53"

SLOTS = {
    "plain": Slot(
        make_entry(
            headers={"content-type": "text/plain", "cache-control": "max-age=60", "etag": '"v1"'}
        ),
        b"x" * 1024,
    ),
    # No Content-Type, Date or Server stored: aiohttp adds all three.
    "bare": Slot(make_entry(headers={"cache-control": "max-age=60"}, date=False), b"bare body"),
    "empty": Slot(make_entry(headers={"cache-control": "max-age=60"}, date=False), b""),
    "server": Slot(
        make_entry(headers={"server": "origin/1", "x-name": "caf\u00e9", "via": "1.1 up"}),
        b"abc",
    ),
}


def _head(target: str) -> RequestHead:
    return RequestHead(method="GET", host="www.cdn.test", target=target)


async def _serve(request: web.BaseRequest) -> web.StreamResponse:
    """``/fast/<case>`` or ``/slow/<case>``; ``?add=1`` adds a field after the handler (as a
    middleware would), ``?status=N`` changes the status, ``?bad=1`` a refused Cache-Status."""
    _, kind, case = request.path.split("/")
    slot = SLOTS[case]
    status = int(request.query.get("status", "200"))
    cache_status = "edge-1; hit\r\nX-Injected: 1" if request.query.get("bad") else CACHE_STATUS
    if kind == "fast":
        response, _ = from_cache(
            _head(request.path), slot, age_s=AGE, cache_status=cache_status, via=VIA
        )
        assert isinstance(response, CachedHit)
        if request.query.get("add"):
            response.headers["X-Added"] = "by a middleware"
        response.set_status(status)
        return response
    fields = [*_prepared(slot, VIA).fields, ("Age", str(AGE)), ("Cache-Status", cache_status)]
    if request.query.get("add"):
        fields.append(("X-Added", "by a middleware"))
    return web.Response(status=status, headers=fields, body=slot.body)


@pytest.fixture
async def port() -> AsyncIterator[int]:
    # The data plane's own server: it speaks HTTP/1.1 in every status line (edge.limits).
    runner = EdgeRunner(_serve, ProxyConfig(), handle_signals=False)
    await runner.setup()
    chosen = free_port()
    await web.TCPSite(runner, "127.0.0.1", chosen).start()
    try:
        yield chosen
    finally:
        await runner.cleanup()


async def _exchange(port: int, target: str, version: str, extra: str, count: int) -> list[bytes]:
    """``count`` requests on one connection (so keep-alive must hold between them); each
    answer's raw bytes with the Date value blanked."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    answers: list[bytes] = []
    try:
        for _ in range(count):
            writer.write(f"GET {target} {version}\r\nHost: x\r\n{extra}\r\n".encode())
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            match = re.search(rb"\r\nContent-Length: (\d+)\r\n", head)
            assert match is not None, head
            body = await asyncio.wait_for(reader.readexactly(int(match.group(1))), 10)
            answers.append(re.sub(rb"\r\nDate: [^\r]*", b"\r\nDate: <now>", head) + body)
    finally:
        writer.close()
        await writer.wait_closed()
    return answers


async def _closed_after_one(port: int, target: str, version: str, extra: str) -> bytes:
    """The raw answer to one request, read until the server closes the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"GET {target} {version}\r\nHost: x\r\n{extra}\r\n".encode())
        answer = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
        await writer.wait_closed()
    return re.sub(rb"\r\nDate: [^\r]*", b"\r\nDate: <now>", answer)


@pytest.mark.parametrize("case", sorted(SLOTS))
@pytest.mark.parametrize(
    ("version", "extra", "closes"),
    [
        ("HTTP/1.1", "", False),
        ("HTTP/1.1", "Connection: close\r\n", True),
        ("HTTP/1.0", "", True),
        ("HTTP/1.0", "Connection: keep-alive\r\n", False),
    ],
)
async def test_same_bytes_as_web_response(
    port: int, case: str, version: str, extra: str, closes: bool
) -> None:
    if closes:
        fast = [await _closed_after_one(port, f"/fast/{case}", version, extra)]
        slow = [await _closed_after_one(port, f"/slow/{case}", version, extra)]
    else:
        fast = await _exchange(port, f"/fast/{case}", version, extra, 2)
        slow = await _exchange(port, f"/slow/{case}", version, extra, 2)
    assert fast == slow
    assert fast[0].startswith(b"HTTP/1.1 200 OK\r\n")  # whatever the client's version
    assert f"\r\nAge: {AGE}\r\nCache-Status: {CACHE_STATUS}\r\n".encode() in fast[0]
    assert fast[0].endswith(b"\r\n\r\n" + SLOTS[case].body)


async def test_fields_added_after_the_handler_are_sent(port: int) -> None:
    fast = await _exchange(port, "/fast/plain?add=1", "HTTP/1.1", "", 1)
    slow = await _exchange(port, "/slow/plain?add=1", "HTTP/1.1", "", 1)
    assert fast == slow
    assert b"\r\nX-Added: by a middleware\r\n" in fast[0]


async def test_a_status_changed_after_the_handler_is_sent(port: int) -> None:
    fast = await _exchange(port, "/fast/plain?status=203", "HTTP/1.1", "", 1)
    slow = await _exchange(port, "/slow/plain?status=203", "HTTP/1.1", "", 1)
    assert fast == slow
    assert fast[0].startswith(b"HTTP/1.1 203 Non-Authoritative Information\r\n")


async def test_a_refused_cache_status_fails_as_before(port: int) -> None:
    # aiohttp refuses a field value with CR/LF (header injection) while preparing the
    # response: it logs the error and drops the connection without writing anything.
    fast = await _closed_after_one(port, "/fast/plain?bad=1", "HTTP/1.1", "")
    slow = await _closed_after_one(port, "/slow/plain?bad=1", "HTTP/1.1", "")
    assert fast == slow == b""


async def test_a_client_sees_the_usual_answer(port: int) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(3):  # keep-alive reuse of one pooled connection
            async with session.get(f"http://127.0.0.1:{port}/fast/bare") as response:
                assert response.status == 200
                assert await response.read() == b"bare body"
                assert response.headers["Content-Type"] == "application/octet-stream"
                assert response.headers["Age"] == str(AGE)
                assert response.headers["Via"] == VIA


def test_only_a_plain_200_get_is_pre_serialised() -> None:
    slot = SLOTS["plain"]
    for head in (
        RequestHead(method="HEAD", host="www.cdn.test", target="/"),
        RequestHead(method="GET", host="www.cdn.test", target="/", headers=_range()),
    ):
        response, _ = from_cache(head, slot, age_s=AGE, cache_status=CACHE_STATUS, via=VIA)
        assert not isinstance(response, CachedHit)
    refused = Slot(make_entry(headers={"x-bad": "a\x01b"}), b"body")
    response, _ = from_cache(_head("/"), refused, age_s=AGE, cache_status=CACHE_STATUS, via=VIA)
    assert not isinstance(response, CachedHit)


def _range() -> Headers:
    return Headers([("range", "bytes=0-1")])


def test_aiohttp_is_the_version_this_was_checked_against() -> None:
    # CachedHit relies on how aiohttp's server drives a response (edge/respond.py,
    # _write_message); the byte comparisons above prove it for this version.
    assert aiohttp.__version__.startswith("3.14."), (
        f"aiohttp {aiohttp.__version__}: re-check edge/respond.py CachedHit/_write_message "
        "against the new version, then update this test"
    )
