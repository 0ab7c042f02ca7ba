"""The HTTP/1.1 server on loopback, and a raw-socket client that reads what it really sent.

Every test runs on uvloop (what the data plane runs on) and on asyncio's own loop. Every wait
is bounded by ``WAIT_S``: a hang fails the test instead of stalling the run.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
import uvloop

from edge.server import HttpServer, Prebuilt, Request, Response, ServerLimits, start_server

WAIT_S = 5.0
HOST_FIELD = b"Host: test\r\n"

Handler = Callable[[Request], Awaitable[Response | Prebuilt | None]]


def pytest_asyncio_loop_factories(config: Any, item: Any) -> Mapping[str, Any]:
    return {"uvloop": uvloop.new_event_loop, "asyncio": asyncio.new_event_loop}


@dataclass
class RawResponse:
    status: int
    fields: list[tuple[str, str]]
    body: bytes
    head: bytes = b""

    def get(self, name: str) -> str | None:
        values = self.get_all(name)
        return values[0] if values else None

    def get_all(self, name: str) -> list[str]:
        return [v for n, v in self.fields if n.lower() == name.lower()]


class RawClient:
    """A client that writes exact bytes and parses responses strictly (RFC 9112 §6.3)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, port: int, **kwargs: Any) -> RawClient:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port, **kwargs), WAIT_S
        )
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await asyncio.wait_for(self.writer.drain(), WAIT_S)

    async def response(self, *, head_request: bool = False) -> RawResponse:
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), WAIT_S)
        lines = head.decode("latin-1").split("\r\n")
        version, status, *_ = lines[0].split(" ", 2)
        assert version == "HTTP/1.1", lines[0]
        fields = []
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                fields.append((name, value.strip()))
        response = RawResponse(int(status), fields, b"", head)
        if head_request or response.status < 200 or response.status in (204, 304):
            return response
        response.body = await self._body(response)
        return response

    async def _body(self, response: RawResponse) -> bytes:
        if response.get("Transfer-Encoding") == "chunked":
            return await self._chunked()
        length = response.get("Content-Length")
        if length is not None:
            return await asyncio.wait_for(self.reader.readexactly(int(length)), WAIT_S)
        return await self.read_to_eof()

    async def _chunked(self) -> bytes:
        body = b""
        while True:
            size_line = await asyncio.wait_for(self.reader.readuntil(b"\r\n"), WAIT_S)
            size = int(size_line.split(b";")[0], 16)
            chunk = await asyncio.wait_for(self.reader.readexactly(size + 2), WAIT_S)
            assert chunk.endswith(b"\r\n")
            if size == 0:
                return body
            body += chunk[:-2]

    async def read_to_eof(self) -> bytes:
        return await asyncio.wait_for(self.reader.read(), WAIT_S)

    async def is_closed(self) -> bool:
        """Whether the server ends the connection (EOF or reset) with nothing more sent."""
        try:
            rest = await asyncio.wait_for(self.reader.read(), WAIT_S)
        except ConnectionResetError:
            return True
        assert rest == b"", rest
        return True

    def close(self) -> None:
        self.writer.close()


@dataclass
class Recorder:
    """A trivial handler: answers ``ok`` and remembers what it was asked."""

    seen: list[Request] = field(default_factory=list)

    async def __call__(self, request: Request) -> Response:
        self.seen.append(request)
        return Response(200, [("Content-Type", "text/plain")], b"ok")

    @property
    def paths(self) -> list[str]:
        return [r.raw_path for r in self.seen]


class Servers:
    """Starts servers for one test and closes them after it."""

    def __init__(self) -> None:
        self.started: list[HttpServer] = []
        self.clients: list[RawClient] = []

    async def start(self, handler: Handler, **limits: Any) -> HttpServer:
        server = await start_server(
            handler, host="127.0.0.1", port=0, limits=ServerLimits(**limits)
        )
        self.started.append(server)
        return server

    async def client(self, server: HttpServer, **kwargs: Any) -> RawClient:
        client = await RawClient.connect(server.port, **kwargs)
        self.clients.append(client)
        return client

    async def slow_client(self, server: HttpServer) -> RawClient:
        """A client with a small receive window (set before connecting, so that it stays
        small); its StreamReader stops reading from the socket at 128 KiB unread."""
        raw = socket.socket()
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        raw.setblocking(False)
        loop = asyncio.get_running_loop()
        await asyncio.wait_for(loop.sock_connect(raw, ("127.0.0.1", server.port)), WAIT_S)
        client = RawClient(*await asyncio.open_connection(sock=raw))
        self.clients.append(client)
        return client


@pytest.fixture
async def servers() -> AsyncIterator[Servers]:
    servers = Servers()
    yield servers
    for client in servers.clients:
        client.close()
    for server in servers.started:
        await server.close(drain_s=0.5)


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


def get(path: str = "/", *extra: bytes, version: bytes = b"HTTP/1.1") -> bytes:
    """A request head with Host and any extra field lines."""
    return (
        b"GET " + path.encode() + b" " + version + b"\r\n" + HOST_FIELD + b"".join(extra) + b"\r\n"
    )


async def wait_until(predicate: Callable[[], bool], what: str) -> None:
    """Poll ``predicate`` on the loop, for at most ``WAIT_S``."""
    for _ in range(int(WAIT_S / 0.01)):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")
