"""The shield's way to the origins: one keep-alive pool per origin, and origin health.

The shield's caching engine calls :class:`ShieldOriginUpstream` on a miss; it unwraps the
overlay (:func:`cdn_core.hop.strip_overlay_headers`: no ``X-Overlay-*`` field and no internal
node name reaches the origin, ``X-Forwarded-For`` does) and fetches over the origin's own
:class:`~overlay.direct.DirectUpstream` pool. Every exchange updates the origin's
:class:`OriginHealth`, which the shield's ``/healthz`` shows (:meth:`ShieldOrigins.healthz`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from cdn_core.config import Config, OriginConfig, ProxyConfig
from cdn_core.errors import UpstreamError
from cdn_core.hop import strip_overlay_headers
from cdn_core.http import RequestHead
from overlay.direct import DirectUpstream
from overlay.upstream import RequestBody, Timeouts, Upstream, UpstreamResponse

DOWN_AFTER_FAILURES = 3


@dataclass(frozen=True, slots=True, kw_only=True)
class OriginHealth:
    """Consecutive failures and the last outcome times (wall clock) of one origin."""

    failures: int = 0
    last_ok_at: float | None = None
    last_failure_at: float | None = None
    last_error: str = ""

    @property
    def up(self) -> bool:
        return self.failures < DOWN_AFTER_FAILURES


class ShieldOriginUpstream:
    """:class:`~overlay.upstream.Upstream` from a shield to one origin."""

    def __init__(
        self,
        origin: OriginConfig,
        proxy: ProxyConfig,
        *,
        cluster: str,
        nodes: tuple[str, ...],
        health: dict[str, OriginHealth],
        source_address: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.origin = origin
        self._cluster = cluster
        self._nodes = nodes
        self._direct = DirectUpstream(origin, proxy, source_address=source_address)
        self._health = health
        self._clock = clock

    async def fetch(
        self, head: RequestHead, body: RequestBody, *, timeouts: Timeouts
    ) -> UpstreamResponse:
        fields = strip_overlay_headers(head.headers, cluster=self._cluster, nodes=self._nodes)
        clean = replace(head, headers=fields)
        current = self._health.get(self.origin.name, OriginHealth())
        try:
            response = await self._direct.fetch(clean, body, timeouts=timeouts)
        except UpstreamError as exc:
            self._health[self.origin.name] = replace(
                current,
                failures=current.failures + 1,
                last_failure_at=self._clock(),
                last_error=str(exc),
            )
            raise
        ok = response.status < 500
        self._health[self.origin.name] = (
            replace(current, failures=0, last_ok_at=self._clock())
            if ok
            else replace(
                current,
                failures=current.failures + 1,
                last_failure_at=self._clock(),
                last_error=f"status {response.status}",
            )
        )
        return response

    async def close(self) -> None:
        await self._direct.close()


class ShieldOrigins:
    """The shield role's upstream factory and the health of every origin it talks to."""

    def __init__(
        self,
        config: Config,
        *,
        source_address: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.cluster = config.cluster
        self.source_address = source_address
        self.nodes = tuple(n.name for n in config.nodes)
        self.origins = tuple(o.name for o in config.origins)
        self.health: dict[str, OriginHealth] = {}
        self._clock = clock

    def healthz(self) -> dict[str, object]:
        """The ``origins`` field of the shield's ``/healthz``: every configured origin's
        ``{"up", "failures", "last_error"}`` (an origin not asked yet is up)."""
        origins: dict[str, object] = {}
        for name in self.origins:
            health = self.health.get(name, OriginHealth())
            origins[name] = {
                "up": health.up,
                "failures": health.failures,
                "last_error": health.last_error,
            }
        return {"origins": origins}

    def factory(self) -> Callable[[OriginConfig, ProxyConfig], Upstream]:
        """The :data:`~overlay.upstream.UpstreamFactory` of the shield role."""

        def make(origin: OriginConfig, proxy: ProxyConfig) -> Upstream:
            return ShieldOriginUpstream(
                origin,
                proxy,
                cluster=self.cluster,
                nodes=self.nodes,
                health=self.health,
                source_address=self.source_address,
                clock=self._clock,
            )

        return make
