"""Wiring one node: the data-plane app, the admin app, the store, metrics and upstreams.

:func:`build_node` assembles a :class:`Node` from the config; :meth:`Node.start` binds the data
listener (``node.listen_bind``: ``bind`` when set, else ``listen``; over TLS when ``data_ssl`` is
set, as on a shield with ``[overlay.tls]``) and the admin listener (``node.admin_listen_bind``).
The admin listener serves ``/healthz`` and ``/metrics`` (and the control plane's routes when the
agent runs) and never user traffic; the data listener never serves ``/metrics``: every path
there belongs to an origin.

The data listener runs on the node's own HTTP/1.1 server (:mod:`edge.server`): every request
goes to :meth:`EdgeHandler.handle`, through the guards a role put in ``Node.guards`` (the
shield's overlay ingress), composed once when the node starts (:func:`data_plane`). aiohttp
serves only the admin listener.
"""

from __future__ import annotations

import importlib.util
import logging
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.aiohttp import make_aiohttp_handler

from cdn_core.breaker import BreakerState
from cdn_core.config import Config, HostPort, NodeConfig, Role
from cdn_core.registry import NodeStats, RouteChoice
from edge import log_redaction
from edge.breaker import BreakerUpstream
from edge.coalesce import Coalescer
from edge.handler import EdgeHandler
from edge.limits import server_limits
from edge.metrics import EdgeMetrics, RateMeter
from edge.server import Handler, HttpServer, Request, start_server
from edge.server.writer import Prebuilt, Response
from edge.store import CacheStore
from edge.upstream import Upstream, UpstreamFactory, direct_upstream

log = logging.getLogger(__name__)

Clock = Callable[[], float]
Answer = Response | Prebuilt | None
# A guard sees each data-plane request before the handler: it answers it itself, or calls on.
Guard = Callable[[Request, Handler], Awaitable[Answer]]
DRAIN_S = 10.0  # how long a stopping node lets responses in progress finish


@dataclass(slots=True, kw_only=True)
class Node:
    """One running edge or shield: build with :func:`build_node`, then ``start``/``stop``."""

    config: Config
    node: NodeConfig
    role: Role
    admin_app: web.Application
    store: CacheStore
    metrics: EdgeMetrics
    handler: EdgeHandler
    meter: RateMeter
    upstreams: Mapping[str, Upstream] = field(default_factory=dict)
    guards: list[Guard] = field(default_factory=list)  # outermost first (the shield's ingress)
    agent: Any = None  # controlplane.agent.NodeAgent when the control plane is wired in
    data_ssl: ssl.SSLContext | None = None  # the shield's mutual TLS (``[overlay.tls]``)
    # The edge's last route per origin (the overlay's), reported for ``cdn status``.
    routes: Callable[[], Mapping[str, RouteChoice]] | None = None
    data_address: HostPort | None = None
    admin_address: HostPort | None = None
    _runners: list[web.BaseRunner] = field(default_factory=list)
    _server: HttpServer | None = None

    def stats(self) -> NodeStats:
        return NodeStats(
            cache_objects=len(self.store),
            cache_bytes=self.store.used_bytes,
            load_rps=self.meter.rate(),
            routes=self.routes() if self.routes is not None else {},
        )

    async def start(self) -> None:
        log_redaction.install()
        bind = self.node.listen_bind
        self._server = await start_server(
            data_plane(self.handler.handle, self.guards),
            host=bind.host,
            port=bind.port,
            limits=server_limits(self.config.proxy),
            ssl=self.data_ssl,
        )
        self.data_address = HostPort(bind.host, self._server.port)
        admin = web.AppRunner(self.admin_app, access_log=None, handle_signals=False)
        self.admin_address = await _bind(admin, self.node.admin_listen_bind, self._runners)
        if self.agent is not None:
            await self.agent.start()
        log.info(
            "%s %s serving on %s://%s (admin http://%s)",
            self.role.value,
            self.node.name,
            "https" if self.data_ssl is not None else "http",
            self.data_address,
            self.admin_address,
        )

    async def stop(self) -> None:
        if self.agent is not None:
            await self.agent.stop()
        if self._server is not None:
            await self._server.close(drain_s=DRAIN_S)
            self._server = None
        runners, self._runners = self._runners, []
        for runner in reversed(runners):
            await runner.cleanup()
        await self.handler.close()
        for upstream in self.upstreams.values():
            await upstream.close()


