"""Bad input: the limits the data listener enforces and the clear errors it answers with.

aiohttp's HTTP parser (llhttp, strict mode) rejects malformed request lines, bare CR or LF,
obs-fold, control bytes, conflicting or repeated ``Content-Length`` / ``Transfer-Encoding`` and
over-long lines before any handler runs; :class:`EdgeRunner` makes those answers short
plain-text errors (431 for header limits, 400 otherwise) logged without a traceback, and makes
every status line of the node ``HTTP/1.1`` whatever version the client spoke (RFC 9110 §6.2).
The handler then checks what the parser cannot (:func:`check_head`, :func:`check_message`):
the total header bytes (``proxy.max_header_bytes``), field values that are not UTF-8 (refused,
so that what is forwarded is byte-exact), the HTTP version (505 unless 1.x), TRACE and CONNECT
(405), a body on GET or HEAD (400: see below) and the request body size
(``proxy.max_request_body_bytes``).

A GET or HEAD with a body is refused, not forwarded: a body has no defined meaning on them
(RFC 9110 §9.3.1), caches key them without it, and a node that dropped the body but kept its
framing would desynchronise the next hop (request smuggling). ``Content-Length: 0`` is no body.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web, web_protocol
from aiohttp.abc import AbstractStreamWriter
from aiohttp.http import HttpVersion, RawRequestMessage
from aiohttp.http_exceptions import BadHttpMessage, LineTooLong
from aiohttp.streams import StreamReader
from multidict import CIMultiDict, CIMultiDictProxy

from cdn_core.config import ProxyConfig
from edge.log_redaction import redacted

log = logging.getLogger(__name__)

MAX_HEADER_FIELDS = 256

RequestServer = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]


# RFC 9110 §9.3.8: TRACE would echo the request (credentials included) back; CONNECT makes a
# tunnel. Neither has a place on a caching reverse proxy.
REFUSED_METHODS = frozenset({"TRACE", "CONNECT"})
ALLOWED_METHODS = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"
BODYLESS_METHODS = frozenset({"GET", "HEAD"})


class RequestRejected(Exception):
    """Bad client input: answered with ``status`` and a one-line explanation.

    ``close`` ends the connection after the answer (what the client sent next is not read);
    ``fields`` are added to the answer (``Allow`` on a 405).
    """

    def __init__(
        self,
        status: int,
        reason: str,
        *,
        close: bool = False,
        fields: tuple[tuple[str, str], ...] = (),
    ) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.close = close
        self.fields = fields


def _is_version_error(exc: BaseException | None) -> bool:
    # llhttp refuses any version but 1.0, 1.1 (and 2.0, which check_message answers).
    return isinstance(exc, BadHttpMessage) and "Invalid HTTP version" in str(exc)


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
        elif _is_version_error(exc):
            status, title = 505, "505 HTTP Version Not Supported"
        else:
            status, title = 400, "400 Bad Request"
        detail = " ".join(str(getattr(exc, "message", exc)).split())[:300]
        # The client sees what it sent; the log never does (edge.log_redaction).
        log.info("rejected a malformed request from %s: %s", request.remote, redacted(exc))
        response = web.Response(status=status, text=f"{title}: {detail}\n")
        response.force_close()
        return response


class _EdgeServer(web.Server):
    """aiohttp's low-level server (no Application, no router) with our connection handler."""

    def __call__(self) -> web_protocol.RequestHandler:
        return _EdgeRequestHandler(self, loop=self._loop, **self._kwargs)

    def _make_request(
        self,
        message: RawRequestMessage,
        payload: StreamReader,
        protocol: web_protocol.RequestHandler,
        writer: AbstractStreamWriter,
        task: Any,
    ) -> web.BaseRequest:
        _speak_http11(writer)
        return super()._make_request(message, payload, protocol, writer, task)


_STATUS_VERSION = "HTTP/1.1"


