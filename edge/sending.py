"""Going upstream: the request a node sends for an exchange, and the counted send itself.

:meth:`Sender.head_for` builds the upstream head with :func:`cdn_core.forwarding.upstream_fields`
(framing, Host, hop-by-hop, unkeyed and forwarding fields); a lookup always asks for the whole
object with GET, since the client's own validators and ranges are answered from the stored
copy (RFC 9111 §4.3.2, RFC 9110 §14.2). :meth:`Sender.send` calls the upstream, counts the
result, and lists an origin's ``pass_headers`` in the response's ``Vary``.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

from cdn_core.config import OriginConfig
from cdn_core.errors import UpstreamError, UpstreamTimeout
from cdn_core.forwarding import upstream_fields, vary_with
from cdn_core.http import Headers, RequestHead
from edge.breaker import CircuitOpen
from edge.metrics import EdgeMetrics, UpstreamResult
from overlay.upstream import RequestBody, Timeouts, Upstream, UpstreamResponse

# Never sent up for a lookup: they are answered from the stored copy.
_CLIENT_ONLY_FIELDS = (
    "range",
    "if-range",
    "if-none-match",
    "if-modified-since",
    "if-match",
    "if-unmodified-since",
)


class Sender:
    """Upstream requests of one node (``from_users`` on an edge, whose clients are users)."""

    def __init__(
        self,
        *,
        via: str,
        from_users: bool,
        timeouts: Timeouts,
        metrics: EdgeMetrics,
        origin_of: Callable[[str], OriginConfig],
    ) -> None:
        self._via = via
        self._from_users = from_users
        self._timeouts = timeouts
        self._metrics = metrics
        self._origin_of = origin_of

    def head_for(
        self,
        head: RequestHead,
        client_ip: str | None,
        *,
        full_object: bool,
        extra: Headers | None = None,
    ) -> RequestHead:
        """The head sent upstream for ``head``; ``full_object`` for a lookup (a GET of it all),
        ``extra`` for this node's own conditional fields."""
        headers = head.headers
        method = head.method
        if full_object:
            headers = headers.without(*_CLIENT_ONLY_FIELDS)
            method = "GET"
        if extra:
            headers = Headers([*headers, *extra])
        headers = upstream_fields(
            headers,
            host=head.host,
            via=self._via,
            client_ip=client_ip,
            from_user=self._from_users,
            passed=self._origin_of(head.host).pass_headers,
        )
        return dataclasses.replace(head, method=method, headers=headers)

    async def send(
        self, upstream: Upstream, head: RequestHead, body: RequestBody
    ) -> UpstreamResponse:
        started = time.monotonic()
        try:
            response = await upstream.fetch(head, body, timeouts=self._timeouts)
        except CircuitOpen:
            self._metrics.upstream(UpstreamResult.BREAKER_OPEN)
            raise
        except UpstreamTimeout:
            self._metrics.upstream(UpstreamResult.TIMEOUT)
            raise
        except UpstreamError:
            self._metrics.upstream(UpstreamResult.UNAVAILABLE)
            raise
        self._metrics.upstream(UpstreamResult.OK, time.monotonic() - started)
        passed = self._origin_of(head.host).pass_headers
        if passed:
            # Passed-through fields select the variant: they cannot poison (cdn_core.forwarding).
            response.headers = vary_with(response.headers, passed)
        return response
