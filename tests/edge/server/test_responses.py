"""What the server writes: framing of responses, Prebuilt, streaming, errors, flow control.

RFC 9110 §6.4.1 and §9.3.2 (HEAD, 204, 304: no body), §6.6.1 (Date), §15.2 (1xx, none to
HTTP/1.0), RFC 9112 §6.3 (Content-Length, chunked, close-delimited), §7.1 (chunked coding).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Any

import pytest

from edge.server import Prebuilt, Request, Response, date_field
from edge.server.protocol import HttpProtocol
from tests.edge.server.conftest import WAIT_S, Servers, get, wait_until


class TestResponse:
    async def test_fields_in_order_then_length_and_date(self, servers: Servers) -> None:
        async def handler(request: Request) -> Response:
            return Response(201, [("X-B", "2"), ("x-a", "1")], b"created")

        client = await servers.client(await servers.start(handler))
        await client.send(get())
        response = await client.response()
        assert response.status == 201
        assert response.head.startswith(b"HTTP/1.1 201 Created\r\nX-B: 2\r\nx-a: 1\r\n")
        assert response.get("Content-Length") == "7"
        assert response.get("Date") is not None
        assert response.body == b"created"

    async def test_a_date_given_is_kept(self, servers: Servers) -> None:
        async def handler(request: Request) -> Response:
            return Response(200, [("Date", "Thu, 01 Jan 2026 00:00:00 GMT")], b"")

        client = await servers.client(await servers.start(handler))
        await client.send(get())
        response = await client.response()
        assert response.get_all("Date") == ["Thu, 01 Jan 2026 00:00:00 GMT"]

    async def test_head_keeps_the_content_length_given_and_sends_no_body(
        self, servers: Servers
    ) -> None:
        async def handler(request: Request) -> Response:
            if request.method == "HEAD":
                return Response(200, [("Content-Length", "1234")])
            return Response(200, [], b"the next one")

        client = await servers.client(await servers.start(handler))
        await client.send(b"HEAD / HTTP/1.1\r\nHost: t\r\n\r\n" + get("/next"))
        head = await client.response(head_request=True)
        assert head.get_all("Content-Length") == ["1234"]
        following = await client.response()  # would be garbage had a body been sent
        assert following.body == b"the next one"

    async def test_head_of_a_body_sends_its_length_only(self, servers: Servers) -> None:
        async def handler(request: Request) -> Response:
            return Response(200, [], b"twelve bytes")

        client = await servers.client(await servers.start(handler))
        await client.send(b"HEAD / HTTP/1.1\r\nHost: t\r\n\r\n" + get("/next"))
        assert (await client.response(head_request=True)).get("Content-Length") == "12"
        assert (await client.response()).body == b"twelve bytes"

    @pytest.mark.parametrize("status", [204, 304])
    async def test_no_framing_and_no_body(self, servers: Servers, status: int) -> None:
        async def handler(request: Request) -> Response:
            return Response(status, [("ETag", '"x"')])

        client = await servers.client(await servers.start(handler))
        await client.send(get() + get("/next"))
        response = await client.response()
        assert response.status == status
        assert response.get("Content-Length") is None
        assert response.get("Transfer-Encoding") is None
        assert (await client.response()).status == status

    async def test_close_asked_by_the_handler(self, servers: Servers) -> None:
        async def handler(request: Request) -> Response:
            return Response(200, [], b"bye", close=True)

        client = await servers.client(await servers.start(handler))
        await client.send(get())
        assert (await client.response()).get("Connection") == "close"
        assert await client.is_closed()

    @pytest.mark.parametrize(
        "fields",
        [
            [("X-Evil", "a\r\nSet-Cookie: owned=1")],
            [("X-Evil\r\nSet-Cookie", "owned=1")],
            [("Transfer-Encoding", "chunked")],
            [("Connection", "keep-alive")],
            [("Content-Length", "99")],
        ],
    )
    async def test_fields_that_would_corrupt_the_framing_are_a_500(
        self, servers: Servers, fields: list[tuple[str, str]], caplog: pytest.LogCaptureFixture
    ) -> None:
        async def handler(request: Request) -> Response:
            return Response(200, fields, b"body")

        client = await servers.client(await servers.start(handler))
        with caplog.at_level(logging.ERROR, logger="edge.server.protocol"):
            await client.send(get())
            response = await client.response()
        assert response.status == 500
        assert response.get("Set-Cookie") is None


class TestHandlerErrors:
    async def test_exception_is_a_500_and_the_log_has_no_field_values(
        self, servers: Servers, caplog: pytest.LogCaptureFixture
    ) -> None:
        async def handler(request: Request) -> Response:
            assert request.headers["Authorization"]
            raise RuntimeError("the handler broke")

        client = await servers.client(await servers.start(handler))
        with caplog.at_level(logging.DEBUG):
            await client.send(get("/p?token=q1w2", b"Authorization: Bearer s3cr3t-value\r\n"))
            response = await client.response()
        assert response.status == 500
        assert response.get("Cache-Control") == "no-store"
        assert "the handler failed" in caplog.text
        assert "RuntimeError: the handler broke" in caplog.text
        assert "s3cr3t" not in caplog.text
        assert "q1w2" not in caplog.text

    async def test_connection_survives_a_500(self, servers: Servers) -> None:
        async def handler(request: Request) -> Response:
            if request.raw_path == "/boom":
                raise ValueError("boom")
            return Response(200, [], b"fine")

        client = await servers.client(await servers.start(handler))
        await client.send(get("/boom") + get("/ok"))
        assert (await client.response()).status == 500
        assert (await client.response()).body == b"fine"

    async def test_exception_after_the_head_was_sent_cuts_the_connection(
        self, servers: Servers, caplog: pytest.LogCaptureFixture
    ) -> None:
        async def handler(request: Request) -> None:
            await request.writer.start(200, [], length=100)
            await request.writer.write(b"x" * 10)
            raise RuntimeError("upstream died")

        client = await servers.client(await servers.start(handler))
        with caplog.at_level(logging.ERROR):
            await client.send(get())
            with pytest.raises(asyncio.IncompleteReadError):
                await client.response()

    async def test_none_without_an_answer_is_a_500(
        self, servers: Servers, caplog: pytest.LogCaptureFixture
    ) -> None:
        async def handler(request: Request) -> None:
            return None

        client = await servers.client(await servers.start(handler))
        with caplog.at_level(logging.ERROR):
            await client.send(get())
            assert (await client.response()).status == 500


class TestPrebuilt:
    HEAD = b'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nETag: "e"\r\n'

    async def test_written_with_one_writelines_and_no_copy(self, servers: Servers) -> None:
        body = memoryview(b"b" * 1024)
        tail: list[bytes | memoryview] = [
            b"Age: 3\r\nContent-Length: 1024\r\n",
            date_field(),
            b"\r\n",
            body,
        ]
        counting: list[CountingTransport] = []

        async def handler(request: Request) -> Response | Prebuilt:
            if request.raw_path == "/install":
                protocol = request.transport.get_protocol()
                assert isinstance(protocol, HttpProtocol)
                counting.append(CountingTransport(protocol._transport))
                protocol._transport = counting[0]  # type: ignore[assignment]
                return Response(204)
            return Prebuilt(self.HEAD, tail)

        client = await servers.client(await servers.start(handler))
        await client.send(get("/install"))
        assert (await client.response()).status == 204
        await client.send(get("/hit"))
        response = await client.response()
        assert response.body == bytes(body)
        assert response.get("Age") == "3"
        (call,) = counting[0].calls
        assert call[0] == "writelines"
        assert call[1] == [b"".join([self.HEAD, *tail[:-1]]), body]
        assert call[1][-1] is body

    async def test_connection_field_goes_between_head_and_tail(self, servers: Servers) -> None:
        async def handler(request: Request) -> Prebuilt:
            return Prebuilt(self.HEAD, [b"Content-Length: 2\r\n", b"\r\n", b"hi"])

        client = await servers.client(await servers.start(handler))
        await client.send(get("/", b"Connection: close\r\n"))
        response = await client.response()
        assert response.head == self.HEAD + b"Connection: close\r\nContent-Length: 2\r\n\r\n"
        assert response.body == b"hi"
        assert await client.is_closed()

    async def test_http10_keep_alive_gets_its_field(self, servers: Servers) -> None:
        async def handler(request: Request) -> Prebuilt:
            return Prebuilt(self.HEAD, [b"Content-Length: 2\r\n", b"\r\n", b"hi"])

        client = await servers.client(await servers.start(handler))
        await client.send(get("/", b"Connection: keep-alive\r\n", version=b"HTTP/1.0"))
        response = await client.response()
        assert response.get("Connection") == "keep-alive"


class CountingTransport:
    """Wraps the real transport and records each write call."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls: list[tuple[str, Any]] = []

    def writelines(self, parts: Any) -> None:
        self.calls.append(("writelines", list(parts)))
        self.inner.writelines(parts)

    def write(self, data: Any) -> None:
        self.calls.append(("write", data))
        self.inner.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class TestStreaming:
    async def test_unknown_length_is_chunked(self, servers: Servers) -> None:
        async def handler(request: Request) -> None:
            await request.writer.start(200, [("Content-Type", "text/plain")], length=None)
            for part in (b"one ", b"", b"two"):
                await request.writer.write(part)
            await request.writer.finish()

        client = await servers.client(await servers.start(handler))
        await client.send(get() + get())
        for _ in range(2):
            response = await client.response()
            assert response.get("Transfer-Encoding") == "chunked"
            assert response.body == b"one two"

    async def test_known_length(self, servers: Servers) -> None:
        async def handler(request: Request) -> None:
            await request.writer.start(200, [], length=6)
            await request.writer.write(b"abc")
            await request.writer.write(memoryview(b"def"))
            await request.writer.finish()

        client = await servers.client(await servers.start(handler))
        await client.send(get())
        response = await client.response()
        assert (response.get("Content-Length"), response.body) == ("6", b"abcdef")

    async def test_http10_unknown_length_is_close_delimited(self, servers: Servers) -> None:
        async def handler(request: Request) -> None:
            await request.writer.start(200, [], length=None)
            await request.writer.write(b"until the end")
            await request.writer.finish()

        client = await servers.client(await servers.start(handler))
        await client.send(get("/", b"Connection: keep-alive\r\n", version=b"HTTP/1.0"))
        response = await client.response()
        assert response.get("Transfer-Encoding") is None
        assert response.get("Connection") == "close"
        assert response.body == b"until the end"

    async def test_head_gets_the_head_only(self, servers: Servers) -> None:
        async def handler(request: Request) -> None:
            await request.writer.start(200, [], length=5)
            await request.writer.write(b"hello")
            await request.writer.finish()

        client = await servers.client(await servers.start(handler))
        await client.send(b"HEAD / HTTP/1.1\r\nHost: t\r\n\r\n" + get())
        assert (await client.response(head_request=True)).get("Content-Length") == "5"
        assert (await client.response()).body == b"hello"

    async def test_early_hints_before_the_final_response(self, servers: Servers) -> None:
        async def handler(request: Request) -> Response:
            await request.writer.write_interim(103, [("Link", "</s.css>; rel=preload")])
            return Response(200, [], b"page")

        client = await servers.client(await servers.start(handler))
        await client.send(get())
        hints = await client.response()
        assert (hints.status, hints.get("Link")) == (103, "</s.css>; rel=preload")
        assert (await client.response()).body == b"page"
        await client.send(get(version=b"HTTP/1.0"))
        assert (await client.response()).status == 200  # no 1xx to an HTTP/1.0 client

    async def test_abort_leaves_the_body_visibly_incomplete(self, servers: Servers) -> None:
        async def handler(request: Request) -> None:
            await request.writer.start(200, [], length=None)
            await request.writer.write(b"partial")
            request.writer.abort()

        client = await servers.client(await servers.start(handler))
        await client.send(get())
        with pytest.raises((asyncio.IncompleteReadError, ConnectionResetError)):
            await client.response()

    async def test_short_finish_cuts_the_connection(
        self, servers: Servers, caplog: pytest.LogCaptureFixture
    ) -> None:
        async def handler(request: Request) -> None:
            await request.writer.start(200, [], length=10)
            await request.writer.write(b"short")
            await request.writer.finish()

        client = await servers.client(await servers.start(handler))
        with caplog.at_level(logging.ERROR):
            await client.send(get())
            with pytest.raises((asyncio.IncompleteReadError, ConnectionResetError)):
                await client.response()

    async def test_write_after_the_client_left_raises(self, servers: Servers) -> None:
        outcome: asyncio.Future[BaseException | None] = asyncio.get_running_loop().create_future()
        sent = asyncio.Event()

        async def handler(request: Request) -> None:
            await request.writer.start(200, [], length=None)
            sent.set()
            try:
                for _ in range(10_000):
                    await request.writer.write(b"x" * 65536)
                    await asyncio.sleep(0)
            except ConnectionError as exc:
                outcome.set_result(exc)
                raise
            outcome.set_result(None)

        client = await servers.client(await servers.start(handler))
        await client.send(get())
        await asyncio.wait_for(sent.wait(), WAIT_S)
        client.writer.transport.abort()
        assert isinstance(await asyncio.wait_for(outcome, WAIT_S), ConnectionError)


