"""Bad input: the limits the data listener enforces and the clear errors it answers with.

The data plane's own server (:mod:`edge.server`) applies the framing rules of RFC 9112 before
any handler runs (malformed request lines, bare CR or LF, obs-fold, control bytes, conflicting
or repeated ``Content-Length`` / ``Transfer-Encoding``, unknown codings, versions other than
1.x, over-long lines and heads), within the limits :func:`server_limits` derives from
``[proxy]``, and writes every status line as ``HTTP/1.1`` (RFC 9110 §6.2). The handler then
checks what is policy rather than framing (:func:`check_head`, :func:`check_message`):
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

from cdn_core.config import ProxyConfig
from edge.server import HttpVersion, ServerLimits

log = logging.getLogger(__name__)

MAX_HEADER_FIELDS = 256


def server_limits(proxy: ProxyConfig) -> ServerLimits:
    """The data plane server's limits from ``[proxy]``."""
    return ServerLimits(
        max_line_bytes=proxy.max_header_bytes,
        max_field_bytes=proxy.max_header_bytes,
        max_fields=MAX_HEADER_FIELDS,
        max_head_bytes=2 * proxy.max_header_bytes,  # the request line and the fields
        max_body_bytes=proxy.max_request_body_bytes,
        keepalive_timeout_s=proxy.keepalive_timeout_s,
    )


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


def transfer_coding(raw_headers: tuple[tuple[bytes, bytes], ...]) -> str | None:
    """Every ``Transfer-Encoding`` of a request joined (RFC 9110 §5.3), or None."""
    values = [v for k, v in raw_headers if k.lower() == b"transfer-encoding"]
    if not values:
        return None
    return b", ".join(values).decode("latin-1")
