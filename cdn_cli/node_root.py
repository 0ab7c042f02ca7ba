"""The composition root of one node: every part of an edge or a shield is wired here.

:func:`run_node` is an async context manager: inside it the node serves; leaving it shuts the
node down. Each resource is set up beside its cleanup (one :class:`contextlib.AsyncExitStack`),
in the order the parts need each other, and torn down in reverse:

1. the control-plane client, one per node: the snapshot feed and the agent share it
   (:mod:`controlplane.connect`);
2. an edge's snapshot feed (:mod:`controlplane.feed`), read once before the node serves: the
   path planner routes on it;
3. the peer client (:mod:`overlay.peers`): an edge's hops to shields, a shield's detours;
4. the role's upstreams, one per origin: an edge's through the shields (:mod:`overlay.path`),
   a shield's to the origins (:mod:`origin_shield.origin`), and a shield's ingress and TLS;
5. the engine (:func:`edge.app.build_node`) and its listeners; it serves from its cache only
   once the agent has applied every purge it missed;
6. the control-plane agent (:mod:`controlplane.agent`): heartbeats, probes, purge follower,
   and the admin routes it answers.

Usage::

    async with run_node(config, "edge-eu-1", secret) as running:
        await stopped.wait()
"""

from __future__ import annotations

import contextlib
import functools
import ssl
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry

from cdn_core.config import Config, Role
from controlplane.admin import add_admin_routes
from controlplane.agent import NodeAgent
from controlplane.connect import connect
from controlplane.feed import SnapshotFeed, assumed_snapshot
from controlplane.store import ControlStore
from edge.app import Guard, Node, NodeCache, Routes, build_node
from origin_shield.ingress import OverlayGuard
from origin_shield.origin import ShieldOrigins
from overlay.path import Overlay
from overlay.peers import PeerClient
from overlay.tls import server_context
from overlay.upstream import Upstream, UpstreamFactory


@dataclass(frozen=True, slots=True, kw_only=True)
class RunningNode:
    """A node inside :func:`run_node`, with the parts tests and ``cdn`` look at."""

    node: Node
    peers: PeerClient
    control: ControlStore
    agent: NodeAgent | None = None
    feed: SnapshotFeed | None = None
    overlay: Overlay | None = None  # an edge's path planner
    guard: OverlayGuard | None = None  # a shield's ingress
    origins: ShieldOrigins | None = None  # a shield's origin pools and their health


@dataclass(frozen=True, slots=True, kw_only=True)
class _RoleParts:
    """What the role adds to the engine: where misses go, and whom a shield lets in."""

    factory: UpstreamFactory
    overlay: Overlay | None = None
    routes: Routes | None = None
    guard: OverlayGuard | None = None
    origins: ShieldOrigins | None = None
    guards: tuple[Guard, ...] = ()
    data_ssl: ssl.SSLContext | None = None
    health: Callable[[], dict[str, object]] | None = None


@contextlib.asynccontextmanager
async def run_node(
    config: Config,
    name: str,
    secret: bytes,
    *,
    role: Role | None = None,
    control: ControlStore | None = None,
    agent: bool = True,
    follow_snapshots: bool | None = None,
    registry: CollectorRegistry | None = None,
    clock: Callable[[], float] = time.time,
) -> AsyncIterator[RunningNode]:
    """Run node ``name`` of ``config`` in ``role`` (default: its configured one).

    Args:
        secret: the cluster secret (signs and verifies overlay hops and admin requests).
        control: the node's control-plane client; by default one is opened from
            ``config.control_plane`` (and closed on the way out).
        agent: run the control-plane agent (heartbeats, probes, purges, ``POST /purge``);
            without it the node runs its data plane alone.
        follow_snapshots: whether an edge plans its routes on the control plane's snapshots
            (else on the configured shields, assumed live). Default: unless the control plane
            is ``"memory"``, which is this process's alone and never sees the other nodes.
        registry: where the node's metrics go (a new one by default).
        clock: wall clock of the data plane and the overlay's authentication tags.
    """
    node_config = config.node(name)
    role = role or node_config.role
    registry = registry if registry is not None else CollectorRegistry()
    if follow_snapshots is None:
        follow_snapshots = config.control_plane != "memory"
    async with contextlib.AsyncExitStack() as stack:
        if control is None:
            control = connect(config.control_plane, config.cluster)
            stack.push_async_callback(control.close)

        feed = None
        if role is Role.EDGE and follow_snapshots:
            feed = SnapshotFeed(
                control,
                initial=assumed_snapshot(config, now=clock()),
                interval_s=config.probe.interval_s,
                name=f"{name}: snapshots",
            )
            await feed.start()
            stack.push_async_callback(feed.stop)

        peers = PeerClient(config, name, secret, clock=clock)
        stack.push_async_callback(peers.close)

        if role is Role.SHIELD:
            parts = _shield(config, name, secret, peers, clock)
        else:
            parts = _edge(config, name, peers, feed, registry, clock)
        upstreams: dict[str, Upstream] = {}
        for origin in config.origins:
            upstreams[origin.name] = upstream = parts.factory(origin, config.proxy)
            stack.push_async_callback(upstream.close)

        cache = NodeCache.create(config, registry)
        node_agent = None
        if agent:
            stats = functools.partial(cache.stats, parts.routes)
            node_agent = NodeAgent(config, name, control, cache.store, stats)
        node = build_node(
            config,
            name,
            role=role,
            upstreams=upstreams,
            cache=cache,
            clock=clock,
            guards=parts.guards,
            data_ssl=parts.data_ssl,
            routes=parts.routes,
            cache_ready=_ready(node_agent) if node_agent is not None else None,
            admin_routes=(
                functools.partial(add_admin_routes, agent=node_agent, secret=secret)
                if node_agent is not None
                else None
            ),
            health=parts.health,
        )
        stack.push_async_callback(node.stop)
        await node.start()

        if node_agent is not None:
            await node_agent.start()
            stack.push_async_callback(node_agent.stop)

        yield RunningNode(
            node=node,
            peers=peers,
            control=control,
            agent=node_agent,
            feed=feed,
            overlay=parts.overlay,
            guard=parts.guard,
            origins=parts.origins,
        )


def _edge(
    config: Config,
    name: str,
    peers: PeerClient,
    feed: SnapshotFeed | None,
    registry: CollectorRegistry,
    clock: Callable[[], float],
) -> _RoleParts:
    """An edge's misses go through the shields, on the feed's snapshots (or assumed ones)."""
    fixed = assumed_snapshot(config, now=clock())
    overlay = Overlay(
        config,
        name,
        peers,
        (lambda: feed.current) if feed is not None else (lambda: fixed),
        registry=registry,
        clock=clock,
    )
    return _RoleParts(factory=overlay.factory(), overlay=overlay, routes=overlay.route_choices)


def _shield(
    config: Config, name: str, secret: bytes, peers: PeerClient, clock: Callable[[], float]
) -> _RoleParts:
    """A shield takes authenticated overlay hops only, and its misses go to the origins."""
    origins = ShieldOrigins(config, source_address=config.node(name).source_address, clock=clock)
    guard = OverlayGuard(config, name, secret, peers, clock=clock)
    tls = config.overlay.tls
    return _RoleParts(
        factory=origins.factory(),
        guard=guard,
        origins=origins,
        guards=(guard,),
        data_ssl=server_context(tls) if tls is not None else None,
        health=origins.healthz,
    )


def _ready(agent: NodeAgent) -> Callable[[], bool]:
    return lambda: bool(agent.ready_to_serve_from_cache)
