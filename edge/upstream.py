"""The upstream seam: where a cache miss goes next.

The cache code only sees :class:`Upstream`: ``fetch(head, body, timeouts=...)`` returns an
:class:`UpstreamResponse` whose body is read as a stream, or raises
:class:`~cdn_core.errors.UpstreamTimeout` / :class:`~cdn_core.errors.UpstreamUnavailable`.
:class:`DirectUpstream` talks to an origin's ``url`` over a pooled keep-alive
:class:`aiohttp.ClientSession`; the tiered overlay path (via shields) is another implementation
of the same protocol and plugs in without touching the cache code.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Protocol

import aiohttp
from yarl import URL

from cdn_core.config import OriginConfig, ProxyConfig
from cdn_core.errors import UpstreamError, UpstreamTimeout, UpstreamUnavailable
from cdn_core.forwarding import without_framing
from cdn_core.http import Headers, RequestHead

# aiohttp adds these itself unless told not to; a proxy forwards what the client sent.
SKIP_AUTO_HEADERS = ("User-Agent", "Accept-Encoding", "Accept", "Content-Type")


@dataclass(frozen=True, slots=True)
class StreamBody:
    """A request body forwarded as it arrives: ``length`` bytes, or chunked when None."""

    chunks: AsyncIterator[bytes]
    length: int | None


RequestBody = StreamBody | bytes | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Timeouts:
    """How long one upstream exchange may take, phase by phase (seconds)."""

    connect_s: float
    first_byte_s: float
    between_bytes_s: float

    @classmethod
    def from_config(cls, proxy: ProxyConfig) -> Timeouts:
        return cls(
            connect_s=proxy.connect_timeout_s,
            first_byte_s=proxy.first_byte_timeout_s,
            between_bytes_s=proxy.between_bytes_timeout_s,
        )


class UpstreamResponse(Protocol):
    """A response head from the next hop, with its body still to be read."""

    status: int
    headers: Headers

    def body(self) -> AsyncIterator[bytes]:
        """The body in chunks; raises ``UpstreamError`` when the next hop fails mid-body."""
        ...

    def release(self) -> None:
        """Give the connection back (or drop it if the body was not read to the end)."""
        ...


class Upstream(Protocol):
    """The next hop toward the origin."""

    async def fetch(
        self, head: RequestHead, body: RequestBody, *, timeouts: Timeouts
    ) -> UpstreamResponse: ...

    async def close(self) -> None: ...


UpstreamFactory = Callable[[OriginConfig, ProxyConfig], Upstream]


def raw_header_pairs(response: aiohttp.ClientResponse) -> list[tuple[str, str]]:
    """The response's header fields as received, decoded as HTTP allows (latin-1)."""
    return [(k.decode("latin-1"), v.decode("latin-1")) for k, v in response.raw_headers]


class AiohttpResponse:
    """An aiohttp response as an :class:`UpstreamResponse`: the body is read chunk by chunk,
    each chunk within the between-bytes timeout."""

    __slots__ = ("_response", "_between_bytes_s", "headers", "status")

    def __init__(
        self,
        response: aiohttp.ClientResponse,
        between_bytes_s: float,
        headers: Headers | None = None,
    ) -> None:
        self._response = response
        self._between_bytes_s = between_bytes_s
        self.status = response.status
        self.headers = Headers(raw_header_pairs(response)) if headers is None else headers

    def _error(self, exc: BaseException) -> UpstreamError:
        return map_client_error(exc)

    async def body(self) -> AsyncIterator[bytes]:
        content = self._response.content
        while True:
            try:
                async with asyncio.timeout(self._between_bytes_s):
                    chunk = await content.readany()
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                raise self._error(exc) from exc
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


def map_client_error(exc: BaseException) -> UpstreamError:
    """Translate an aiohttp/OS error into the project's upstream error tree."""
    if isinstance(exc, TimeoutError | aiohttp.ServerTimeoutError):
        return UpstreamTimeout(f"the origin did not answer in time ({type(exc).__name__})")
    reason = str(exc) or type(exc).__name__
    return UpstreamUnavailable(f"the origin could not be reached: {reason}")


class DirectUpstream:
    """Straight to one origin's ``url`` over a pooled keep-alive session."""

    def __init__(
        self, origin: OriginConfig, proxy: ProxyConfig, *, source_address: str | None = None
    ) -> None:
        self.origin = origin
        self._base = origin.url
        self._proxy = proxy
        self._source_address = source_address
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            limit=self._proxy.upstream_pool_size,
            keepalive_timeout=self._proxy.keepalive_timeout_s,
            ttl_dns_cache=60,
            local_addr=(self._source_address, 0) if self._source_address else None,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            auto_decompress=False,
            skip_auto_headers=SKIP_AUTO_HEADERS,
            cookie_jar=aiohttp.DummyCookieJar(),  # never carry one user's cookies to the next
        )
        return self._session

    async def fetch(
        self, head: RequestHead, body: RequestBody, *, timeouts: Timeouts
    ) -> UpstreamResponse:
        session = self._session or self._open()
        url = URL(self._base + head.target, encoded=True)
        # The last hop: the origin's configured Host, never a client's (RFC 9112 §3.2.2).
        headers = head.headers.with_set("host", self.origin.host_header or head.host)
        try:
            response = await send_request(session, head.method, url, headers, body, timeouts)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise map_client_error(exc) from exc
        return AiohttpResponse(response, timeouts.between_bytes_s)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def direct_upstream(origin: OriginConfig, proxy: ProxyConfig) -> Upstream:
    """The default :data:`UpstreamFactory`: go straight to the origin."""
    return DirectUpstream(origin, proxy)
