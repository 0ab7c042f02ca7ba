"""Straight to an origin: the upstream of an edge without shields, and a shield's last hop."""

from __future__ import annotations

from yarl import URL

from cdn_core.config import OriginConfig, ProxyConfig
from cdn_core.http import RequestHead
from overlay.client import HttpClient
from overlay.upstream import RequestBody, Timeouts, Upstream, UpstreamResponse


class DirectUpstream:
    """Straight to one origin's ``url`` over its own pooled keep-alive :class:`HttpClient`."""

    def __init__(
        self, origin: OriginConfig, proxy: ProxyConfig, *, source_address: str | None = None
    ) -> None:
        self.origin = origin
        self._base = origin.url
        self._client = HttpClient(proxy, source_address=source_address)

    async def fetch(
        self, head: RequestHead, body: RequestBody, *, timeouts: Timeouts
    ) -> UpstreamResponse:
        url = URL(self._base + head.target, encoded=True)
        # The last hop: the origin's configured Host, never a client's (RFC 9112 §3.2.2).
        headers = head.headers.with_set("host", self.origin.host_header or head.host)
        return await self._client.send(head.method, url, headers, body, timeouts)

    async def close(self) -> None:
        await self._client.close()


def direct_upstream(origin: OriginConfig, proxy: ProxyConfig) -> Upstream:
    """The plain :data:`~overlay.upstream.UpstreamFactory`: go straight to the origin."""
    return DirectUpstream(origin, proxy)
