"""The upstream seam: where a cache miss goes next.

The cache code only sees :class:`Upstream`: ``fetch(head, body, timeouts=...)`` returns an
:class:`UpstreamResponse` whose body is read as a stream, or raises
:class:`~cdn_core.errors.UpstreamTimeout` / :class:`~cdn_core.errors.UpstreamUnavailable`.
:class:`~overlay.direct.DirectUpstream` goes straight to an origin; the tiered overlay path
(:class:`~overlay.path.OverlayUpstream`) and the shield's origin pools are other
implementations of the same protocol and plug in without touching the cache code.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Protocol

from cdn_core.config import OriginConfig, ProxyConfig
from cdn_core.http import Headers, RequestHead


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
