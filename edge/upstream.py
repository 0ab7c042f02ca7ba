"""Temporary re-export of the upstream seam and client, now in :mod:`overlay`.

Import from :mod:`overlay.upstream`, :mod:`overlay.client` and :mod:`overlay.direct`; this
module goes once nothing imports it.
"""

from overlay.client import (
    SKIP_AUTO_HEADERS as SKIP_AUTO_HEADERS,
    AiohttpResponse as AiohttpResponse,
    map_client_error as map_client_error,
    raw_header_pairs as raw_header_pairs,
    send_request as send_request,
)
from overlay.direct import DirectUpstream as DirectUpstream, direct_upstream as direct_upstream
from overlay.upstream import (
    RequestBody as RequestBody,
    StreamBody as StreamBody,
    Timeouts as Timeouts,
    Upstream as Upstream,
    UpstreamFactory as UpstreamFactory,
    UpstreamResponse as UpstreamResponse,
)

__all__ = [
    "SKIP_AUTO_HEADERS",
    "AiohttpResponse",
    "DirectUpstream",
    "RequestBody",
    "StreamBody",
    "Timeouts",
    "Upstream",
    "UpstreamFactory",
    "UpstreamResponse",
    "direct_upstream",
    "map_client_error",
    "raw_header_pairs",
    "send_request",
]
