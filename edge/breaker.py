"""The circuit breaker (:mod:`cdn_core.breaker`) around one origin's :class:`Upstream`.

:class:`BreakerUpstream` is an :class:`~overlay.upstream.Upstream` like the one it wraps. While
the breaker is open it raises :class:`CircuitOpen` at once (status hint 503, with the seconds until
a trial), so that the handler serves a stale object that ``stale-if-error`` allows, or answers
503, without waiting on an origin that does not answer. A timeout or a refused connection counts
as a failure, and so does a 504 from the next hop (a shield that timed out on the origin);
any other answer, 5xx included, is the upstream answering, and counts as a success. The
failure of a request whose body streams from the client is not counted: a client that stalls
or abandons its upload must not open the breaker for everyone.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from cdn_core.breaker import (
    Breaker,
    BreakerOptions,
    BreakerState,
    Refuse,
    after_outcome,
    decide_admission,
)
from cdn_core.config import ProxyConfig
from cdn_core.errors import UpstreamTimeout, UpstreamUnavailable
from cdn_core.http import RequestHead
from overlay.upstream import RequestBody, StreamBody, Timeouts, Upstream, UpstreamResponse

_GATEWAY_TIMEOUT = 504


class CircuitOpen(UpstreamUnavailable):
    """The breaker of this upstream is open: nothing was sent."""

    status_hint = 503

    def __init__(self, message: str, *, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class BreakerUpstream:
    """``inner`` behind a circuit breaker; ``on_change`` hears every state change."""

    def __init__(
        self,
        inner: Upstream,
        options: BreakerOptions,
        *,
        name: str,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[BreakerState], None] | None = None,
    ) -> None:
        self.inner = inner
        self.breaker = Breaker()
        self._options = options
        self._name = name
        self._clock = clock
        self._on_change = on_change

    @classmethod
    def from_config(
        cls, inner: Upstream, proxy: ProxyConfig, *, name: str, **kwargs: object
    ) -> BreakerUpstream:
        options = BreakerOptions(failures=proxy.breaker_failures, open_s=proxy.breaker_open_s)
        return cls(inner, options, name=name, **kwargs)  # type: ignore[arg-type]

    async def fetch(
        self, head: RequestHead, body: RequestBody, *, timeouts: Timeouts
    ) -> UpstreamResponse:
        admission, breaker = decide_admission(
            self.breaker, now=self._clock(), options=self._options
        )
        self._keep(breaker)
        if isinstance(admission, Refuse):
            wait = math.ceil(admission.retry_after_s)
            raise CircuitOpen(
                f"the origin {self._name!r} stopped answering; not asking it for {wait}s",
                retry_after_s=admission.retry_after_s,
            )
        try:
            response = await self.inner.fetch(head, body, timeouts=timeouts)
        except (UpstreamTimeout, UpstreamUnavailable):
            # A request whose body streams from the client fails as often by the client (a
            # stalled or abandoned upload) as by the upstream: it says nothing about the latter.
            if not isinstance(body, StreamBody):
                self._report(failed=True)
            raise
        # A cancelled or crashed exchange reports nothing: a lost trial is retried after open_s.
        self._report(failed=response.status == _GATEWAY_TIMEOUT)
        return response

    async def close(self) -> None:
        await self.inner.close()

    def _report(self, *, failed: bool) -> None:
        now = self._clock()
        self._keep(after_outcome(self.breaker, failed=failed, now=now, options=self._options))

    def _keep(self, breaker: Breaker) -> None:
        changed = breaker.state is not self.breaker.state
        self.breaker = breaker
        if changed and self._on_change is not None:
            self._on_change(breaker.state)
