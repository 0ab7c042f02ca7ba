"""Connection management: keep-alive, pipelining, timeouts, the connection limit, shutdown.

RFC 9112 §9.3 (persistence, HTTP/1.0 keep-alive), §9.3.2 (pipelining: answers in order),
§9.5 (timeouts), §9.6 (tear-down). Timeouts are set short and waited for with a bound; no
assertion is about how long anything took.
"""

from __future__ import annotations

import asyncio
import contextvars

from edge.server import Request, Response
from edge.server.protocol import HttpProtocol
from tests.edge.server.conftest import WAIT_S, Recorder, Servers, get, wait_until


async def test_keep_alive_serves_several_requests(servers: Servers, recorder: Recorder) -> None:
    server = await servers.start(recorder)
    client = await servers.client(server)
    for path in ("/a", "/b"):
        await client.send(get(path))
        response = await client.response()
        assert response.status == 200
        assert response.get("Connection") is None
        assert response.get("Date") is not None
    assert recorder.paths == ["/a", "/b"]
    assert server.stats.accepted == 1


async def test_connection_close_is_honoured(servers: Servers, recorder: Recorder) -> None:
    server = await servers.start(recorder)
    client = await servers.client(server)
    await client.send(get("/", b"Connection: close\r\n"))
    response = await client.response()
    assert response.get("Connection") == "close"
    assert await client.is_closed()


async def test_http10_keep_alive(servers: Servers, recorder: Recorder) -> None:
    server = await servers.start(recorder)
    client = await servers.client(server)
    await client.send(get("/a", b"Connection: keep-alive\r\n", version=b"HTTP/1.0"))
    response = await client.response()
    assert response.get("Connection") == "keep-alive"
    await client.send(get("/b", version=b"HTTP/1.0"))
    response = await client.response()
    assert response.get("Connection") == "close"
    assert await client.is_closed()
    assert recorder.paths == ["/a", "/b"]


async def test_pipelined_requests_are_answered_in_order(servers: Servers) -> None:
    release = asyncio.Event()

    async def handler(request: Request) -> Response:
        if request.raw_path == "/slow":
            await asyncio.wait_for(release.wait(), WAIT_S)
        return Response(200, [], request.raw_path.encode())

    server = await servers.start(handler)
    client = await servers.client(server)
    await client.send(get("/slow") + get("/fast") + get("/last"))
    first = asyncio.ensure_future(client.response())
    await asyncio.sleep(0.05)  # the fast ones must wait for /slow anyway
    assert not first.done()
    release.set()
    bodies = [(await first).body] + [(await client.response()).body for _ in range(2)]
    assert bodies == [b"/slow", b"/fast", b"/last"]


async def test_reading_pauses_while_the_pipeline_is_full(servers: Servers) -> None:
    release = asyncio.Event()
    seen: list[str] = []

    async def handler(request: Request) -> Response:
        seen.append(request.raw_path)
        await asyncio.wait_for(release.wait(), WAIT_S)
        return Response(200, [], b"")

    server = await servers.start(handler, max_pipelined=2)
    client = await servers.client(server)
    await client.send(get("/0") + get("/1") + get("/2"))
    (connection,) = server._registry.snapshot()
    assert isinstance(connection, HttpProtocol)
    await wait_until(lambda: connection._paused_by != 0, "reading to pause")
    release.set()
    for _ in range(3):
        assert (await client.response()).status == 200
    assert seen == ["/0", "/1", "/2"]
    assert connection._paused_by == 0


async def test_idle_keep_alive_connection_is_closed(servers: Servers, recorder: Recorder) -> None:
    server = await servers.start(recorder, keepalive_timeout_s=0.1)
    client = await servers.client(server)
    await client.send(get())
    assert (await client.response()).status == 200
    assert await client.is_closed()
    await wait_until(lambda: server.stats.open == 0, "the connection to close")


async def test_silent_new_connection_is_closed(servers: Servers, recorder: Recorder) -> None:
    server = await servers.start(recorder, head_timeout_s=0.1)
    client = await servers.client(server)
    assert await client.is_closed()


async def test_slowloris_head_gets_408(servers: Servers, recorder: Recorder) -> None:
    server = await servers.start(recorder, head_timeout_s=0.2)
    client = await servers.client(server)
    await client.send(b"GET / HTTP/1.1\r\nHost: test\r\nX-Drip: ")
    response = await client.response()
    assert response.status == 408
    assert await client.is_closed()
    assert recorder.seen == []


