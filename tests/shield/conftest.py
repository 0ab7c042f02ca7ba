"""An in-process overlay on loopback: an origin, shields and edges running the real engine."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from cdn_cli.node_root import RunningNode, run_node
from cdn_core.config import Config, Role, load_config
from controlplane.store import ControlStore
from edge.app import Node
from tests.conftest import free_port

SECRET = b"test-cluster-secret-0123456789"
HOST = "www.cdn.test"


@dataclass
class Origin:
    """A tiny origin that records every request it sees."""

    delay_s: float = 0.0
    seen: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    remotes: list[str | None] = field(default_factory=list)  # the peer address of each request
    port: int = 0
    _runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.Response:
        self.seen.append((request.path_qs, dict(request.headers)))
        self.remotes.append(request.remote)
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        return web.Response(
            text=f"body of {request.path_qs}\n",
            headers={"Cache-Control": "max-age=300"},
        )

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{path:.*}", self.handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        self.port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def requests_for(self, path: str) -> int:
        return sum(1 for p, _ in self.seen if p == path)


def overlay_config(
    origin_port: int,
    *,
    shields: int,
    edges: int,
    secret_file: Path,
    overrides: Mapping[str, Any] | None = None,
    addresses: Mapping[str, str] | None = None,
) -> Config:
    """A config of ``shields`` shields and ``edges`` edges; ``addresses`` overrides listens."""
    edge_port = free_port("127.0.1.1")
    nodes: list[dict[str, Any]] = []
    for i in range(1, shields + 1):
        nodes.append(
            {
                "name": f"shield-{i}",
                "role": "shield",
                "region": "r",
                "listen": f"127.0.2.{i}:{free_port()}",
                "admin": f"127.0.2.{i}:{free_port()}",
            }
        )
    for i in range(1, edges + 1):
        nodes.append(
            {
                "name": f"edge-{i}",
                "role": "edge",
                "region": "r",
                "listen": f"127.0.1.{i}:{edge_port}",
                "admin": f"127.0.1.{i}:{free_port()}",
            }
        )
    for node in nodes:
        for key in ("listen", "admin"):
            node[key] = (addresses or {}).get(f"{node['name']}.{key}", node[key])
    data: dict[str, Any] = {
        "cluster": "ovl",
        "control_plane": "memory",
        "secret_file": str(secret_file),
        "dns": {"zone": "cdn.test", "listen": f"127.0.0.1:{free_port()}"},
        "origins": [
            {"name": "site", "hostnames": [HOST], "url": f"http://127.0.0.1:{origin_port}"}
        ],
        "nodes": nodes,
        "probe": {"interval": "200ms", "timeout": "200ms"},
        "proxy": {"connect_timeout": "1s", "first_byte_timeout": "3s"},
    }
    data.update(overrides or {})
    return load_config(data)


def node_context(
    config: Config, name: str, *, control: ControlStore | None = None, agent: bool = False
) -> contextlib.AbstractAsyncContextManager[RunningNode]:
    """Node ``name`` as ``cdn edge``/``cdn shield`` runs it (:func:`run_node`).

    An edge routes on ``control``'s snapshots when one is given, else on the configured
    shields; with ``agent`` the node heartbeats, probes and follows purges in the control
    plane (``control``, else the one of the config).
    """
    return run_node(
        config, name, SECRET, control=control, agent=agent, follow_snapshots=control is not None
    )


@dataclass
class Running:
    """A node started by :func:`start_node` (its parts in ``parts``), stopped with :meth:`stop`."""

    parts: RunningNode
    _stack: contextlib.AsyncExitStack

    @property
    def node(self) -> Node:
        return self.parts.node

    async def stop(self) -> None:
        await self._stack.aclose()


async def start_node(
    config: Config, name: str, *, control: ControlStore | None = None, agent: bool = False
) -> Running:
    """Start node ``name`` (see :func:`node_context`); ``await running.stop()`` stops it."""
    stack = contextlib.AsyncExitStack()
    running = await stack.enter_async_context(
        node_context(config, name, control=control, agent=agent)
    )
    return Running(running, stack)


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "cluster.key"
    path.write_bytes(SECRET)
    return path


@pytest.fixture
async def origin() -> AsyncIterator[Origin]:
    server = Origin()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as session:
        yield session


@contextlib.asynccontextmanager
async def running(
    config: Config, names: list[str], *, control: ControlStore | None = None
) -> AsyncIterator[dict[str, RunningNode]]:
    """Nodes ``names`` started in order (see :func:`node_context`), stopped in reverse."""
    async with contextlib.AsyncExitStack() as stack:
        nodes: dict[str, RunningNode] = {}
        for name in names:
            nodes[name] = await stack.enter_async_context(
                node_context(config, name, control=control)
            )
        yield nodes


def edge_url(config: Config, edge: str, path: str) -> str:
    return f"http://{config.node(edge).listen}{path}"


def shields_of(config: Config) -> list[str]:
    return [n.name for n in config.nodes_with_role(Role.SHIELD)]
