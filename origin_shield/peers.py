"""The overlay's tunnels: pooled keep-alive connections from this node to its peers.

:class:`PeerClient` sends one request as an overlay hop: it wraps the head (``Via``,
``CDN-Loop``, the planned route and the authentication tag, see :mod:`cdn_core.hop` and
:mod:`cdn_core.overlay_auth`) and sends it over one :class:`aiohttp.ClientSession` whose
connector keeps connections to every peer alive (optionally mutual TLS, ``[overlay.tls]``).
The response comes back as an :class:`~edge.upstream.UpstreamResponse` with the overlay fields
removed.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import aiohttp
from yarl import URL

from cdn_core.config import Config
from cdn_core.errors import UpstreamError, UpstreamTimeout, UpstreamUnavailable
from cdn_core.forwarding import without_framing
from cdn_core.hop import OVERLAY_PREFIX, forward_headers
from cdn_core.http import Headers, RequestHead
from cdn_core.overlay_auth import sign
from edge.upstream import (
    SKIP_AUTO_HEADERS,
    AiohttpResponse,
    RequestBody,
    Timeouts,
    raw_header_pairs,
    send_request,
)
from origin_shield.tls import client_context

# Set by a node on a response it generated itself because it refused an overlay hop (403/508):
# the sender treats it as a failed hop, never as the origin's answer.
OVERLAY_ERROR_HEADER = "x-overlay-error"


class PeerResponse(AiohttpResponse):
    """A peer's response head (overlay fields removed) with its body still to be read."""

    __slots__ = ("overlay_error",)

    def __init__(self, response: aiohttp.ClientResponse, between_bytes_s: float) -> None:
        raw = raw_header_pairs(response)
        kept = Headers((k, v) for k, v in raw if not k.lower().startswith(OVERLAY_PREFIX))
        super().__init__(response, between_bytes_s, kept)
        self.overlay_error = Headers(raw).get(OVERLAY_ERROR_HEADER)

    def _error(self, exc: BaseException) -> UpstreamError:
        return peer_error(exc)


def peer_error(exc: BaseException) -> UpstreamError:
    """Translate an aiohttp/OS error on an overlay hop into the project's upstream errors."""
    if isinstance(exc, TimeoutError | aiohttp.ServerTimeoutError):
        return UpstreamTimeout(f"the overlay peer did not answer in time ({type(exc).__name__})")
    return UpstreamUnavailable(
        f"the overlay peer could not be reached: {str(exc) or type(exc).__name__}"
    )


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
        self._tls = config.overlay.tls
        self._session: aiohttp.ClientSession | None = None

    @property
    def scheme(self) -> str:
        return "https" if self._tls is not None else "http"

    def url_for(self, peer: str, target: str) -> URL:
        address = self.config.node(peer).listen
        return URL(f"{self.scheme}://{address}{target}", encoded=True)

    def _open(self) -> aiohttp.ClientSession:
        me = self.config.node(self.node)
        proxy = self.config.proxy
        connector = aiohttp.TCPConnector(
            limit=proxy.upstream_pool_size,
            keepalive_timeout=proxy.keepalive_timeout_s,
            ssl=client_context(self._tls) if self._tls is not None else True,
            local_addr=(me.source_address, 0) if me.source_address else None,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            auto_decompress=False,
            skip_auto_headers=SKIP_AUTO_HEADERS,
            cookie_jar=aiohttp.DummyCookieJar(),  # never carry one user's cookies to the next
        )
        return self._session

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
        session = self._session or self._open()
        url = self.url_for(route[0], head.target)
        try:
            response = await send_request(
                session, head.method, url, self.wrap(head, route), body, timeouts
            )
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise peer_error(exc) from exc
        return PeerResponse(response, timeouts.between_bytes_s)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
