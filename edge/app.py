"""One node's engine: the data-plane server, the admin app, the store, metrics and breakers.

:func:`build_node` assembles a :class:`Node` from the config and the parts its composition root
hands in (:mod:`cdn_cli.node_root` runs a whole node: it owns the upstreams, the control-plane
agent and everything else with a lifetime). :meth:`Node.start` binds the data listener
(``node.listen_bind``: ``bind`` when set, else ``listen``; over TLS when ``data_ssl`` is set, as
on a shield with ``[overlay.tls]``) and the admin listener (``node.admin_listen_bind``). The
admin listener serves ``/healthz`` and ``/metrics`` (and the control plane's routes when the
root mounts them) and never user traffic; the data listener never serves ``/metrics``: every
path there belongs to an origin.

The data listener runs on the node's own HTTP/1.1 server (:mod:`edge.server`): every request
goes to :meth:`EdgeHandler.handle`, through the ``guards`` a role brings (the shield's overlay
ingress), composed once when the node starts (:func:`data_plane`). aiohttp serves only the
admin listener.
"""

from __future__ import annotations

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
from edge.server import Answer, Handler, HttpServer, Request, start_server
from edge.store import CacheStore
from overlay.upstream import Upstream

log = logging.getLogger(__name__)

Clock = Callable[[], float]
Routes = Callable[[], Mapping[str, RouteChoice]]
# A guard sees each data-plane request before the handler: it answers it itself, or calls on.
Guard = Callable[[Request, Handler], Awaitable[Answer]]
DRAIN_S = 10.0  # how long a stopping node lets responses in progress finish


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeCache:
    """A node's object store and what is counted about it: what the data plane and the
    control-plane agent share (the agent purges ``store`` and heartbeats :meth:`stats`)."""

    store: CacheStore
    metrics: EdgeMetrics
    meter: RateMeter

    @classmethod
    def create(cls, config: Config, registry: CollectorRegistry | None = None) -> NodeCache:
        metrics = EdgeMetrics(registry if registry is not None else CollectorRegistry())
        store = CacheStore(config.cache.memory_bytes, on_evict=metrics.evictions.inc)
        metrics.watch_store(lambda: store.used_bytes, lambda: len(store))
        return cls(store=store, metrics=metrics, meter=RateMeter())

    def stats(self, routes: Routes | None = None) -> NodeStats:
        """The figures a heartbeat carries; ``routes``: the edge's last route per origin."""
        return NodeStats(
            cache_objects=len(self.store),
            cache_bytes=self.store.used_bytes,
            load_rps=self.meter.rate(),
            routes=routes() if routes is not None else {},
        )


@dataclass(slots=True, kw_only=True)
class Node:
    """One edge or shield engine: build with :func:`build_node`, then ``start``/``stop``."""

    config: Config
    node: NodeConfig
    role: Role
    admin_app: web.Application
    cache: NodeCache
    handler: EdgeHandler
    upstreams: Mapping[str, Upstream] = field(default_factory=dict)  # behind their breakers
    guards: tuple[Guard, ...] = ()  # around the handler, outermost first
    data_ssl: ssl.SSLContext | None = None  # the shield's mutual TLS (``[overlay.tls]``)
    # The edge's last route per origin (the overlay's), reported for ``cdn status``.
    routes: Routes | None = None
    data_address: HostPort | None = None
    admin_address: HostPort | None = None
    _runners: list[web.BaseRunner] = field(default_factory=list)
    _server: HttpServer | None = None

    @property
    def store(self) -> CacheStore:
        return self.cache.store

    @property
    def metrics(self) -> EdgeMetrics:
        return self.cache.metrics

    def stats(self) -> NodeStats:
        return self.cache.stats(self.routes)

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
        log.info(
            "%s %s serving on %s://%s (admin http://%s)",
            self.role.value,
            self.node.name,
            "https" if self.data_ssl is not None else "http",
            self.data_address,
            self.admin_address,
        )

    async def stop(self) -> None:
        """Close the listeners and stop background refreshes (the upstreams are the caller's)."""
        if self._server is not None:
            await self._server.close(drain_s=DRAIN_S)
            self._server = None
        runners, self._runners = self._runners, []
        for runner in reversed(runners):
            await runner.cleanup()
        await self.handler.close()


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
    upstreams: Mapping[str, Upstream],
    role: Role | None = None,
    clock: Clock = time.time,
    cache: NodeCache | None = None,
    registry: CollectorRegistry | None = None,
    guards: Sequence[Guard] = (),
    data_ssl: ssl.SSLContext | None = None,
    routes: Routes | None = None,
    cache_ready: Callable[[], bool] | None = None,
    admin_routes: Callable[[web.Application], None] | None = None,
    health: Callable[[], Mapping[str, Any]] | None = None,
) -> Node:
    """Assemble the node ``node_name`` of ``config`` around ``upstreams`` (one per origin).

    Args:
        upstreams: where each origin's misses go; the node puts each behind its circuit
            breaker, and never closes them (their opener does).
        cache: the store and metrics, when the caller shares them (with the control-plane
            agent); else new ones, counted in ``registry``.
        guards: around the data-plane handler (the shield's overlay ingress).
        data_ssl: the data listener's TLS context.
        routes: the edge's last route per origin, for its heartbeats.
        cache_ready: whether the store may be served from yet (the agent's catch-up); always,
            without a control plane.
        admin_routes: mounts more routes on the admin app (the control plane's ``/purge``).
        health: more fields for ``/healthz`` (the shield's origins).
    """
    node = config.node(node_name)
    cache = cache or NodeCache.create(config, registry)
    metrics = cache.metrics
    guarded: dict[str, Upstream] = {
        name: _with_breaker(upstream, name, config, metrics, clock)
        for name, upstream in upstreams.items()
    }
    handler = EdgeHandler(
        config=config,
        node=node,
        store=cache.store,
        coalescer=Coalescer(wait_s=config.cache.coalesce_wait_s, clock=clock),
        upstreams=guarded,
        metrics=metrics,
        clock=clock,
        meter=cache.meter,
        role=role,
        cache_ready=cache_ready,
    )
    admin_app = _admin_app(node, metrics.registry, health)
    if admin_routes is not None:
        admin_routes(admin_app)
    return Node(
        config=config,
        node=node,
        role=role or node.role,
        admin_app=admin_app,
        cache=cache,
        handler=handler,
        upstreams=guarded,
        guards=tuple(guards),
        data_ssl=data_ssl,
        routes=routes,
    )


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


def _admin_app(
    node: NodeConfig,
    registry: CollectorRegistry,
    health: Callable[[], Mapping[str, Any]] | None,
) -> web.Application:
    app = web.Application()

    async def healthz(request: web.Request) -> web.Response:
        fields = {"status": "ok", "node": node.name, "role": node.role.value}
        return web.json_response({**fields, **(health() if health is not None else {})})

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", make_aiohttp_handler(registry, disable_compression=True))
    return app
