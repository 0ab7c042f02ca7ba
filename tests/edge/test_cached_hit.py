"""The pre-serialised hit (a :class:`~edge.server.Prebuilt` from :func:`edge.respond.from_cache`)
writes what the generic :class:`~edge.server.Response` path writes for the same fields.

The data plane's own server (:mod:`edge.server`) on loopback answers ``/fast/<case>`` with
:func:`from_cache` (the pre-serialised path) and ``/slow/<case>`` with a ``Response`` built from
the same prepared fields; the status line, fields and body on the wire must be the same for
HTTP/1.1 and HTTP/1.0 requests, with and without keep-alive, and every status line is
``HTTP/1.1``.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

import aiohttp
import pytest

from cdn_core.http import Headers, RequestHead
from cdn_core.testing import make_entry
from edge.respond import from_cache, prepared_of
from edge.server import Prebuilt, Request, Response, ServerLimits, start_server
from edge.store import Slot

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
    # No Date stored: the server adds one.
    "bare": Slot(make_entry(headers={"cache-control": "max-age=60"}, date=False), b"bare body"),
    "empty": Slot(make_entry(headers={"cache-control": "max-age=60"}, date=False), b""),
    "server": Slot(
        make_entry(headers={"server": "origin/1", "x-name": "caf\u00e9", "via": "1.1 up"}),
        b"abc",
    ),
    "status": Slot(make_entry(status=203, headers={"cache-control": "max-age=60"}), b"203 body"),
}


def _head(target: str) -> RequestHead:
    return RequestHead(method="GET", host="www.cdn.test", target=target)


async def _serve(request: Request) -> Response | Prebuilt:
    _, kind, case = request.raw_path.split("/")
    slot = SLOTS[case]
    if kind == "fast":
        response, _ = from_cache(
            _head(request.raw_path), slot, age_s=AGE, cache_status=CACHE_STATUS, via=VIA
        )
        assert isinstance(response, Prebuilt)
        return response
    prepared = prepared_of(slot, VIA)
    fields = [*prepared.fields, ("Age", str(AGE)), ("Cache-Status", CACHE_STATUS)]
    return Response(slot.entry.response.status, fields, slot.body)


@pytest.fixture
async def port() -> AsyncIterator[int]:
    server = await start_server(_serve, host="127.0.0.1", port=0, limits=ServerLimits())
    try:
        yield server.port
    finally:
        await server.close(drain_s=1)


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
            answers.append(_blank_date(head) + body)
    finally:
        writer.close()
        await writer.wait_closed()
    return answers


def _sorted_fields(answer: bytes) -> tuple[bytes, list[bytes], bytes]:
    head, _, body = answer.partition(b"\r\n\r\n")
    status, *fields = head.split(b"\r\n")
    return status, sorted(fields), body


def _blank_date(head: bytes) -> bytes:
    return re.sub(rb"\r\nDate: [^\r]*", b"\r\nDate: <now>", head)


async def _closed_after_one(port: int, target: str, version: str, extra: str) -> bytes:
    """The raw answer to one request, read until the server closes the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"GET {target} {version}\r\nHost: x\r\n{extra}\r\n".encode())
        answer = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
        await writer.wait_closed()
    return _blank_date(answer)


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
async def test_same_bytes_as_the_generic_response(
    port: int, case: str, version: str, extra: str, closes: bool
) -> None:
    if closes:
        fast = [await _closed_after_one(port, f"/fast/{case}", version, extra)]
        slow = [await _closed_after_one(port, f"/slow/{case}", version, extra)]
    else:
        fast = await _exchange(port, f"/fast/{case}", version, extra, 2)
        slow = await _exchange(port, f"/slow/{case}", version, extra, 2)
    # The same status line, fields and body; a Prebuilt puts Connection before the tail.
    assert [_sorted_fields(a) for a in fast] == [_sorted_fields(a) for a in slow]
    assert fast[0].startswith(b"HTTP/1.1 20")  # whatever the client's version
    assert f"\r\nAge: {AGE}\r\nCache-Status: {CACHE_STATUS}\r\n".encode() in fast[0]
    assert fast[0].endswith(b"\r\n\r\n" + SLOTS[case].body)
    assert fast[0].count(b"\r\nDate: ") == 1


async def test_a_client_sees_the_usual_answer(port: int) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(3):  # keep-alive reuse of one pooled connection
            async with session.get(f"http://127.0.0.1:{port}/fast/bare") as response:
                assert response.status == 200
                assert await response.read() == b"bare body"
                assert response.headers["Age"] == str(AGE)
                assert response.headers["Via"] == VIA
                assert "Content-Type" not in response.headers  # none stored, none invented


def test_only_a_get_of_a_writable_head_is_pre_serialised() -> None:
    slot = SLOTS["plain"]
    for head in (
        RequestHead(method="HEAD", host="www.cdn.test", target="/"),
        RequestHead(method="GET", host="www.cdn.test", target="/", headers=_range()),
    ):
        response, _ = from_cache(head, slot, age_s=AGE, cache_status=CACHE_STATUS, via=VIA)
        assert not isinstance(response, Prebuilt)
    refused = Slot(make_entry(headers={"x-bad": "a\x01b"}), b"body")
    response, _ = from_cache(_head("/"), refused, age_s=AGE, cache_status=CACHE_STATUS, via=VIA)
    assert not isinstance(response, Prebuilt)
    bad_status = "edge-1; hit\r\nX-Injected: 1"
    response, _ = from_cache(_head("/"), slot, age_s=AGE, cache_status=bad_status, via=VIA)
    assert not isinstance(response, Prebuilt)


def test_the_hit_body_is_not_copied() -> None:
    slot = SLOTS["plain"]
    response, _ = from_cache(_head("/"), slot, age_s=AGE, cache_status=CACHE_STATUS, via=VIA)
    assert isinstance(response, Prebuilt)
    body = response.tail[-1]
    assert isinstance(body, memoryview) and body.obj is slot.body


def _range() -> Headers:
    return Headers([("range", "bytes=0-1")])