async def test_slow_reader_pauses_the_writer(servers: Servers) -> None:
    chunk = b"c" * 65536
    total_chunks = 128  # 8 MiB: more than the kernel buffers hold
    buffered: list[int] = []
    in_write = asyncio.Event()
    done = asyncio.Event()

    async def handler(request: Request) -> None:
        sock = request.transport.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16384)
        writer = request.writer
        await writer.start(200, [], length=len(chunk) * total_chunks)
        for _ in range(total_chunks):
            in_write.set()
            await writer.write(chunk)
            in_write.clear()
            buffered.append(request.transport.get_write_buffer_size())
        await writer.finish()
        done.set()

    server = await servers.start(handler, write_buffer_high_bytes=65536)
    client = await servers.slow_client(server)
    await client.send(get())
    (connection,) = server._registry.snapshot()
    assert isinstance(connection, HttpProtocol)
    await wait_until(lambda: connection.writing_paused and in_write.is_set(), "the writer to wait")
    await asyncio.sleep(0.05)
    assert in_write.is_set(), "write() returned while the client read nothing"
    assert len(buffered) < total_chunks
    response = await client.response()
    assert len(response.body) == len(chunk) * total_chunks
    assert done.is_set()
    assert max(buffered) <= 65536 + len(chunk)


async def test_head_answered_with_prebuilt_is_a_500(
    servers: Servers, caplog: pytest.LogCaptureFixture
) -> None:
    async def handler(request: Request) -> Prebuilt:
        return Prebuilt(b"HTTP/1.1 200 OK\r\n", [b"Content-Length: 2\r\n\r\n", b"hi"])

    client = await servers.client(await servers.start(handler))
    with caplog.at_level(logging.ERROR):
        await client.send(b"HEAD / HTTP/1.1\r\nHost: t\r\n\r\n")
        assert (await client.response(head_request=True)).status == 500


