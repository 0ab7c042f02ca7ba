"""Bad input: the limits the data listener enforces and the clear errors it answers with.

The data plane's own server (:mod:`edge.server`) applies the framing rules of RFC 9112 before
any handler runs (malformed request lines, bare CR or LF, obs-fold, control bytes, conflicting
or repeated ``Content-Length`` / ``Transfer-Encoding``, unknown codings, versions other than
1.x, over-long lines and heads), within the limits :func:`server_limits` derives from
``[proxy]``, and writes every status line as ``HTTP/1.1`` (RFC 9110 §6.2). The handler then
checks what is policy rather than framing (:func:`check_head`, :func:`check_message`):
the total header bytes (``proxy.max_header_bytes``), field values that are not UTF-8 (refused,
so that what is forwarded is byte-exact), TRACE and CONNECT (405) and a body on GET or HEAD
(400: see below). Versions, transfer codings and body sizes are the server's alone.

A GET or HEAD with a body is refused, not forwarded: a body has no defined meaning on them
(RFC 9110 §9.3.1), caches key them without it, and a node that dropped the body but kept its
framing would desynchronise the next hop (request smuggling). ``Content-Length: 0`` is no body.
"""

from __future__ import annotations

import logging

from cdn_core.config import ProxyConfig
from edge.server import ServerLimits

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


def check_message(method: str, *, has_body: bool) -> None:
    """Reject what this node does not serve: TRACE and CONNECT (405), and GET or HEAD with a
    body (400, see the module docstring)."""
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
