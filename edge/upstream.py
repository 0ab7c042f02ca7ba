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
from cdn_core.http import Headers, RequestHead

CHUNK_BYTES = 64 * 1024

RequestBody = AsyncIterator[bytes] | bytes | None


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
            skip_auto_headers=("User-Agent", "Accept-Encoding", "Accept"),
        )
        return self._session

    async def fetch(
        self, head: RequestHead, body: RequestBody, *, timeouts: Timeouts
    ) -> UpstreamResponse:
        session = self._session or self._open()
        timeout = aiohttp.ClientTimeout(
            total=None,
            sock_connect=timeouts.connect_s,
            sock_read=timeouts.first_byte_s,
        )
        url = URL(self._base + head.target, encoded=True)
        try:
            response = await session.request(
                head.method,
                url,
                headers=list(head.headers),
                data=body,
                timeout=timeout,
                allow_redirects=False,
                compress=None,
            )
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
