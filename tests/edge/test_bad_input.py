"""Bad input gets a clear 400/421/431/413 and changes nothing; the edge is never an open proxy.

Malformed requests are sent as raw bytes over a socket, since a well-behaved client library
cannot produce them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from tests.edge.conftest import EdgeUnderTest, Origin


async def raw_exchange(edge: EdgeUnderTest, payload: bytes) -> tuple[int, bytes]:
    """Send ``payload`` as is; return the status and the whole response (the edge closes)."""
    address = edge.node.data_address
    assert address is not None
    reader, writer = await asyncio.open_connection(address.host, address.port)
    try:
        writer.write(payload)
        await writer.drain()
        data = await asyncio.wait_for(_read_response(reader), 10)
    finally:
        writer.close()
    status = int(data.split(b" ", 2)[1])
    return status, data


async def _read_response(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return head + await reader.readexactly(length)


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b"GARBAGE\r\n\r\n", b"invalid or unknown method"),
        (b"GET / HTTP/1.1\r\nHost: www.cdn.test\r\nBad Header\r\n\r\n", b"400 Bad Request"),
        (
            b"POST / HTTP/1.1\r\nHost: www.cdn.test\r\nContent-Length: 3\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
            b"Transfer-Encoding can't be present with Content-Length",
        ),
        (
            b"GET / HTTP/1.1\r\nHost: www.cdn.test\r\nContent-Length: 1\r\n"
            b"Content-Length: 2\r\n\r\n",
            b"Content-Length",
        ),
    ],
    ids=["bad-request-line", "bad-header-line", "cl-te-conflict", "duplicate-cl"],
)
async def test_malformed_requests_get_400(
    origin: Origin, edge: EdgeUnderTest, payload: bytes, expected: bytes
) -> None:
    status, data = await raw_exchange(edge, payload)
    assert status == 400
    assert expected in data
    assert b"Traceback" not in data
    assert origin.hits == {}


async def test_unknown_host_gets_421(origin: Origin, edge: EdgeUnderTest) -> None:
    async with edge.get("/", headers={"Host": "evil.example"}) as response:
        assert response.status == 421
        assert "does not serve the host 'evil.example'" in await response.text()
    assert origin.hits == {}


async def test_absolute_form_for_a_foreign_host_is_refused(
    origin: Origin, edge: EdgeUnderTest
) -> None:
    status, data = await raw_exchange(
        edge, b"GET http://evil.example/steal HTTP/1.1\r\nHost: www.cdn.test\r\n\r\n"
    )
    assert status == 421
    assert b"evil.example" in data
    origin.static("/ok", b"fine", cache_control="max-age=60")
    status, data = await raw_exchange(
        edge,
        b"GET http://www.cdn.test/ok HTTP/1.1\r\nHost: www.cdn.test\r\nConnection: close\r\n\r\n",
    )
    assert status == 200
    assert data.endswith(b"fine")
    assert origin.hits == {"/ok": 1}


async def test_missing_host_gets_400(edge: EdgeUnderTest) -> None:
    status, data = await raw_exchange(edge, b"GET / HTTP/1.0\r\n\r\n")
    assert status == 400
    assert b"no Host header" in data


async def test_oversized_header_field_gets_431(origin: Origin, edge: EdgeUnderTest) -> None:
    huge = b"a" * 9000  # over proxy.max_header_bytes (8 KiB)
    status, data = await raw_exchange(
        edge, b"GET / HTTP/1.1\r\nHost: www.cdn.test\r\nX-Big: " + huge + b"\r\n\r\n"
    )
    assert status == 431
    assert b"431 Request Header Fields Too Large" in data
    assert origin.hits == {}


async def test_oversized_header_section_gets_431(origin: Origin, edge: EdgeUnderTest) -> None:
    many = {f"X-Field-{i}": "v" * 500 for i in range(20)}  # each fine, 10 KiB in total
    async with edge.get("/", headers=many) as response:
        assert response.status == 431
        assert "over the limit of 8192" in await response.text()
    assert origin.hits == {}


async def test_oversized_body_gets_413(origin: Origin, edge: EdgeUnderTest) -> None:
    async with edge.request("POST", "/upload", data=b"x" * 70_000) as response:
        assert response.status == 413
        assert "over the limit of 65536" in await response.text()
    assert origin.hits == {}


async def test_oversized_chunked_body_gets_413(origin: Origin, edge: EdgeUnderTest) -> None:
    @origin.route("/upload")
    async def upload(request: web.Request) -> web.Response:
        return web.Response(text=f"stored {len(await request.read())} bytes")

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(20):
            yield b"y" * 8192

    async with edge.request("POST", "/upload", data=chunks()) as response:
        assert response.status == 413
        assert "over the limit of 65536" in await response.text()


async def test_streamed_body_within_limits_reaches_the_origin(
    origin: Origin, edge: EdgeUnderTest
) -> None:
    @origin.route("/upload")
    async def upload(request: web.Request) -> web.Response:
        return web.Response(text=f"stored {len(await request.read())} bytes")

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(4):
            yield b"z" * 8192

    async with edge.request("POST", "/upload", data=chunks()) as response:
        assert response.status == 200
        assert await response.text() == "stored 32768 bytes"
