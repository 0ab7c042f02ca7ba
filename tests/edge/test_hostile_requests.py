"""Requests shaped to smuggle or poison: what the edge answers and what the origin sees.

RFC 9112 §6 / RFC 9110 §9.3.1 (framing per hop; a GET with a body is refused), RFC 9112 §3.2.2
(Host), RFC 9110 §6.2 (the status line's version), RFC 9110 §12.5.5 (passed fields vary), and
the unkeyed fields of cdn_core.forwarding. The full hostile corpus, over a shield and two edges
run as processes, is in tests/adversarial/.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from tests.edge.conftest import EdgeFactory, EdgeUnderTest, Origin

GET = b"GET %s HTTP/1.1\r\nHost: www.cdn.test\r\n%s\r\n"


async def exchange(edge: EdgeUnderTest, payload: bytes) -> tuple[int, bytes, bool]:
    """Send ``payload``; the status, the first answer and whether the edge then closed."""
    address = edge.node.data_address
    assert address is not None
    reader, writer = await asyncio.open_connection(address.host, address.port)
    try:
        writer.write(payload)
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        length = 0
        for line in head.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if payload.startswith(b"HEAD "):
            length = 0  # the answer to a HEAD has no body, whatever its Content-Length
        body = await asyncio.wait_for(reader.readexactly(length), 10)
        try:
            rest = await asyncio.wait_for(reader.read(1), 2)
            closed = rest == b""
        except TimeoutError:
            closed = False
    finally:
        writer.close()
    return int(head.split(b" ", 2)[1]), head + body, closed


def echo(origin: Origin, path: str) -> None:
    async def answer(request: web.Request) -> web.Response:
        body = await request.read()
        return web.Response(
            text=f"{request.method} {request.path_qs} body={body!r}",
            headers={"Cache-Control": "max-age=60"},
        )

    origin.routes[path] = answer


async def test_a_get_with_a_body_is_refused_and_the_connection_closed(
    origin: Origin, edge: EdgeUnderTest
) -> None:
    echo(origin, "/a")
    smuggled = b"GET /SMUGGLED HTTP/1.0\r\nX: " + b"y" * 29 + b"\r\n\r\n"  # 62 bytes
    payload = GET % (b"/a", b"Content-Length: %d\r\n" % len(smuggled)) + smuggled
    status, data, closed = await exchange(edge, payload)
    assert (status, closed) == (400, True)
    assert b"must not have a body" in data
    assert origin.hits == {}


async def test_head_and_chunked_get_bodies_are_refused(origin: Origin, edge: EdgeUnderTest) -> None:
    for payload in (
        b"HEAD /a HTTP/1.1\r\nHost: www.cdn.test\r\nContent-Length: 3\r\n\r\nabc",
        b"GET /a HTTP/1.1\r\nHost: www.cdn.test\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n0\r\n\r\n",
    ):
        status, _, closed = await exchange(edge, payload)
        assert (status, closed) == (400, True)
    assert origin.hits == {}


async def test_an_empty_body_is_no_body_and_no_framing_goes_up(
    origin: Origin, edge: EdgeUnderTest
) -> None:
    echo(origin, "/zero")
    status, data, _ = await exchange(edge, GET % (b"/zero", b"Content-Length: 0\r\n"))
    assert status == 200
    assert data.endswith(b"GET /zero body=b''")
    [seen] = origin.seen
    assert "Content-Length" not in seen.headers
    assert "Transfer-Encoding" not in seen.headers


async def test_a_post_body_goes_up_with_its_own_framing(
    origin: Origin, edge: EdgeUnderTest
) -> None:
    """A body is read first (up to edge.passthrough.BUFFER_BYTES) and sent with its length,
    whether the client sent a length or chunks."""
    echo(origin, "/p")
    sized = b"POST /p HTTP/1.1\r\nHost: www.cdn.test\r\nContent-Length: 5\r\n\r\nhello"
    chunked = (
        b"POST /p HTTP/1.1\r\nHost: www.cdn.test\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"2\r\nhe\r\n3\r\nllo\r\n0\r\n\r\n"
    )
    for payload in (sized, chunked):
        status, data, _ = await exchange(edge, payload)
        assert status == 200
        assert data.endswith(b"POST /p body=b'hello'")
    for seen in origin.seen:
        assert seen.headers["Content-Length"] == "5"
        assert "Transfer-Encoding" not in seen.headers
        assert "Content-Type" not in seen.headers  # nothing the client did not send


async def test_a_broken_upload_never_reaches_the_origin(
    origin: Origin, edge: EdgeUnderTest
) -> None:
    echo(origin, "/p")
    broken = (
        b"POST /p HTTP/1.1\r\nHost: www.cdn.test\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nhello\r\n0\r\n\r\n"  # a chunk longer than its size
    )
    status, _, closed = await exchange(edge, broken)
    assert (status, closed) == (400, True)
    assert origin.hits == {}


async def test_the_origin_sees_the_configured_host_never_the_clients(
    origin: Origin, edge: EdgeUnderTest
) -> None:
    echo(origin, "/h")
    absolute = b"GET http://www.cdn.test/h HTTP/1.1\r\nHost: evil.example\r\n\r\n"
    status, _, _ = await exchange(edge, absolute)
    assert status == 200
    ported = b"GET /h?2 HTTP/1.1\r\nHost: WWW.cdn.test:8080\r\n\r\n"
    status, _, _ = await exchange(edge, ported)
    assert status == 200
    assert [r.headers.getall("Host") for r in origin.seen] == [["www.cdn.test"]] * 2


async def test_host_header_of_the_origin_is_sent_at_the_last_hop(
    origin: Origin, make_edge: EdgeFactory
) -> None:
    edge = await make_edge(origin={"host_header": "origin.internal:8443"})
    echo(origin, "/o")
    async with edge.get("/o") as response:
        assert response.status == 200
    [seen] = origin.seen
    assert seen.headers["Host"] == "origin.internal:8443"


async def test_unkeyed_fields_do_not_reach_the_origin(origin: Origin, edge: EdgeUnderTest) -> None:
    echo(origin, "/u")
    fields = {
        "X-Forwarded-Host": "evil.example",
        "X-Forwarded-Proto": "https",
        "X-Original-URL": "/admin",
        "X-Rewrite-URL": "/admin",
        "Forwarded": "host=evil.example",
        "X-Forwarded-For": "203.0.113.9",
        "X-Overlay-Route": "shield-1",
    }
    async with edge.get("/u", headers=fields) as response:
        assert response.status == 200
    [seen] = origin.seen
    for name in ("X-Forwarded-Host", "X-Original-URL", "X-Rewrite-URL", "Forwarded"):
        assert name not in seen.headers
    assert not [k for k in seen.headers if k.lower().startswith("x-overlay-")]
    assert seen.headers.getall("X-Forwarded-For") == ["127.0.0.1"]
    assert seen.headers.getall("X-Forwarded-Proto") == ["http"]


async def test_a_passed_field_selects_its_own_variant(
    origin: Origin, make_edge: EdgeFactory
) -> None:
    """An operator may pass X-Forwarded-Host through; then it is in Vary, so one client's
    value never reaches another client from the cache."""
    edge = await make_edge(origin={"pass_headers": ["X-Forwarded-Host"]})

    @origin.route("/r")
    async def reflect(request: web.Request) -> web.Response:
        return web.Response(
            text=f"link to {request.headers.get('X-Forwarded-Host', 'none')}",
            headers={"Cache-Control": "max-age=60", "Vary": "Accept-Encoding"},
        )

    async with edge.get("/r", headers={"X-Forwarded-Host": "evil.example"}) as response:
        assert await response.text() == "link to evil.example"
        assert response.headers["Vary"] == "Accept-Encoding, x-forwarded-host"
    for _ in range(2):
        async with edge.get("/r") as response:
            assert await response.text() == "link to none"
    assert origin.hits["/r"] == 2


async def test_a_field_that_is_not_utf8_is_refused_and_utf8_goes_up_byte_exact(
    origin: Origin, edge: EdgeUnderTest
) -> None:
    echo(origin, "/v")
    status, data, closed = await exchange(edge, GET % (b"/v", b"X-Name: caf\xe9\r\n"))
    assert (status, closed) == (400, True)
    assert b"the value of the 'X-Name' field is not UTF-8" in data
    assert origin.hits == {}
    status, _, _ = await exchange(edge, GET % (b"/v", b"X-Name: caf\xc3\xa9\r\n"))
    assert status == 200
    [seen] = origin.seen
    assert (b"x-name", "café".encode()) in list(seen.raw_headers)


async def test_every_status_line_is_http11(origin: Origin, edge: EdgeUnderTest) -> None:
    echo(origin, "/s")
    status, data, _ = await exchange(edge, b"GET /s HTTP/1.0\r\nHost: www.cdn.test\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 200 OK\r\n")
    status, data, _ = await exchange(edge, b"GET /s HTTP/2.0\r\nHost: www.cdn.test\r\n\r\n")
    assert status == 505
    assert data.startswith(b"HTTP/1.1 505 ")
    status, data, _ = await exchange(edge, b"GET /s HTTP/1.1\r\nHost: www.cdn.test\r\nX\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 400 ")
    assert origin.hits == {"/s": 1}


async def test_transfer_codings_other_than_chunked_and_on_http10_are_refused(
    origin: Origin, edge: EdgeUnderTest
) -> None:
    """RFC 9112 §6.1: an unknown coding is 501; Transfer-Encoding in HTTP/1.0 is faulty
    framing (400). Both close the connection: the body's end is unknown."""
    body = b"\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
    for version, coding, expected in (
        (b"1.1", b"gzip, chunked", 501),
        (b"1.0", b"chunked", 400),
    ):
        payload = (
            b"POST /p HTTP/" + version + b"\r\nHost: www.cdn.test\r\n"
            b"Transfer-Encoding: " + coding + body
        )
        status, _, closed = await exchange(edge, payload)
        assert (status, closed) == (expected, True)
    assert origin.hits == {}


