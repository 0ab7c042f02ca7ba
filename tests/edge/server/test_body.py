"""Request bodies: reading, limits while streaming, flow control, 100-continue, trailers.

RFC 9112 §6.3 (length), §7.1 (chunked, trailers: discarded here), RFC 9110 §10.1.1
(Expect: 100-continue is answered only when the handler wants the body).
"""

from __future__ import annotations

import asyncio

from edge.server import BodyError, Request, Response
from edge.server.protocol import HttpProtocol
from tests.edge.server.conftest import WAIT_S, Recorder, Servers, get, wait_until


async def echo(request: Request) -> Response:
    return Response(200, [("X-Length", str(request.content_length))], await request.read())


async def test_content_length_body(servers: Servers) -> None:
    client = await servers.client(await servers.start(echo))
    await client.send(get("/", b"Content-Length: 5\r\n") + b"hello" + get())
    first = await client.response()
    assert (first.body, first.get("X-Length")) == (b"hello", "5")
    assert (await client.response()).body == b""


async def test_chunked_body_with_trailers_discarded(servers: Servers) -> None:
    seen: list[Request] = []

    async def handler(request: Request) -> Response:
        seen.append(request)
        return Response(200, [], b"".join([c async for c in request.content.iter_any()]))

    client = await servers.client(await servers.start(handler))
    body = b"3;ext=1\r\nabc\r\n4\r\ndefg\r\n0\r\nX-Trailer: t\r\n\r\n"
    await client.send(get("/", b"Transfer-Encoding: chunked\r\n") + body + get("/next"))
    assert (await client.response()).body == b"abcdefg"
    assert (await client.response()).status == 200
    assert "X-Trailer" not in seen[0].headers
    assert seen[0].content_length is None and seen[0].body_exists


async def test_chunked_body_over_the_limit_is_413(servers: Servers) -> None:
    server = await servers.start(echo, max_body_bytes=10)
    client = await servers.client(server)
    await client.send(get("/", b"Transfer-Encoding: chunked\r\n") + b"8\r\n12345678\r\n")
    await client.send(b"8\r\n12345678\r\n0\r\n\r\n")
    response = await client.response()
    assert response.status == 413
    assert response.get("Connection") == "close"
    assert await client.is_closed()


async def test_malformed_chunk_is_400_for_the_reading_handler(servers: Servers) -> None:
    reading = asyncio.Event()
    errors: list[BodyError] = []

    async def handler(request: Request) -> Response:
        reading.set()
        try:
            return await echo(request)
        except BodyError as exc:
            errors.append(exc)
            raise

    client = await servers.client(await servers.start(handler))
    await client.send(get("/", b"Transfer-Encoding: chunked\r\n") + b"3\r\nabc\r\n")
    await asyncio.wait_for(reading.wait(), WAIT_S)
    await client.send(b"3x\r\nabc\r\n0\r\n\r\n")
    response = await client.response()
    assert response.status == 400
    assert await client.is_closed()
    assert [e.refusal.status for e in errors] == [400]


async def test_malformed_chunk_received_with_the_head_never_reaches_the_handler(
    servers: Servers, recorder: Recorder
) -> None:
    client = await servers.client(await servers.start(recorder))
    await client.send(get("/", b"Transfer-Encoding: chunked\r\n") + b"3x\r\nabc\r\n0\r\n\r\n")
    assert (await client.response()).status == 400
    assert await client.is_closed()
    assert recorder.seen == []


async def test_client_leaving_mid_body_fails_the_read(servers: Servers) -> None:
    failed: asyncio.Future[BaseException] = asyncio.get_running_loop().create_future()

    async def handler(request: Request) -> Response:
        try:
            await request.read()
        except BodyError as exc:
            failed.set_result(exc)
            raise
        return Response(200, [], b"")

    client = await servers.client(await servers.start(handler))
    await client.send(get("/", b"Content-Length: 100\r\n") + b"only some")
    client.writer.transport.abort()
    assert isinstance(await asyncio.wait_for(failed, WAIT_S), BodyError)


