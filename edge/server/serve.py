"""Start and stop the data plane's HTTP/1.1 server.

:func:`start_server` listens with ``loop.create_server`` (uvloop's transports when uvloop
runs the loop) and makes one :class:`~edge.server.protocol.HttpProtocol` per connection.
:meth:`HttpServer.close` shuts down gracefully: it stops accepting, closes idle keep-alive
connections at once, lets responses in progress finish (each with ``Connection: close``) for
up to ``drain_s``, then aborts what is left and cancels its handlers.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl as ssl_module

from edge.server.connections import ConnectionRegistry, ConnectionStats
from edge.server.limits import ServerLimits
from edge.server.protocol import Handler, HttpProtocol

_CANCEL_WAIT_S = 1.0


class HttpServer:
    """A listening server; ``stats`` counts its connections."""

    __slots__ = ("_registry", "_server")

    def __init__(self, server: asyncio.Server, registry: ConnectionRegistry) -> None:
        self._server = server
        self._registry = registry

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        return tuple(self._server.sockets)

    @property
    def port(self) -> int:
        port: int = self.sockets[0].getsockname()[1]
        return port

    @property
    def stats(self) -> ConnectionStats:
        return self._registry.stats

    async def close(self, *, drain_s: float = 10.0) -> None:
        """Stop accepting; finish responses in progress for up to ``drain_s``; abort the rest."""
        self._server.close()
        registry = self._registry
        for connection in registry.rejected():
            connection.abort()
        for connection in registry.snapshot():
            connection.begin_drain()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(registry.wait_empty(), drain_s)
        tasks = []
        for connection in registry.snapshot():
            if connection.task is not None:
                tasks.append(connection.task)
            connection.abort()
        if tasks:
            await asyncio.wait(tasks, timeout=_CANCEL_WAIT_S)
        await self._server.wait_closed()


async def start_server(
    handler: Handler,
    *,
    host: str,
    port: int,
    limits: ServerLimits,
    ssl: ssl_module.SSLContext | None = None,
    reuse_port: bool = False,
    backlog: int = 1024,
) -> HttpServer:
    """Listen on ``host:port`` (0: any free port) and answer each request with ``handler``."""
    loop = asyncio.get_running_loop()
    registry = ConnectionRegistry(limits.max_connections)

    def make_protocol() -> HttpProtocol:
        return HttpProtocol(handler, limits, registry, loop)

    server = await loop.create_server(
        make_protocol,
        host,
        port,
        ssl=ssl,
        reuse_port=reuse_port,
        backlog=backlog,
    )
    return HttpServer(server, registry)
