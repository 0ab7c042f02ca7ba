"""The one aiohttp client: every request a node sends, to an origin or to a peer, goes here.

:class:`HttpClient` owns one pooled keep-alive :class:`aiohttp.ClientSession` (opened on first
use), set up as a proxy needs it: no fields of its own, no decompression, no cookie jar; with
the node's source address and, toward peers over ``[overlay.tls]``, mutual TLS. Its errors, and
those of a body read later (:class:`AiohttpResponse`), are the project's upstream errors
(:func:`map_client_error`), naming the other side: ``peer`` is "the origin" or "the overlay
peer".
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator

import aiohttp
from yarl import URL

from cdn_core.config import ProxyConfig
from cdn_core.errors import UpstreamError, UpstreamTimeout, UpstreamUnavailable
from cdn_core.forwarding import without_framing
from cdn_core.http import Headers
from overlay.upstream import RequestBody, StreamBody, Timeouts

# aiohttp adds these itself unless told not to; a proxy forwards what the client sent.
SKIP_AUTO_HEADERS = ("User-Agent", "Accept-Encoding", "Accept", "Content-Type")

ORIGIN = "the origin"


def raw_header_pairs(response: aiohttp.ClientResponse) -> list[tuple[str, str]]:
    """The response's header fields as received, decoded as HTTP allows (latin-1)."""
    return [(k.decode("latin-1"), v.decode("latin-1")) for k, v in response.raw_headers]


def map_client_error(exc: BaseException, *, peer: str = ORIGIN) -> UpstreamError:
    """Translate an aiohttp/OS error talking to ``peer`` into the project's upstream errors."""
    if isinstance(exc, TimeoutError | aiohttp.ServerTimeoutError):
        return UpstreamTimeout(f"{peer} did not answer in time ({type(exc).__name__})")
    reason = str(exc) or type(exc).__name__
    return UpstreamUnavailable(f"{peer} could not be reached: {reason}")


class AiohttpResponse:
    """An aiohttp response as an :class:`~overlay.upstream.UpstreamResponse`: the body is read
    chunk by chunk, each chunk within the between-bytes timeout."""

    __slots__ = ("_between_bytes_s", "_peer", "_response", "headers", "status")

    def __init__(
        self,
        response: aiohttp.ClientResponse,
        between_bytes_s: float,
        headers: Headers | None = None,
        *,
        peer: str = ORIGIN,
    ) -> None:
        self._response = response
        self._between_bytes_s = between_bytes_s
        self._peer = peer
        self.status = response.status
        self.headers = Headers(raw_header_pairs(response)) if headers is None else headers

    async def body(self) -> AsyncIterator[bytes]:
        content = self._response.content
        while True:
            try:
                async with asyncio.timeout(self._between_bytes_s):
                    chunk = await content.readany()
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                raise map_client_error(exc, peer=self._peer) from exc
            if not chunk:
                return
            yield chunk

    def release(self) -> None:
        if self._response.content.is_eof():
            self._response.release()
        else:
            self._response.close()


async def send_request(
    session: aiohttp.ClientSession,
    method: str,
    url: URL,
    headers: Headers,
    body: RequestBody,
    timeouts: Timeouts,
) -> aiohttp.ClientResponse:
    """Send one request; its framing is computed here, for the body actually sent.

    ``Content-Length`` and ``Transfer-Encoding`` in ``headers`` are ignored (RFC 9112 §6): a
    :class:`StreamBody` of known length gets that ``Content-Length``, one of unknown length is
    sent chunked, bytes get their own length, and no body gets no framing field at all.
    """
    fields = without_framing(headers)
    data: AsyncIterator[bytes] | bytes | None
    if isinstance(body, StreamBody):
        data = body.chunks
        if body.length is not None:
            fields = fields.with_set("content-length", str(body.length))
    else:
        data = body
    timeout = aiohttp.ClientTimeout(
        total=None, sock_connect=timeouts.connect_s, sock_read=timeouts.first_byte_s
    )
    return await session.request(
        method,
        url,
        headers=list(fields),
        data=data,
        timeout=timeout,
        allow_redirects=False,
        compress=None,
    )


class HttpClient:
    """One pooled keep-alive session toward ``peer`` (named in the errors)."""

    def __init__(
        self,
        proxy: ProxyConfig,
        *,
        peer: str = ORIGIN,
        source_address: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.peer = peer
        self._proxy = proxy
        self._source_address = source_address
        self._ssl_context = ssl_context
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            limit=self._proxy.upstream_pool_size,
            keepalive_timeout=self._proxy.keepalive_timeout_s,
            ttl_dns_cache=60,
            ssl=self._ssl_context if self._ssl_context is not None else True,
            local_addr=(self._source_address, 0) if self._source_address else None,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            auto_decompress=False,
            skip_auto_headers=SKIP_AUTO_HEADERS,
            cookie_jar=aiohttp.DummyCookieJar(),  # never carry one user's cookies to the next
        )
        return self._session

    async def send(
        self, method: str, url: URL, headers: Headers, body: RequestBody, timeouts: Timeouts
    ) -> AiohttpResponse:
        """Send one request (see :func:`send_request`) and return its response head.

        Raises:
            UpstreamTimeout: ``peer`` did not connect or answer in time.
            UpstreamUnavailable: the connection was refused or reset.
        """
        session = self._session or self._open()
        try:
            response = await send_request(session, method, url, headers, body, timeouts)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise map_client_error(exc, peer=self.peer) from exc
        return AiohttpResponse(response, timeouts.between_bytes_s, peer=self.peer)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