async def test_unread_but_received_body_keeps_the_connection(servers: Servers) -> None:
    async def handler(request: Request) -> Response:
        await wait_until(request.content.is_eof, "the body to arrive")
        return Response(200, [], b"ignored the body")

    client = await servers.client(await servers.start(handler))
    await client.send(get("/", b"Content-Length: 3\r\n") + b"abc" + get("/next"))
    assert (await client.response()).get("Connection") is None
    assert (await client.response()).status == 200


async def test_unread_incomplete_body_closes_the_connection(servers: Servers) -> None:
    async def handler(request: Request) -> Response:
        return Response(200, [], b"did not wait")

    client = await servers.client(await servers.start(handler))
    await client.send(get("/", b"Content-Length: 1000\r\n") + b"abc")
    response = await client.response()
    assert response.get("Connection") == "close"
    assert await client.is_closed()


async def test_body_flow_control_pauses_reading(servers: Servers) -> None:
    may_read = asyncio.Event()
    size = 1024 * 1024

    async def handler(request: Request) -> Response:
        await asyncio.wait_for(may_read.wait(), WAIT_S)
        return Response(200, [], str(len(await request.read())).encode())

    server = await servers.start(handler, body_buffer_bytes=64 * 1024)
    client = await servers.client(server)
    client.writer.write(get("/", b"Content-Length: %d\r\n" % size) + b"x" * size)
    (connection,) = server._registry.snapshot()
    assert isinstance(connection, HttpProtocol)
    await wait_until(lambda: connection._paused_by != 0, "reading to pause")
    request = connection._active
    assert request is not None
    assert request.content.buffered_bytes < size
    may_read.set()
    response = await client.response()
    assert response.body == str(size).encode()
    assert connection._paused_by == 0


class TestExpectContinue:
    async def test_100_is_sent_when_the_handler_reads(self, servers: Servers) -> None:
        client = await servers.client(await servers.start(echo))
        await client.send(get("/", b"Content-Length: 5\r\n", b"Expect: 100-continue\r\n"))
        interim = await client.response()
        assert interim.status == 100
        assert interim.head == b"HTTP/1.1 100 Continue\r\n\r\n"
        await client.send(b"hello")
        assert (await client.response()).body == b"hello"

    async def test_no_100_when_the_handler_answers_without_reading(self, servers: Servers) -> None:
        async def handler(request: Request) -> Response:
            return Response(403, [], b"no upload for you")

        client = await servers.client(await servers.start(handler))
        await client.send(get("/", b"Content-Length: 5\r\n", b"Expect: 100-continue\r\n"))
        response = await client.response()
        assert response.status == 403
        assert response.get("Connection") == "close"
        assert await client.is_closed()

    async def test_no_100_when_the_body_already_came(self, servers: Servers) -> None:
        async def handler(request: Request) -> Response:
            await wait_until(request.content.is_eof, "the body to arrive")
            return await echo(request)

        client = await servers.client(await servers.start(handler))
        fields = (b"Content-Length: 5\r\n", b"Expect: 100-continue\r\n")
        await client.send(get("/", *fields) + b"hello")
        response = await client.response()
        assert (response.status, response.body) == (200, b"hello")

    async def test_http10_expectation_is_ignored(self, servers: Servers) -> None:
        client = await servers.client(await servers.start(echo))
        fields = (b"Content-Length: 5\r\n", b"Expect: 100-continue\r\n")
        await client.send(get("/", *fields, version=b"HTTP/1.0"))
        await client.send(b"hello")
        response = await client.response()
        assert (response.status, response.body) == (200, b"hello")


async def test_an_unread_body_over_the_buffer_does_not_stall_the_connection(
    servers: Servers,
) -> None:
    # One read brings the whole body, over the buffer: reading pauses until it is released.
    async def handler(request: Request) -> Response:
        return Response(200, [], b"did not read")

    server = await servers.start(handler, body_buffer_bytes=4096)
    client = await servers.client(server)
    await client.send(get("/", b"Content-Length: 8000\r\n") + b"x" * 8000)
    first = await client.response()
    if first.get("Connection") == "close":  # the body came in several reads: not all in
        assert await client.is_closed()
        return
    await client.send(get("/next"))
    assert (await client.response()).status == 200
