"""Bad input: the limits the data listener enforces and the clear errors it answers with.

aiohttp's HTTP parser rejects malformed request lines, conflicting ``Content-Length`` /
``Transfer-Encoding`` and over-long lines before any handler runs; :class:`EdgeRunner` makes
those answers short plain-text errors (431 for header limits, 400 otherwise) logged without a
traceback. The handler then checks what the parser cannot: the total header bytes
(``proxy.max_header_bytes``) and the request body size (``proxy.max_request_body_bytes``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web, web_protocol
from aiohttp.http_exceptions import BadHttpMessage, LineTooLong

from cdn_core.config import ProxyConfig

log = logging.getLogger(__name__)

MAX_HEADER_FIELDS = 256

RequestServer = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]


class RequestRejected(Exception):
    """Bad client input: answered with ``status`` and a one-line explanation."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def _is_header_limit(exc: BaseException | None) -> bool:
    if isinstance(exc, LineTooLong):
        # A too-long request line (the target) is 414-ish; header fields are 431 (RFC 6585 §5).
        return True
    return isinstance(exc, BadHttpMessage) and "Too many headers" in str(exc)


class _EdgeRequestHandler(web_protocol.RequestHandler):
    """aiohttp's connection handler, with parse errors answered as short, specific errors."""

    def handle_error(
        self,
        request: Any,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if status != 400 or exc is None:
            return super().handle_error(request, status, exc, message)
        if _is_header_limit(exc):
            status, title = 431, "431 Request Header Fields Too Large"
        else:
            status, title = 400, "400 Bad Request"
        detail = " ".join(str(getattr(exc, "message", exc)).split())[:300]
        log.info("rejected a malformed request from %s: %s", request.remote, detail)
        response = web.Response(status=status, text=f"{title}: {detail}\n")
        response.force_close()
        return response


class _EdgeServer(web.Server):
    """aiohttp's low-level server (no Application, no router) with our connection handler."""

    def __call__(self) -> web_protocol.RequestHandler:
        return _EdgeRequestHandler(self, loop=self._loop, **self._kwargs)


class EdgeRunner(web.ServerRunner):
    """A low-level :class:`aiohttp.web.ServerRunner` for ``serve``, parser limits from ``[proxy]``.

    ``serve`` is called with each parsed request: the data plane runs below aiohttp's web layer
    (no Application, router or per-request match info).
    """

    def __init__(self, serve: RequestServer, proxy: ProxyConfig, **kwargs: Any) -> None:
        server = _EdgeServer(
            serve,
            max_line_size=proxy.max_header_bytes,
            max_field_size=proxy.max_header_bytes,
            max_headers=MAX_HEADER_FIELDS,
            auto_decompress=False,
            access_log=None,
            keepalive_timeout=proxy.keepalive_timeout_s,
        )
        super().__init__(server, **kwargs)


def check_head_size(raw_headers: tuple[tuple[bytes, bytes], ...], proxy: ProxyConfig) -> None:
    """Reject a request whose header fields exceed ``proxy.max_header_bytes`` in total."""
    total = 0
    for name, value in raw_headers:
        total += len(name) + len(value) + 4
    if total > proxy.max_header_bytes:
        raise RequestRejected(
            431,
            f"request header fields total {total} bytes, "
            f"over the limit of {proxy.max_header_bytes}",
        )


def check_body_size(content_length: int | None, proxy: ProxyConfig) -> None:
    """Reject a request whose declared body is larger than ``proxy.max_request_body_bytes``."""
    if content_length is not None and content_length > proxy.max_request_body_bytes:
        raise RequestRejected(
            413,
            f"request body of {content_length} bytes is over the limit of "
            f"{proxy.max_request_body_bytes}",
        )