def _speak_http11(writer: AbstractStreamWriter) -> None:
    """Make ``writer`` send every status line as ``HTTP/1.1`` (RFC 9110 §6.2: a server sends
    the highest minor version it conforms to, never the client's). aiohttp writes the client's
    version; the framing it picks for that version (no chunking for 1.0) stays as it is."""
    write_headers = writer.write_headers

    async def write_http11(status_line: str, headers: CIMultiDict[str]) -> None:
        if not status_line.startswith(_STATUS_VERSION):
            status_line = _STATUS_VERSION + status_line[8:]
        await write_headers(status_line, headers)

    writer.write_headers = write_http11  # type: ignore[method-assign]


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


def check_head(raw_headers: tuple[tuple[bytes, bytes], ...], proxy: ProxyConfig) -> None:
    """Reject a request whose header fields exceed ``proxy.max_header_bytes`` in total (431),
    or have a value that is not UTF-8 (400: it could not be forwarded byte-exact)."""
    total = 0
    for name, value in raw_headers:
        total += len(name) + len(value) + 4
        if not value.isascii():
            _check_utf8(name, value)
    if total > proxy.max_header_bytes:
        raise RequestRejected(
            431,
            f"request header fields total {total} bytes, "
            f"over the limit of {proxy.max_header_bytes}",
        )


def _check_utf8(name: bytes, value: bytes) -> None:
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        field = name.decode("ascii", "replace")[:64]
        raise RequestRejected(
            400, f"the value of the {field!r} field is not UTF-8", close=True
        ) from None


def check_message(
    version: HttpVersion, method: str, *, has_body: bool, transfer_coding: str | None = None
) -> None:
    """Reject what this node does not serve: HTTP other than 1.x (505), a transfer coding
    other than ``chunked`` (501) or any on HTTP/1.0 (400), TRACE and CONNECT (405), and GET or
    HEAD with a body (400, see the module docstring).

    ``transfer_coding`` is the request's ``Transfer-Encoding``, all fields joined.
    """
    if version.major != 1:
        raise RequestRejected(
            505, f"HTTP/{version.major}.{version.minor} is not supported here; use HTTP/1.1"
        )
    if transfer_coding is not None:
        _check_transfer_coding(version, transfer_coding)
    if method in REFUSED_METHODS:
        raise RequestRejected(
            405,
            f"{method} is not allowed on this CDN",
            fields=(("Allow", ALLOWED_METHODS),),
        )
    if has_body and method in BODYLESS_METHODS:
        raise RequestRejected(
            400, f"a {method} request must not have a body (RFC 9110 §9.3)", close=True
        )


def check_body_size(content_length: int | None, proxy: ProxyConfig) -> None:
    """Reject a request whose declared body is larger than ``proxy.max_request_body_bytes``."""
    if content_length is not None and content_length > proxy.max_request_body_bytes:
        raise RequestRejected(
            413,
            f"request body of {content_length} bytes is over the limit of "
            f"{proxy.max_request_body_bytes}",
        )


def _check_transfer_coding(version: HttpVersion, value: str) -> None:
    if version.minor == 0:
        # RFC 9112 §6.1: Transfer-Encoding in HTTP/1.0 means the framing is faulty.
        raise RequestRejected(
            400, "Transfer-Encoding is not defined in HTTP/1.0 (RFC 9112 §6.1)", close=True
        )
    codings = [c.strip().lower() for c in value.split(",") if c.strip()]  # RFC 9110 §5.6.1
    if codings != ["chunked"]:
        # RFC 9112 §6.1: a coding the server does not understand is 501. Only chunked is
        # decoded here; forwarding "gzip, chunked" as plain chunked would change the body.
        raise RequestRejected(
            501, "only the chunked transfer coding is supported on requests", close=True
        )


def transfer_coding(headers: CIMultiDictProxy[str]) -> str | None:
    """Every ``Transfer-Encoding`` of a request joined (RFC 9110 §5.3), or None."""
    if "Transfer-Encoding" not in headers:
        return None
    return ", ".join(headers.getall("Transfer-Encoding"))
