"""Every framing rule over a real socket: the status, a short no-store answer, then close.

RFC 9112 §2.2 (bare CR/LF), §2.3 (versions), §3 (request line, 414), §3.2 (Host), §5.1-5.2
(field syntax, obs-fold), §6.1 (Transfer-Encoding), §6.3 (message length), RFC 6585 §5 (431),
RFC 9110 §10.1.1 (Expect). In each case the handler never sees the request.
"""

from __future__ import annotations

from http import HTTPStatus

import pytest

from edge.server.protocol import HttpProtocol
from tests.edge.server.conftest import HOST_FIELD, Recorder, Servers, get, wait_until

LIMITS = {
    "max_line_bytes": 200,
    "max_field_bytes": 100,
    "max_fields": 10,
    "max_head_bytes": 600,
    "max_body_bytes": 1000,
}

CASES = {
    # Content-Length and Transfer-Encoding (smuggling).
    "cl-and-te": (b"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n", 400),
    "te-and-cl": (b"Transfer-Encoding: chunked\r\nContent-Length: 3\r\n", 400),
    "cl-invalid": (b"Content-Length: 3x\r\n", 400),
    "cl-negative": (b"Content-Length: -3\r\n", 400),
    "cl-list": (b"Content-Length: 3, 3\r\n", 400),
    "cl-empty": (b"Content-Length: \r\n", 400),
    "cl-duplicate-same": (b"Content-Length: 3\r\nContent-Length: 3\r\n", 400),
    "cl-duplicate-differing": (b"Content-Length: 3\r\nContent-Length: 4\r\n", 400),
    "cl-overflow": (b"Content-Length: 99999999999999999999999\r\n", 400),
    "te-gzip": (b"Transfer-Encoding: gzip\r\n", 400),
    "te-identity": (b"Transfer-Encoding: identity\r\n", 400),
    "te-chunked-not-final": (b"Transfer-Encoding: chunked, gzip\r\n", 400),
    "te-chunked-twice": (b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", 400),
    "te-coding-before-chunked": (b"Transfer-Encoding: gzip, chunked\r\n", 501),
    "te-split-over-fields": (b"Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n", 501),
    # Field syntax.
    "obs-fold": (b"X-A: one\r\n two\r\n", 400),
    "bare-lf-in-field": (b"X-A: one\nX-B: two\r\n", 400),
    "bare-cr-in-field": (b"X-A: one\rX-B: two\r\n", 400),
    "ctl-in-value": (b"X-A: o\x01ne\r\n", 400),
    "nul-in-value": (b"X-A: o\x00ne\r\n", 400),
    "del-in-value": (b"X-A: o\x7fne\r\n", 400),
    "ctl-in-name": (b"X-\x01A: one\r\n", 400),
    "space-before-colon": (b"X-A : one\r\n", 400),
    "second-host": (b"Host: other\r\n", 400),
    # Expectations.
    "unknown-expectation": (b"Expect: the-unexpected\r\n", 417),
    "expectation-list": (b"Expect: 100-continue, more\r\n", 417),
    # Limits.
    "field-too-long": (b"X-Big: " + b"a" * 100 + b"\r\n", 431),
    "too-many-fields": (b"".join(b"X-%d: v\r\n" % i for i in range(10)), 431),
    "head-too-large": (b"".join(b"X-%d: %s\r\n" % (i, b"v" * 80) for i in range(7)), 431),
    "body-too-large": (b"Content-Length: 1001\r\n", 413),
    # A body llhttp would not frame: it would read it as the next request.
    "upgrade-with-body": (b"Connection: Upgrade\r\nUpgrade: h2c\r\nContent-Length: 5\r\n", 400),
}

LINES = {
    "bare-lf-request-line": (b"GET / HTTP/1.1\n" + HOST_FIELD + b"\r\n", 400),
    "ctl-in-target": (b"GET /a\x01b HTTP/1.1\r\n" + HOST_FIELD + b"\r\n", 400),
    "del-in-target": (b"GET /a\x7fb HTTP/1.1\r\n" + HOST_FIELD + b"\r\n", 400),
    "tab-in-target": (b"GET /a\tb HTTP/1.1\r\n" + HOST_FIELD + b"\r\n", 400),
    "space-in-target": (b"GET /a b HTTP/1.1\r\n" + HOST_FIELD + b"\r\n", 400),
    "target-too-long": (b"GET /" + b"a" * 200 + b" HTTP/1.1\r\n" + HOST_FIELD + b"\r\n", 414),
    "invalid-method": (b"G@T / HTTP/1.1\r\n" + HOST_FIELD + b"\r\n", 400),
    "unknown-method": (b"FROB / HTTP/1.1\r\n" + HOST_FIELD + b"\r\n", 400),
    "lowercase-method": (b"get / HTTP/1.1\r\n" + HOST_FIELD + b"\r\n", 400),
    "http-2.0": (b"GET / HTTP/2.0\r\n" + HOST_FIELD + b"\r\n", 505),
    "http-1.2": (b"GET / HTTP/1.2\r\n" + HOST_FIELD + b"\r\n", 505),
    "http-0.9": (b"GET / HTTP/0.9\r\n" + HOST_FIELD + b"\r\n", 505),
    "http-3.0": (b"GET / HTTP/3.0\r\n" + HOST_FIELD + b"\r\n", 505),
    "no-version": (b"GET /\r\n\r\n", 505),
    "h2-preface": (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505),
    "http11-without-host": (b"GET / HTTP/1.1\r\n\r\n", 400),
    "te-on-http10": (
        b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        400,
    ),
}


async def assert_refused(servers: Servers, request: bytes, status: int) -> None:
    recorder = Recorder()
    server = await servers.start(recorder, **LIMITS)
    client = await servers.client(server)
    await client.send(request)
    response = await client.response()
    assert response.status == status, response.body
    assert response.body.startswith(f"{status} {HTTPStatus(status).phrase}: ".encode())
    assert response.body.endswith(b"\n") and response.body.count(b"\n") == 1
    assert response.get("Cache-Control") == "no-store"
    assert response.get("Connection") == "close"
    assert await client.is_closed()
    assert recorder.seen == []


@pytest.mark.parametrize("case", CASES)
async def test_bad_field(servers: Servers, case: str) -> None:
    fields, status = CASES[case]
    await assert_refused(servers, b"POST / HTTP/1.1\r\n" + HOST_FIELD + fields + b"\r\n", status)


@pytest.mark.parametrize("case", LINES)
async def test_bad_request_line(servers: Servers, case: str) -> None:
    request, status = LINES[case]
    await assert_refused(servers, request, status)


async def test_a_field_arriving_in_many_reads_is_counted(servers: Servers) -> None:
    # llhttp buffers a field until it ends; the server counts the reads meanwhile.
    recorder = Recorder()
    server = await servers.start(recorder, **LIMITS)
    client = await servers.client(server)
    await client.send(b"GET / HTTP/1.1\r\n" + HOST_FIELD + b"X-Slow: ")
    (connection,) = server._registry.snapshot()
    assert isinstance(connection, HttpProtocol)
    await wait_until(lambda: connection._in_head, "the head to start")
    await client.send(b"a" * 60)
    await wait_until(lambda: connection._budget.pending == 60, "the read to be counted")
    await client.send(b"a" * 60)
    response = await client.response()
    assert response.status == 431
    assert await client.is_closed()
    assert recorder.seen == []


async def test_bad_request_after_good_ones_is_answered_in_order(
    servers: Servers, recorder: Recorder
) -> None:
    server = await servers.start(recorder, **LIMITS)
    client = await servers.client(server)
    await client.send(get("/1") + get("/2") + b"GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n" + get("/3"))
    assert [(await client.response()).status for _ in range(3)] == [200, 200, 400]
    assert await client.is_closed()
    assert recorder.paths == ["/1", "/2"]


async def test_pipelined_request_after_a_bad_one_never_reaches_the_handler(
    servers: Servers, recorder: Recorder
) -> None:
    server = await servers.start(recorder, **LIMITS)
    client = await servers.client(server)
    await client.send(b"POST / HTTP/1.1\r\n" + HOST_FIELD + b"Content-Length: 3x\r\n\r\n" + get())
    assert (await client.response()).status == 400
    assert await client.is_closed()
    assert recorder.seen == []


async def test_bodyless_upgrade_is_served_as_a_plain_request(
    servers: Servers, recorder: Recorder
) -> None:
    server = await servers.start(recorder)
    client = await servers.client(server)
    upgrade = get(
        "/up", b"Connection: Upgrade\r\n", b"Upgrade: h2c\r\n", b"HTTP2-Settings: AAA\r\n"
    )
    await client.send(upgrade + get("/next"))
    assert [(await client.response()).status for _ in range(2)] == [200, 200]
    assert recorder.paths == ["/up", "/next"]


async def test_refusal_reaches_a_client_still_sending_its_body(
    servers: Servers, recorder: Recorder
) -> None:
    # The server half-closes and discards the rest instead of resetting the connection.
    server = await servers.start(recorder, **LIMITS)
    client = await servers.client(server)
    client.writer.write(get("/", b"Content-Length: 1000000\r\n") + b"x" * 1_000_000)
    response = await client.response()
    assert response.status == 413
    assert await client.is_closed()
    assert recorder.seen == []