async def test_unsupported_versions_get_505(origin: Origin, edge: EdgeUnderTest) -> None:
    for version in (b"HTTP/3.0", b"HTTP/1.2", b"HTTP/2.0"):
        status, data, _ = await exchange(
            edge, b"GET /s " + version + b"\r\nHost: www.cdn.test\r\n\r\n"
        )
        assert status == 505, version
        assert data.startswith(b"HTTP/1.1 505 ")
    assert origin.hits == {}


async def test_an_expectation_that_is_not_ascii_gets_417(
    origin: Origin, edge: EdgeUnderTest
) -> None:
    status, data, _ = await exchange(edge, GET % (b"/e", b"Expect: \xff\xfe\r\n"))
    assert status == 417
    assert b"Traceback" not in data and b"500" not in data
    assert origin.hits == {}


async def test_origin_cookies_are_never_sent_on_another_users_request(
    origin: Origin, make_edge: EdgeFactory
) -> None:
    """The upstream client keeps no cookie jar: a Set-Cookie meant for one user must not
    come back to the origin with the next user's request."""
    edge = await make_edge(origin={"url": f"http://localhost:{origin.port}"})

    @origin.route("/login")
    async def login(request: web.Request) -> web.Response:
        return web.Response(text="in", headers={"Set-Cookie": "session=alice; Path=/"})

    echo(origin, "/next")
    async with edge.get("/login") as response:
        assert response.status == 200
    async with edge.get("/next") as response:
        assert response.status == 200
    assert "Cookie" not in origin.seen[-1].headers
