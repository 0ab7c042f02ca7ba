"""The edge's way to the origin through the shield tier: the tiered overlay path.

:class:`OverlayUpstream` implements the :class:`~overlay.upstream.Upstream` seam. Each miss
is planned by :func:`cdn_core.overlay.plan_route` from the latest snapshot and sent along the
primary path; a connect failure, a timeout, a 5xx or a refused hop makes an idempotent request
go to the next path of the route, ending with the origin itself, so the user sees no error. A
peer that failed to connect or answer is marked down locally for ``hold_s``, so the next misses
plan around it at once instead of waiting for the control plane to notice.

:class:`Overlay` is the state shared by every origin of one node: the peer connection pool,
the latest snapshot (read from :class:`controlplane.feed.SnapshotFeed` by the caller), the
local failure marks, the hysteresis memory and the route counters.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter

from cdn_core.cache_key import primary_key
from cdn_core.config import Config, OriginConfig, ProxyConfig, Role, ShieldPolicy
from cdn_core.errors import UpstreamError
from cdn_core.hop import strip_overlay_headers
from cdn_core.http import RequestHead
from cdn_core.overlay import Path, PathReason, Route, plan_route
from cdn_core.registry import ClusterSnapshot, RouteChoice
from overlay.direct import DirectUpstream
from overlay.peers import PeerClient
from overlay.upstream import RequestBody, Timeouts, Upstream, UpstreamResponse

IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})  # RFC 9110 §9.2.2


@dataclass(frozen=True, slots=True, kw_only=True)
class LastRoute:
    """What ``cdn status`` shows per origin: the route last planned and when (wall clock)."""

    route: Route
    planned_at: float


class OverlayMetrics:
    def __init__(self, registry: CollectorRegistry | None) -> None:
        self.routes = Counter(
            "cdn_overlay_routes",
            "Misses sent into the overlay, by the reason of the path that answered",
            ["reason", "detour"],
            registry=registry,
        )
        self.failovers = Counter(
            "cdn_overlay_failovers",
            "Overlay paths abandoned for the next one, by cause",
            ["cause"],
            registry=registry,
        )


class Overlay:
    """Per-node overlay state: peers, the snapshot, local failure marks, hysteresis memory."""

    def __init__(
        self,
        config: Config,
        node: str,
        peers: PeerClient,
        snapshot: Callable[[], ClusterSnapshot],
        *,
        hold_s: float | None = None,
        registry: CollectorRegistry | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.node = node
        self.peers = peers
        self._snapshot = snapshot
        self._clock = clock
        self._monotonic = monotonic
        probe = config.probe
        # Long enough for the control plane to notice (down_after probes + heartbeat TTL).
        self.hold_s = hold_s or probe.interval_s * (probe.down_after + 1) + (
            config.controlplane.node_ttl_s
        )
        self.metrics = OverlayMetrics(registry)
        self.last_routes: dict[str, LastRoute] = {}
        self._shields = tuple(n.name for n in config.nodes_with_role(Role.SHIELD))
        self.node_names = tuple(n.name for n in config.nodes)
        self._down_until: dict[str, float] = {}
        self._previous: dict[str, str | None] = {}
        self._cache: dict[str, tuple[object, frozenset[str], Route]] = {}

    def locally_down(self) -> frozenset[str]:
        now = self._monotonic()
        expired = [n for n, until in self._down_until.items() if until <= now]
        for name in expired:
            del self._down_until[name]
        return frozenset(self._down_until)

    def mark_down(self, peer: str) -> None:
        self._down_until[peer] = self._monotonic() + self.hold_s

    def plan(self, origin: OriginConfig, head: RequestHead) -> Route:
        """The route of one miss; cached per snapshot unless the policy hashes the key."""
        snapshot, down = self._snapshot(), self.locally_down()
        cached = self._cache.get(origin.name)
        if cached is not None and cached[0] is snapshot and cached[1] == down:
            return cached[2]
        route = plan_route(
            snapshot,
            edge=self.node,
            origin=origin.name,
            policy=origin.shield_policy,
            shields=self._shields,
            overlay=self.config.overlay,
            key=primary_key(head),
            previous=self._previous.get(origin.name),
            locally_down=down,
        )
        if origin.shield_policy is not ShieldPolicy.HASH:
            # Only a measured choice deserves hysteresis; an unmeasured one was arbitrary.
            measured = route.primary.reason in (PathReason.NEAREST, PathReason.HYSTERESIS)
            self._previous[origin.name] = route.shield if measured else None
            self._cache[origin.name] = (snapshot, down, route)
        self.last_routes[origin.name] = LastRoute(route=route, planned_at=self._clock())
        return route

    def route_choices(self) -> dict[str, RouteChoice]:
        """The last route per origin, as the node reports it for ``cdn status``."""
        return {
            origin: RouteChoice(
                shield=last.route.primary.shield,
                via=last.route.primary.via,
                reason=last.route.primary.reason.value,
                planned_at=last.planned_at,
            )
            for origin, last in self.last_routes.items()
        }

    def factory(self) -> Callable[[OriginConfig, ProxyConfig], Upstream]:
        """The :data:`~overlay.upstream.UpstreamFactory` of the edge role."""

        def make(origin: OriginConfig, proxy: ProxyConfig) -> Upstream:
            source = self.config.node(self.node).source_address
            direct = DirectUpstream(origin, proxy, source_address=source)
            return OverlayUpstream(self, origin, direct)

        return make


class OverlayUpstream:
    """:class:`~overlay.upstream.Upstream` for one origin, through the shields when it can."""

    def __init__(self, overlay: Overlay, origin: OriginConfig, direct: DirectUpstream) -> None:
        self._overlay = overlay
        self._origin = origin
        self._direct = direct

    async def fetch(
        self, head: RequestHead, body: RequestBody, *, timeouts: Timeouts
    ) -> UpstreamResponse:
        route = self._overlay.plan(self._origin, head)
        replayable = head.method.upper() in IDEMPOTENT and not _is_stream(body)
        paths = route.paths if replayable else route.paths[:1]
        metrics = self._overlay.metrics
        for path in paths[:-1]:
            try:
                response = await self._send(path, head, body, timeouts)
            except UpstreamError as exc:
                self._overlay.mark_down(path.hops[0])
                metrics.failovers.labels(cause=type(exc).__name__).inc()
                continue
            if response.status < 500 and response.overlay_error is None:
                metrics.routes.labels(reason=path.reason.value, detour=path.is_detour).inc()
                return response
            response.release()
            metrics.failovers.labels(cause=response.overlay_error or "5xx").inc()
        last = paths[-1]
        response = await self._send(last, head, body, timeouts)
        metrics.routes.labels(reason=last.reason.value, detour=last.is_detour).inc()
        return response

    async def _send(
        self, path: Path, head: RequestHead, body: RequestBody, timeouts: Timeouts
    ) -> _Response:
        if path.is_direct:
            config = self._overlay.config
            clean = strip_overlay_headers(
                head.headers, cluster=config.cluster, nodes=self._overlay.node_names
            )
            response = await self._direct.fetch(
                RequestHead(
                    method=head.method,
                    host=head.host,
                    target=head.target,
                    headers=clean,
                    scheme=head.scheme,
                ),
                body,
                timeouts=timeouts,
            )
            return _Response(response, None)
        peer = await self._overlay.peers.send(path.hops, head, body, timeouts=timeouts)
        return _Response(peer, peer.overlay_error)

    async def close(self) -> None:
        await self._direct.close()


class _Response:
    """An upstream response plus the overlay error it carried (None from the origin)."""

    __slots__ = ("_inner", "headers", "overlay_error", "status")

    def __init__(self, inner: UpstreamResponse, overlay_error: str | None) -> None:
        self._inner = inner
        self.status = inner.status
        self.headers = inner.headers
        self.overlay_error = overlay_error

    def body(self) -> AsyncIterator[bytes]:
        return self._inner.body()

    def release(self) -> None:
        self._inner.release()


def _is_stream(body: RequestBody) -> bool:
    return body is not None and not isinstance(body, bytes)
