"""The overlay's tunnels: pooled keep-alive connections from this node to its peers.

:class:`PeerClient` sends one request as an overlay hop: it wraps the head (``Via``,
``CDN-Loop``, the planned route and the authentication tag, see :mod:`cdn_core.hop` and
:mod:`cdn_core.overlay_auth`) and sends it over one :class:`~overlay.client.HttpClient` whose
connections to every peer are kept alive (optionally mutual TLS, ``[overlay.tls]``). The
response comes back as a :class:`PeerResponse`: an
:class:`~overlay.upstream.UpstreamResponse` with the overlay fields removed.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable

from yarl import URL

from cdn_core.config import Config
from cdn_core.forwarding import without_framing
from cdn_core.hop import OVERLAY_PREFIX, forward_headers
from cdn_core.http import Headers, RequestHead
from cdn_core.overlay_auth import sign
from overlay.client import HttpClient
from overlay.tls import client_context
from overlay.upstream import RequestBody, Timeouts, UpstreamResponse

# Set by a node on a response it generated itself because it refused an overlay hop (403/508):
# the sender treats it as a failed hop, never as the origin's answer.
OVERLAY_ERROR_HEADER = "x-overlay-error"

PEER = "the overlay peer"


class PeerResponse:
    """A peer's response head (overlay fields removed) with its body still to be read, and
    the refusal it carried in ``X-Overlay-Error`` (None when the hop was accepted)."""

    __slots__ = ("_inner", "headers", "overlay_error", "status")

    def __init__(self, inner: UpstreamResponse) -> None:
        self._inner = inner
        self.status = inner.status
        self.headers = Headers(
            (k, v) for k, v in inner.headers if not k.lower().startswith(OVERLAY_PREFIX)
        )
        self.overlay_error = inner.headers.get(OVERLAY_ERROR_HEADER)

    def body(self) -> AsyncIterator[bytes]:
        return self._inner.body()

    def release(self) -> None:
        self._inner.release()


class PeerClient:
    """One pooled session toward every overlay peer of ``node``."""

    def __init__(
        self,
        config: Config,
        node: str,
        secret: bytes,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.node = node
        self._secret = secret
        self._clock = clock
        tls = config.overlay.tls
        self.scheme = "https" if tls is not None else "http"
        self._client = HttpClient(
            config.proxy,
            peer=PEER,
            source_address=config.node(node).source_address,
            ssl_context=client_context(tls) if tls is not None else None,
        )

    def url_for(self, peer: str, target: str) -> URL:
        address = self.config.node(peer).listen
        return URL(f"{self.scheme}://{address}{target}", encoded=True)

    def wrap(self, head: RequestHead, route: tuple[str, ...]) -> Headers:
        """The head's fields as an overlay hop from this node along ``route``."""
        fields = forward_headers(head.headers, cluster=self.config.cluster, node=self.node)
        fields = without_framing(fields).without("host").with_set("host", head.host)
        auth = sign(
            self._secret,
            method=head.method,
            host=head.host,
            target=head.target,
            node=self.node,
            route=route,
            headers=fields,
            now=self._clock(),
        )
        return fields.merged(auth)

    async def send(
        self,
        route: tuple[str, ...],
        head: RequestHead,
        body: RequestBody,
        *,
        timeouts: Timeouts,
    ) -> PeerResponse:
        """Send ``head`` to ``route[0]``, which forwards it along the rest of ``route``.

        Raises:
            UpstreamTimeout: the peer did not connect or answer in time.
            UpstreamUnavailable: the connection was refused or reset.
        """
        url = self.url_for(route[0], head.target)
        fields = self.wrap(head, route)
        return PeerResponse(await self._client.send(head.method, url, fields, body, timeouts))

    async def close(self) -> None:
        await self._client.close()
