"""Edge adapter fixtures: a programmable origin and an in-process edge, both on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from cdn_core.config import Config, load_config
from cdn_core.httpdate import format_http_date
from cdn_core.testing import FakeClock
from edge.app import Node, build_node
from overlay.direct import direct_upstream
from tests.conftest import free_port

HOST = "www.cdn.test"
NODE = "edge-1"

Route = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Origin:
    """A small origin server: ``routes[path]`` answers, ``hits[path]`` counts, ``seen`` logs."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.routes: dict[str, Route] = {}
        self.hits: dict[str, int] = {}
        self.seen: list[web.Request] = []
        self.port = free_port()
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def route(self, path: str) -> Callable[[Route], Route]:
        def register(fn: Route) -> Route:
            self.routes[path] = fn
            return fn

        return register

    def static(self, path: str, body: bytes, **headers: str) -> None:
        async def answer(request: web.Request) -> web.StreamResponse:
            return web.Response(body=body, headers=_fields(headers))

        self.routes[path] = answer

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.hits[request.path] = self.hits.get(request.path, 0) + 1
        self.seen.append(request)
        route = self.routes.get(request.path)
        if route is None:
            return web.Response(status=404, text="origin: no such path\n")
        return await route(request)

    async def _date(self, request: web.Request, response: web.StreamResponse) -> None:
        # The origin's Date follows the test's clock, as a real origin's follows real time.
        response.headers["Date"] = format_http_date(self.clock())

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{path:.*}", self._handle)
        app.on_response_prepare.append(self._date)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


def _fields(headers: dict[str, str]) -> dict[str, str]:
    return {name.replace("_", "-"): value for name, value in headers.items()}


def make_config(
    origin_url: str,
    *,
    cache: dict[str, Any] | None = None,
    proxy: dict[str, Any] | None = None,
    listen_port: int | None = None,
    origin: dict[str, Any] | None = None,
) -> Config:
    data: dict[str, Any] = {
        "cluster": "edgetest",
        "control_plane": "memory",
        "secret_file": "cluster.key",
        "dns": {"zone": "cdn.test", "listen": f"127.0.0.1:{free_port()}"},
        "origins": [
            {
                "name": "site",
                "hostnames": [HOST, "alt.cdn.test"],
                "url": origin_url,
                **(origin or {}),
            }
        ],
        "nodes": [
            {
                "name": NODE,
                "role": "edge",
                "region": "eu",
                "listen": f"127.0.0.1:{listen_port or free_port()}",
                "admin": f"127.0.0.1:{free_port()}",
            }
        ],
        "cache": {"memory_bytes": "64MiB", "max_object_bytes": "1MiB", **(cache or {})},
        "proxy": {"max_header_bytes": "8KiB", "max_request_body_bytes": "64KiB", **(proxy or {})},
    }
    return load_config(data)


class EdgeUnderTest:
    """An in-process edge plus a client session that talks to it with ``Host: www.cdn.test``."""

    def __init__(self, node: Node, clock: FakeClock, session: aiohttp.ClientSession) -> None:
        self.node = node
        self.clock = clock
        self.session = session

    @property
    def url(self) -> str:
        return f"http://{self.node.data_address}"

    @property
    def admin_url(self) -> str:
        return f"http://{self.node.admin_address}"

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.request("GET", path, **kwargs)

    def request(
        self, method: str, path: str, *, headers: dict[str, str] | None = None, **kw: Any
    ) -> Any:
        fields = {"Host": HOST, **(headers or {})}
        return self.session.request(method, self.url + path, headers=fields, **kw)

    def counter(self, name: str, **labels: str) -> float:
        value = self.node.metrics.registry.get_sample_value(name, labels)
        return value or 0.0


async def wait_until(predicate: Callable[[], bool], *, timeout_s: float = 10.0) -> None:
    """Poll ``predicate`` (bounded in time) on the event loop."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(now=float(int(time.time())))


@pytest.fixture
async def origin(clock: FakeClock) -> AsyncIterator[Origin]:
    server = Origin(clock)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@contextlib.asynccontextmanager
async def engine(config: Config, **kwargs: Any) -> AsyncIterator[Node]:
    """The engine of ``NODE`` alone (no overlay, no control plane), straight to the origins;
    built, not started (``kwargs`` go to :func:`build_node`). Its upstreams close on exit."""
    upstreams = {o.name: direct_upstream(o, config.proxy) for o in config.origins}
    try:
        yield build_node(config, NODE, upstreams=upstreams, **kwargs)
    finally:
        for upstream in upstreams.values():
            await upstream.close()


EdgeFactory = Callable[..., Awaitable[EdgeUnderTest]]


@pytest.fixture
async def make_edge(origin: Origin, clock: FakeClock) -> AsyncIterator[EdgeFactory]:
    async with contextlib.AsyncExitStack() as stack:

        async def start(**overrides: Any) -> EdgeUnderTest:
            config = make_config(origin.url, **overrides)
            node = await stack.enter_async_context(
                engine(config, clock=clock, registry=CollectorRegistry())
            )
            stack.push_async_callback(node.stop)
            await node.start()
            session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0), auto_decompress=False
            )
            stack.push_async_callback(session.close)
            return EdgeUnderTest(node, clock, session)

        yield start


@pytest.fixture
async def edge(make_edge: EdgeFactory) -> EdgeUnderTest:
    return await make_edge()
