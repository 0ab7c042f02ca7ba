"""What the overlay adds to a node, by role, in one value the node runner wires in.

An edge gets an upstream factory that goes through the shields (:class:`Overlay`), fed by the
control plane's snapshots. A shield gets an upstream factory toward the origins
(:class:`ShieldOrigins`), the ingress guard (:class:`OverlayGuard`), and, with
``[overlay.tls]``, the server TLS context of its data listener. Usage::

    role = overlay_role(config, name, node_role, secret, control=store)
    node = build_node(config, name, upstream_factory=role.upstream_factory, ...)
    node.guards.extend(role.guards)
    await role.start(); await node.start(); ...; await node.stop(); await role.stop()
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry

from cdn_core.config import Config, Role
from edge.app import Guard
from edge.upstream import UpstreamFactory
from origin_shield.ingress import OverlayGuard
from origin_shield.origin import ShieldOrigins
from origin_shield.overlay_upstream import Overlay
from origin_shield.peers import PeerClient
from origin_shield.snapshot_feed import SnapshotFeed, SnapshotSource, assumed_snapshot
from origin_shield.tls import server_context


@dataclass(slots=True, kw_only=True)
class OverlayRole:
    upstream_factory: UpstreamFactory
    peers: PeerClient
    guards: tuple[Guard, ...] = ()
    server_ssl: ssl.SSLContext | None = None
    feed: SnapshotFeed | None = None
    overlay: Overlay | None = None
    guard: OverlayGuard | None = None
    origins: ShieldOrigins | None = None
    _started: bool = field(default=False)

    async def start(self) -> None:
        if self.feed is not None and not self._started:
            await self.feed.start()
        self._started = True

    async def stop(self) -> None:
        if self.feed is not None:
            await self.feed.stop()
        await self.peers.close()
        self._started = False


def overlay_role(
    config: Config,
    node: str,
    role: Role,
    secret: bytes,
    *,
    control: SnapshotSource | None,
    registry: CollectorRegistry | None = None,
    clock: Callable[[], float] = time.time,
) -> OverlayRole:
    """The overlay parts of node ``node`` in ``role`` (see the module docstring).

    Args:
        config: the overlay config.
        node: this node's name.
        role: edge or shield.
        secret: the cluster secret (signs and verifies overlay hops).
        control: where edges read cluster snapshots; None routes on configured shields only.
        registry: where the route counters go.
        clock: wall clock for the authentication timestamps.
    """
    peers = PeerClient(config, node, secret, clock=clock)
    if role is Role.SHIELD:
        source = config.node(node).source_address
        origins = ShieldOrigins(config, source_address=source, clock=clock)
        guard = OverlayGuard(config, node, secret, peers, clock=clock)
        tls = config.overlay.tls
        return OverlayRole(
            upstream_factory=origins.factory(),
            peers=peers,
            guards=(guard,),
            server_ssl=server_context(tls) if tls is not None else None,
            guard=guard,
            origins=origins,
        )
    feed = (
        SnapshotFeed(control, config, interval_s=config.probe.interval_s)
        if control is not None
        else None
    )
    fixed = assumed_snapshot(config, now=clock())
    overlay = Overlay(
        config,
        node,
        peers,
        (lambda: feed.current) if feed is not None else (lambda: fixed),
        registry=registry,
    )
    return OverlayRole(upstream_factory=overlay.factory(), peers=peers, feed=feed, overlay=overlay)
