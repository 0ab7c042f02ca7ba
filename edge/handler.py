"""The data-plane request handler: server requests in, cdn_core decisions, responses out.

Theory of operation. :meth:`EdgeHandler.handle` admits the request (:mod:`edge.admission`: the
message rules, the configured origin of its host) as one :class:`~edge.exchange.Exchange`. GET
and HEAD go through the one ``match`` on :func:`decide_lookup`: a hit is answered from the
store (:mod:`edge.answers`), a stale hit that ``stale-while-revalidate`` allows too, with a
background refresh (:mod:`edge.refresh`); a miss or a revalidation goes upstream through the
coalescer and is stored as it streams (:mod:`edge.miss`). Unsafe methods pass through and
invalidate (:mod:`edge.passthrough`, RFC 9111 §4.4). When the upstream fails, a stored
response that ``stale-if-error`` allows is served, else 502/503/504.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import assert_never

from cdn_core.cache_policy import (
    LOOKUP_METHODS,
    CacheOptions,
    Hit,
    Miss,
    OnlyIfCachedMiss,
    Revalidate,
    ServeStale,
    decide_lookup,
)
from cdn_core.cache_status import Forward
from cdn_core.config import Config, NodeConfig, Role
from edge.admission import Admission
from edge.answers import Answers
from edge.coalesce import Coalescer
from edge.exchange import Exchange
from edge.limits import RequestRejected
from edge.metrics import EdgeMetrics, Outcome, RateMeter
from edge.miss import MissPath
from edge.parts import Parts
from edge.passthrough import PassThrough
from edge.refresh import Refresher
from edge.sending import Sender
from edge.server import Answer, Request
from edge.store import CacheStore
from overlay.upstream import Timeouts, Upstream


class EdgeHandler:
    """Serves one node's data plane; the cache store, coalescer and upstreams are injected.

    ``cache_ready`` says whether the store may be served from: until the control-plane agent
    has applied every purge it missed, nothing is (DESIGN.md: no purge is lost).
    """

    def __init__(
        self,
        *,
        config: Config,
        node: NodeConfig,
        store: CacheStore,
        coalescer: Coalescer,
        upstreams: Mapping[str, Upstream],
        metrics: EdgeMetrics,
        clock: Callable[[], float],
        meter: RateMeter | None = None,
        role: Role | None = None,
        cache_ready: Callable[[], bool] | None = None,
    ) -> None:
        # An edge faces users; a shield faces edges (its ingress middleware checks the hop).
        from_users = (role or node.role) is Role.EDGE
        options = CacheOptions.from_config(config.cache)
        self._admission = Admission(config, upstreams, from_users=from_users)
        self._answers = Answers(
            node=node.name, store=store, metrics=metrics, options=options, clock=clock
        )
        sender = Sender(
            via=self._answers.via,
            from_users=from_users,
            timeouts=Timeouts.from_config(config.proxy),
            metrics=metrics,
            origin_of=self._admission.origin_of,
        )
        parts = Parts(
            answers=self._answers,
            sender=sender,
            store=store,
            coalescer=coalescer,
            metrics=metrics,
            options=options,
            clock=clock,
        )
        self._misses = MissPath(parts)
        self._refresher = Refresher(parts, put=self._misses.put)
        self._pass = PassThrough(parts, misses=self._misses, proxy=config.proxy)
        self._store = store
        self._options = options
        self._clock = clock
        self._meter = meter
        self.cache_ready: Callable[[], bool] = cache_ready or _always

    @property
    def background(self) -> set[object]:
        """The background refreshes still running."""
        return set(self._refresher.running)

    async def handle(self, request: Request) -> Answer:
        if self._meter is not None:
            self._meter.count += 1
        try:
            x = self._admission.admit(request)
        except RequestRejected as exc:
            return self._answers.reject(exc)
        if x.head.method in LOOKUP_METHODS:
            return await self._lookup(x)
        return await self._pass.handle(x)

    async def close(self) -> None:
        """Stop the background refreshes still running."""
        await self._refresher.close()

    async def _lookup(self, x: Exchange) -> Answer:
        if not self.cache_ready():
            return await self._misses.forward(x, Forward.BYPASS, None)
        head, answers = x.head, self._answers
        decision = decide_lookup(
            head, self._store.candidates(x.key), now=self._clock(), options=self._options
        )
        match decision:
            case Hit(entry=entry, age_s=age, ttl_s=ttl):
                served = answers.serve(head, entry, age, answers.hit_status(ttl), Outcome.HIT)
            case ServeStale(entry=entry, age_s=age, revalidate_in_background=refresh, ttl_s=ttl):
                if refresh:
                    self._refresher.later(x, entry)
                detail = "stale-while-revalidate" if refresh else "max-stale"
                status = answers.status(hit=True, ttl_s=ttl, detail=detail)
                served = answers.serve(head, entry, age, status, Outcome.STALE)
            case Revalidate(entry=entry, reason=reason):
                return await self._misses.forward(x, reason.forward, entry)
            case Miss(reason=reason):
                return await self._misses.forward(x, reason.forward, None)
            case OnlyIfCachedMiss():
                text = "504 Gateway Timeout: only-if-cached and no usable stored response"
                return answers.error(504, text)
            case unreachable:
                assert_never(unreachable)
        if served is not None:
            return served
        return await self._misses.forward(x, Forward.URI_MISS, None)  # evicted meanwhile


def _always() -> bool:
    return True
