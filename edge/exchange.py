"""One request's exchange through the node, as a frozen value the handler's parts share.

:class:`Exchange` is built once by admission (:mod:`edge.admission`) and handed to the hit,
miss, refresh and pass-through parts, so that none of them threads loose arguments: the server's
request (for its body and writer), its head as the cache core sees it, the origin it was
matched to, that origin's upstream and the cache key.
"""

from __future__ import annotations

from dataclasses import dataclass

from cdn_core.config import OriginConfig
from cdn_core.http import RequestHead
from edge.server import Request
from overlay.upstream import Upstream


@dataclass(frozen=True, slots=True, kw_only=True)
class Exchange:
    request: Request
    head: RequestHead
    origin: OriginConfig
    upstream: Upstream
    key: str  # the primary cache key (RFC 9111 §4.1); "" for methods that are not looked up

    @property
    def client_ip(self) -> str | None:
        return self.request.remote
