"""Test harness: a real config on loopback, a small real cache implementing PurgeTarget."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cdn_core.config import Config, load_config
from cdn_core.purge import PurgeRule, matches
from cdn_core.registry import NodeStats
from controlplane.agent import NodeAgent
from controlplane.store import ControlStore
from tests.conftest import free_port

SECRET = b"0123456789abcdef-test-secret"


@dataclass
class CachedObject:
    tags: tuple[str, ...] = ()
    stale: bool = False


@dataclass
class MemoryCache:
    """A real (tiny) cache: objects by (host, target), purged through cdn_core.purge.matches."""

    node: str
    objects: dict[tuple[str, str], CachedObject] = field(default_factory=dict)
    events: list[tuple[str, str]] = field(default_factory=list)
    drops: int = 0

    def put(self, host: str, target: str, *tags: str) -> None:
        self.objects[(host, target)] = CachedObject(tags=tags)

    def state(self, host: str, target: str) -> str:
        obj = self.objects.get((host, target))
        return "absent" if obj is None else "stale" if obj.stale else "fresh"

    def purge(self, rule: PurgeRule, *, now: float) -> int:
        self.events.append((self.node, rule.id))
        hit = [
            k for k, o in self.objects.items() if matches(rule, host=k[0], target=k[1], tags=o.tags)
        ]
        for key in hit:
            if rule.soft:
                self.objects[key].stale = True
            else:
                del self.objects[key]
        return len(hit)

    def drop_all(self) -> int:
        self.drops += 1
        count = len(self.objects)
        self.objects.clear()
        return count

    def stats(self) -> NodeStats:
        return NodeStats(cache_objects=len(self.objects), cache_bytes=100 * len(self.objects))


def make_config(
    tmp_path: Path,
    control_plane: str,
    cluster: str,
    *,
    shields: int = 2,
    edges: int = 2,
    **sections: Any,
) -> Config:
    secret = tmp_path / "cluster.key"
    secret.write_bytes(SECRET)
    nodes = [
        {
            "name": f"shield-{i}",
            "role": "shield",
            "region": "eu",
            "listen": f"127.0.2.{i}:{free_port()}",
            "admin": f"127.0.0.1:{free_port()}",
        }
        for i in range(1, shields + 1)
    ]
    edge_port = free_port()
    nodes += [
        {
            "name": f"edge-{i}",
            "role": "edge",
            "region": "eu",
            "listen": f"127.0.1.{i}:{edge_port}",
            "admin": f"127.0.0.1:{free_port()}",
        }
        for i in range(1, edges + 1)
    ]
    data: dict[str, Any] = {
        "cluster": cluster,
        "control_plane": control_plane,
        "secret_file": str(secret),
        "dns": {"zone": "cdn.test", "listen": f"127.0.0.1:{free_port()}"},
        "origins": [
            {
                "name": "site",
                "hostnames": ["www.cdn.test"],
                "url": f"http://127.0.0.1:{free_port()}",
            }
        ],
        "nodes": nodes,
        "probe": {"interval": "200ms", "timeout": "200ms"},
        "controlplane": {
            "heartbeat_interval": "200ms",
            "node_ttl": "1s",
            "purge_wait_timeout": "5s",
            "state_dir": str(tmp_path / "state"),
        },
    }
    for name, section in sections.items():
        data[name] = {**data.get(name, {}), **section} if isinstance(section, dict) else section
    (tmp_path / "cdn.toml").write_text(to_toml(data))
    return load_config(data)


def _toml_value(value: Any) -> str:
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return repr(value)


def to_toml(data: dict[str, Any]) -> str:
    """A minimal TOML writer for the config shapes these tests use."""
    lines = [
        f"{k} = {_toml_value(v)}"
        for k, v in data.items()
        if not isinstance(v, dict | list)
        or (isinstance(v, list) and not (v and isinstance(v[0], dict)))
    ]
    for key, value in data.items():
        if isinstance(value, dict):
            lines += ["", f"[{key}]", *(f"{k} = {_toml_value(v)}" for k, v in value.items())]
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            for item in value:
                lines += ["", f"[[{key}]]", *(f"{k} = {_toml_value(v)}" for k, v in item.items())]
    return "\n".join(lines) + "\n"


async def eventually(check: Callable[[], Awaitable[bool]], *, tries: int = 200) -> bool:
    """Poll ``check`` (bounded: ``tries`` x 50 ms); returns its last verdict."""
    for _ in range(tries):
        if await check():
            return True
        await asyncio.sleep(0.05)
    return await check()


@dataclass
class Cluster:
    config: Config
    store: ControlStore
    caches: dict[str, MemoryCache]
    agents: dict[str, NodeAgent] = field(default_factory=dict)

    def agent(self, name: str, store: ControlStore | None = None) -> NodeAgent:
        cache = self.caches.setdefault(name, MemoryCache(name))
        agent = NodeAgent(self.config, name, store or self.store, cache, cache.stats)
        self.agents[name] = agent
        return agent

    async def start_all(self) -> None:
        for node in self.config.nodes:
            await self.agent(node.name).start()
        await self.wait_ready()

    async def wait_ready(self) -> None:
        async def ready() -> bool:
            live = (await self.store.snapshot()).nodes
            return all(a.ready_to_serve_from_cache for a in self.agents.values()) and all(
                n in live for n in self.agents
            )

        assert await eventually(ready)

    async def stop_all(self) -> None:
        for agent in self.agents.values():
            await agent.stop()


def now() -> float:
    return time.time()


@dataclass
class AdminListener:
    """One node's admin listener on loopback, its agent started (see :func:`admin_listener`)."""

    host: str
    port: int
    cluster: Cluster

    async def purges(self) -> int:
        return len(await self.cluster.store.read_purges("0-0"))


@contextlib.asynccontextmanager
async def admin_listener(
    tmp_path: Path, redis_url: str, cluster_name: str, *, secret: bytes = SECRET
) -> AsyncIterator[AdminListener]:
    """A real admin listener (``/probe``, ``/purge``) of a one-edge cluster, keyed by ``secret``."""
    from aiohttp import web

    from controlplane.admin import add_admin_routes
    from controlplane.redis_store import RedisControlStore
    from edge import log_redaction

    config = make_config(tmp_path, redis_url, cluster_name, shields=0, edges=1, client_networks=[])
    store = RedisControlStore.from_url(redis_url, cluster_name)
    cluster = Cluster(config, store, {})
    admin = config.node("edge-1").admin
    app = web.Application()
    add_admin_routes(app, cluster.agent("edge-1"), secret)
    log_redaction.install()  # as a node does when it starts (edge.app.Node.start)
    runner = web.AppRunner(app)
    try:
        await runner.setup()
        await web.TCPSite(runner, admin.host, admin.port).start()
        await cluster.start_all()
        yield AdminListener(admin.host, admin.port, cluster)
    finally:
        await cluster.stop_all()
        await runner.cleanup()
        await store.close()


@dataclass(frozen=True)
class RawResponse:
    status: int
    headers: bytes
    body: bytes


async def raw_exchange(
    host: str, port: int, request: bytes, *, timeout_s: float = 10.0
) -> RawResponse:
    """Send ``request`` as-is on a fresh connection; the first response, read by hand."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        async with asyncio.timeout(timeout_s):
            writer.write(request)
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            status_line, _, headers = head.partition(b"\r\n")
            length = next(
                (
                    int(line.split(b":", 1)[1])
                    for line in headers.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                ),
                None,
            )
            body = await (reader.read() if length is None else reader.readexactly(length))
        return RawResponse(int(status_line.split()[1]), headers, body)
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