async def test_pipelined_answers_wait_for_a_client_that_does_not_read(servers: Servers) -> None:
    body = b"b" * 256 * 1024

    async def handler(request: Request) -> Response:
        sock = request.transport.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16384)
        return Response(200, [], body)

    server = await servers.start(handler, write_buffer_high_bytes=65536)
    client = await servers.slow_client(server)
    await client.send(b"".join(get(f"/{i}") for i in range(12)))
    (connection,) = server._registry.snapshot()
    assert isinstance(connection, HttpProtocol)
    await wait_until(lambda: connection._write_blocked, "the answers to wait")
    for _ in range(12):
        assert (await client.response()).body == body


async def test_a_client_that_stops_reading_is_cut_off(servers: Servers) -> None:
    outcome: asyncio.Future[BaseException | None] = asyncio.get_running_loop().create_future()

    async def handler(request: Request) -> None:
        sock = request.transport.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16384)
        await request.writer.start(200, [], length=None)
        try:
            for _ in range(10_000):
                await request.writer.write(b"x" * 65536)
        except ConnectionError as exc:
            outcome.set_result(exc)
            raise
        outcome.set_result(None)

    server = await servers.start(handler, write_timeout_s=0.2)
    client = await servers.slow_client(server)
    await client.send(get())  # and never read
    assert isinstance(await asyncio.wait_for(outcome, WAIT_S), ConnectionError)
    await wait_until(lambda: server.stats.open == 0, "the connection to be cut")


class TestHandlerTask:
    async def test_a_handler_runs_in_a_task_of_its_own(self, servers: Servers) -> None:
        """asyncio.timeout() (which aiohttp's client and the coalescer use) needs the handler
        to run inside a task, from its very first step."""
        tasks: list[asyncio.Task[Any] | None] = []

        async def handler(request: Request) -> Response:
            tasks.append(asyncio.current_task())
            async with asyncio.timeout(WAIT_S):
                await asyncio.sleep(0)
            return Response(200, body=b"in a task")

        client = await servers.client(await servers.start(handler))
        for _ in range(2):
            await client.send(get())
            response = await client.response()
            assert (response.status, response.body) == (200, b"in a task")
        first, second = tasks
        assert first is not None and second is not None and first is not second