async def _bind(
    runner: web.BaseRunner,
    address: HostPort,
    runners: list[web.BaseRunner],
    *,
    ssl_context: ssl.SSLContext | None = None,
) -> HostPort:
    await runner.setup()
    runners.append(runner)
    site = web.TCPSite(
        runner,
        address.host,
        address.port,
        ssl_context=ssl_context,
        reuse_address=True,
        backlog=1024,
    )
    await site.start()
    server = getattr(site, "_server", None)
    sockets = getattr(server, "sockets", None) or []
    port = sockets[0].getsockname()[1] if sockets else address.port
    return HostPort(address.host, port)


def build_node(
    config: Config,
    node_name: str,
    *,
    role: Role | None = None,
    clock: Clock = time.time,
    upstream_factory: UpstreamFactory | None = None,
    registry: CollectorRegistry | None = None,
    secret: bytes | None = None,
) -> Node:
    """Assemble the node ``node_name`` of ``config``.

    ``secret`` (the cluster secret) wires in the control-plane agent when that package is
    available: purge following, heartbeats and the admin purge route. Without it the node runs
    its data plane alone, which is what most adapter tests want.
    """
    node = config.node(node_name)
    registry = registry if registry is not None else CollectorRegistry()
    metrics = EdgeMetrics(registry)
    store = CacheStore(config.cache.memory_bytes, on_evict=metrics.evictions.inc)
    metrics.watch_store(lambda: store.used_bytes, lambda: len(store))
    factory = upstream_factory or direct_upstream
    upstreams: dict[str, Upstream] = {
        o.name: _with_breaker(factory(o, config.proxy), o.name, config, metrics, clock)
        for o in config.origins
    }
    meter = RateMeter()
    handler = EdgeHandler(
        config=config,
        node=node,
        store=store,
        coalescer=Coalescer(wait_s=config.cache.coalesce_wait_s, clock=clock),
        upstreams=upstreams,
        metrics=metrics,
        clock=clock,
        meter=meter,
        role=role,
    )
    built = Node(
        config=config,
        node=node,
        role=role or node.role,
        admin_app=_admin_app(node, registry),
        store=store,
        metrics=metrics,
        handler=handler,
        meter=meter,
        upstreams=upstreams,
    )
    if secret is not None:
        built.agent = _control_plane_agent(built, secret)
        if built.agent is not None:
            handler.cache_ready = lambda: bool(built.agent.ready_to_serve_from_cache)
    return built


def _with_breaker(
    upstream: Upstream, origin: str, config: Config, metrics: EdgeMetrics, clock: Clock
) -> Upstream:
    """``upstream`` behind its circuit breaker (``[proxy] breaker_failures``, 0: none)."""
    if config.proxy.breaker_failures == 0:
        return upstream

    def changed(state: BreakerState) -> None:
        metrics.breaker_transitions.labels(origin=origin, state=state.value).inc()
        log.warning("the circuit breaker of origin %r is now %s", origin, state.value)

    return BreakerUpstream.from_config(
        upstream, config.proxy, name=origin, clock=clock, on_change=changed
    )


def data_plane(serve: Handler, guards: Sequence[Guard]) -> Handler:
    """The data listener's request handler: ``serve`` behind ``guards`` (outermost first)."""
    chained = serve
    for guard in reversed(guards):
        chained = _guarded(guard, chained)
    return chained


def _guarded(guard: Guard, inner: Handler) -> Handler:
    async def handle(request: Request) -> Answer:
        return await guard(request, inner)

    return handle


def _admin_app(node: NodeConfig, registry: CollectorRegistry) -> web.Application:
    app = web.Application()

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "node": node.name, "role": node.role.value})

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", make_aiohttp_handler(registry, disable_compression=True))
    return app


def _control_plane_agent(node: Node, secret: bytes) -> Any:
    """The control-plane agent for ``node``, or None when that package is not installed."""
    if importlib.util.find_spec("controlplane.agent") is None:
        log.warning("controlplane.agent is not available: running without the control plane")
        return None
    from controlplane.admin import add_admin_routes
    from controlplane.agent import NodeAgent
    from controlplane.store import from_url

    control = from_url(node.config.control_plane, node.config.cluster)
    agent = NodeAgent(node.config, node.node.name, control, node.store, node.stats)
    add_admin_routes(node.admin_app, agent, secret)
    return agent