async def test_stalled_body_gets_408(servers: Servers) -> None:
    async def handler(request: Request) -> Response:
        return Response(200, [], await request.read())

    server = await servers.start(handler, body_timeout_s=0.2)
    client = await servers.client(server)
    await client.send(get("/", b"Content-Length: 10\r\n") + b"half")
    response = await client.response()
    assert response.status == 408
    assert await client.is_closed()


async def test_client_half_close_still_gets_its_answer(
    servers: Servers, recorder: Recorder
) -> None:
    server = await servers.start(recorder)
    client = await servers.client(server)
    await client.send(get("/a") + get("/b"))
    client.writer.write_eof()
    assert [(await client.response()).status for _ in range(2)] == [200, 200]
    assert await client.is_closed()


async def test_connections_over_the_limit_get_503(servers: Servers, recorder: Recorder) -> None:
    server = await servers.start(recorder, max_connections=2)
    held = [await servers.client(server) for _ in range(2)]
    await wait_until(lambda: server.stats.open == 2, "two connections")
    extra = await servers.client(server)
    response = await extra.response()
    assert response.status == 503
    assert response.get("Retry-After") == "1"
    assert response.get("Connection") == "close"
    assert await extra.is_closed()
    assert server.stats.refused == 1
    for client in held:
        await client.send(get())
        assert (await client.response()).status == 200
    assert recorder.paths == ["/", "/"]


async def test_graceful_close_finishes_in_flight_and_closes_idle(servers: Servers) -> None:
    started = asyncio.Event()
    release = asyncio.Event()

    async def handler(request: Request) -> Response:
        if request.raw_path == "/slow":
            started.set()
            await asyncio.wait_for(release.wait(), WAIT_S)
        return Response(200, [], b"done")

    server = await servers.start(handler)
    idle = await servers.client(server)
    await idle.send(get("/quick"))
    assert (await idle.response()).status == 200
    busy = await servers.client(server)
    await busy.send(get("/slow"))
    await asyncio.wait_for(started.wait(), WAIT_S)

    closing = asyncio.ensure_future(server.close(drain_s=WAIT_S))
    assert await idle.is_closed()
    assert not closing.done()
    release.set()
    response = await busy.response()
    assert (response.status, response.body) == (200, b"done")
    assert response.get("Connection") == "close"
    assert await busy.is_closed()
    busy.close()  # the server half-closed and waits for the client to finish (lingering)
    await asyncio.wait_for(closing, WAIT_S)
    assert server.stats.open == 0


async def test_graceful_close_aborts_what_outlives_the_drain(servers: Servers) -> None:
    started = asyncio.Event()

    async def handler(request: Request) -> Response:
        started.set()
        await asyncio.sleep(WAIT_S * 2)
        return Response(200, [], b"never")

    server = await servers.start(handler)
    client = await servers.client(server)
    await client.send(get())
    await asyncio.wait_for(started.wait(), WAIT_S)
    await asyncio.wait_for(server.close(drain_s=0.1), WAIT_S)
    assert await client.is_closed()


async def test_thousands_of_pipelined_requests_in_one_read(servers: Servers) -> None:
    # Hits answer synchronously, one after the other, in a loop (not recursion).
    async def handler(request: Request) -> Response:
        return Response(200, [], request.raw_path.encode())

    server = await servers.start(handler, max_pipelined=4)
    client = await servers.client(server)
    count = 3000
    client.writer.write(b"".join(get(f"/{i}") for i in range(count)))
    bodies = [(await client.response()).body for _ in range(count)]
    assert bodies == [f"/{i}".encode() for i in range(count)]


async def test_context_variables_stay_with_their_request(servers: Servers) -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")
    seen: list[str] = []

    async def handler(request: Request) -> Response:
        seen.append(var.get())
        var.set(request.raw_path)
        if request.raw_path == "/wait":
            await asyncio.sleep(0)
            seen.append(var.get())
        return Response(200, [], b"")

    server = await servers.start(handler)
    client = await servers.client(server)
    await client.send(get("/wait") + get("/sync") + get("/after"))
    for _ in range(3):
        await client.response()
    assert seen == ["unset", "/wait", "unset", "unset"]
