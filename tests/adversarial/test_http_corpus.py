"""Hostile HTTP/1.1 requests against real edges: each case's answer, what reached the origin,
and that no connection of the overlay is left out of step afterwards.

Each :class:`Case` is raw bytes sent to an edge on a fresh connection, with ``{P}`` standing for
the case's own path (``/c/<id>/``) and ``{H}`` for its host (``www.cdn.test`` goes through the
shield, ``direct.cdn.test`` straight to the origin). The case names the statuses allowed and the
requests the origin must have seen when the answer is a 2xx; on any other answer the origin must
have seen nothing of the case (neither parsed nor in its raw byte streams). After every case,
:meth:`HttpOverlay.assert_in_sync` sends clean requests for fresh paths through both edges and
both paths (misses, so they ride the pooled upstream connections the case may have touched).

References: RFC 9112 §2.2 (bare CR, message parsing), §3 (request line, absolute-form §3.2.2,
Host §3.2), §5.2 (obs-fold), §6.1 (Transfer-Encoding), §6.3 (message body length), §7.1
(chunked); RFC 9110 §5.5 (field values), §7.2 (Host), §9.3.8 (TRACE), §10.1.1 (Expect),
§15.5.20 (421); RFC 6585 §5 (431).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import pytest

from tests.adversarial.http_harness import (
    CLIENT_IP,
    DIRECT,
    MAX_BODY,
    SHIELD_SOURCE,
    SITE,
    Exchange,
    HttpOverlay,
    Reader,
    Seen,
    connect,
    echo_line,
    exchange,
    get,
)

# -- the table -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Up:
    """One request the origin must see: method, target, Host, body and chosen fields."""

    method: str | tuple[str, ...] = "GET"
    target: str = "{P}"
    host: str = "{H}"
    body: bytes | None = None  # None: no body, and neither Content-Length nor Transfer-Encoding
    chunked_ok: bool = False  # the body may go up chunked (the client sent it chunked)
    absent: tuple[str, ...] = ()  # fields that must not reach the origin
    equal: tuple[tuple[str, bytes], ...] = ()  # fields that must arrive with exactly this value
    present: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Case:
    id: str
    raw: bytes
    status: frozenset[int] | tuple[frozenset[int], ...]  # per response when a tuple
    up: tuple[Up, ...] = ()  # what the origin sees when every answer is a 2xx
    host: str = SITE
    edge: str = "edge-1"
    closes: bool = False  # a 4xx answer must be followed by closing the connection
    heads: tuple[bool, ...] = ()  # which answers are to HEAD requests
    allow: bool = False  # the answer must carry an Allow field
    partial_ok: bool = False  # the origin may have seen a body that broke off (not complete)

    @property
    def path(self) -> str:
        return f"/c/{self.id}/"

    @property
    def statuses(self) -> tuple[frozenset[int], ...]:
        return self.status if isinstance(self.status, tuple) else (self.status,)

    def data(self) -> bytes:
        return self.raw.replace(b"{P}", self.path.encode()).replace(b"{H}", self.host.encode())

    def fill(self, text: str) -> str:
        return text.replace("{P}", self.path).replace("{H}", self.host)


def http(request_line: str, *fields: str, body: bytes | str = b"", end: str = "\r\n") -> bytes:
    """A request head from its lines (latin-1: ``\\xe9`` is the byte 0xE9), then ``body``."""
    head = "".join(f"{line}{end}" for line in (request_line, *fields)) + end
    data = body.encode("latin-1") if isinstance(body, str) else body
    return head.encode("latin-1") + data


def s(*codes: int) -> frozenset[int]:
    return frozenset(codes)


CASES: list[Case] = []
_IDS: set[str] = set()


def case(id: str, raw: bytes, status: int | frozenset[int] | list[int], **kw: object) -> None:
    assert id not in _IDS, id
    _IDS.add(id)
    allowed: frozenset[int] | tuple[frozenset[int], ...]
    if isinstance(status, int):
        allowed = s(status)
    elif isinstance(status, list):  # one status per pipelined answer
        allowed = tuple(s(c) for c in status)
    else:
        allowed = status
    CASES.append(Case(id=id, raw=raw, status=allowed, **kw))  # type: ignore[arg-type]


HOST = "Host: {H}"
PATHS = ((SITE, "shield"), (DIRECT, "direct"))
CHUNKED_HELLO = "5\r\nhello\r\n0\r\n\r\n"
GET_P = "GET {P} HTTP/1.1"
POST_P = "POST {P} HTTP/1.1"

# 0. Baseline: well-formed requests are served (proves the harness).
for host, tag in PATHS:
    case(f"ok-get-{tag}", http(GET_P, HOST), 200, host=host, up=(Up(),))
    case(
        f"ok-head-{tag}",
        http("HEAD {P} HTTP/1.1", HOST),
        200,
        host=host,
        heads=(True,),
        up=(Up(method=("GET", "HEAD")),),
    )
case(
    "ok-conditional",
    http(GET_P, HOST, 'If-None-Match: "v1"', "If-Modified-Since: Sun, 06 Nov 1994 08:49:37 GMT"),
    200,
    up=(Up(absent=("if-none-match", "if-modified-since")),),
)
case("ok-range", http(GET_P, HOST, "Range: bytes=0-3"), 206, up=(Up(absent=("range",)),))
case("ok-edge-2", http(GET_P, HOST), 200, edge="edge-2", up=(Up(),))

# 1. GET/HEAD with a body: 400 and close; a POST body goes up exactly as sent.
for host, tag in PATHS:
    edge = "edge-1" if tag == "shield" else "edge-2"
    kw: dict[str, object] = {"host": host, "edge": edge, "closes": True}
    case(f"body-get-cl-{tag}", http(GET_P, HOST, "Content-Length: 5", body="hello"), 400, **kw)
    case(
        f"body-get-cl62-{tag}",
        http(GET_P, HOST, "Content-Length: 62", body=b"x" * 62),
        400,
        **kw,
    )
    case(f"body-get-cl-unsent-{tag}", http(GET_P, HOST, "Content-Length: 62"), 400, **kw)
    case(
        f"body-head-cl-{tag}",
        http("HEAD {P} HTTP/1.1", HOST, "Content-Length: 5", body="hello"),
        400,
        heads=(True,),
        **kw,
    )
    case(
        f"body-get-te-{tag}",
        http(GET_P, HOST, "Transfer-Encoding: chunked", body=CHUNKED_HELLO),
        400,
        **kw,
    )
    case(
        f"body-get-te-empty-{tag}",
        http(GET_P, HOST, "Transfer-Encoding: chunked", body="0\r\n\r\n"),
        400,
        **kw,
    )
    case(
        f"body-head-te-{tag}",
        http("HEAD {P} HTTP/1.1", HOST, "Transfer-Encoding: chunked", body=CHUNKED_HELLO),
        400,
        heads=(True,),
        **kw,
    )
    case(
        f"body-get-cl-pipelined-{tag}",
        http(GET_P, HOST, "Content-Length: 5", body="hello")
        + http("GET {P}smuggled HTTP/1.1", HOST),
        400,
        **kw,
    )
    case(
        f"body-get-cl0-{tag}",
        http(GET_P, HOST, "Content-Length: 0"),
        200,
        host=host,
        edge=edge,
        up=(Up(),),
    )
    case(
        f"body-post-cl-{tag}",
        http(POST_P, HOST, "Content-Length: 11", body="hello world"),
        200,
        host=host,
        edge=edge,
        up=(Up(method="POST", body=b"hello world"),),
    )
    case(
        f"body-post-chunked-{tag}",
        http(
            POST_P,
            HOST,
            "Transfer-Encoding: chunked",
            body="5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
        ),
        200,
        host=host,
        edge=edge,
        up=(Up(method="POST", body=b"hello world", chunked_ok=True),),
    )
case(
    "body-get-te-identity",
    http(GET_P, HOST, "Transfer-Encoding: identity"),
    s(400, 501),
    closes=True,
)
case(
    "body-head-cl0",
    http("HEAD {P} HTTP/1.1", HOST, "Content-Length: 0"),
    200,
    heads=(True,),
    up=(Up(method=("GET", "HEAD")),),
)
case(
    "body-post-cl0",
    http(POST_P, HOST, "Content-Length: 0"),
    200,
    up=(Up(method="POST", body=b""),),
)
case(
    "body-put-cl",
    http("PUT {P} HTTP/1.1", HOST, "Content-Length: 5", body="hello"),
    200,
    up=(Up(method="PUT", body=b"hello"),),
)
_INNER = "GET /c/body-post-inner/smuggled HTTP/1.1\r\nHost: www.cdn.test\r\n\r\n"
case(
    "body-post-inner-request",
    http(POST_P, HOST, f"Content-Length: {len(_INNER)}", body=_INNER),
    200,
    up=(Up(method="POST", body=_INNER.encode()),),
)
case(
    "body-post-chunk-ext",
    http(POST_P, HOST, "Transfer-Encoding: chunked", body="5;name=value\r\nhello\r\n0\r\n\r\n"),
    s(200, 400),
    closes=True,
    up=(Up(method="POST", body=b"hello", chunked_ok=True),),
)
case(
    "body-post-trailer",
    http(POST_P, HOST, "Transfer-Encoding: chunked", body="5\r\nhello\r\n0\r\nX-T: 1\r\n\r\n"),
    s(200, 400),
    closes=True,
    up=(Up(method="POST", body=b"hello", chunked_ok=True),),
)

# 2. Host: the matched hostname goes up, normalised; anything else is refused.
for host, tag in PATHS:
    case(
        f"host-absform-{tag}",
        http("GET http://{H}{P} HTTP/1.1", "Host: evil.example"),
        200,
        host=host,
        up=(Up(),),
    )
    case(f"host-port-{tag}", http(GET_P, "Host: {H}:8080"), 200, host=host, up=(Up(),))
    case(
        f"host-upper-dot-{tag}",
        http(GET_P, f"Host: {host.upper()}."),
        200,
        host=host,
        up=(Up(),),
    )
    case(f"host-dup-diff-{tag}", http(GET_P, HOST, "Host: evil.example"), 400, host=host)
    case(
        f"host-absform-foreign-{tag}",
        http("GET http://evil.example{P} HTTP/1.1", HOST),
        421,
        host=host,
    )
case("host-unknown", http(GET_P, "Host: evil.example"), 421)
case("host-unknown-subdomain", http(GET_P, "Host: evil.www.cdn.test"), 421)
case(
    "host-absform-userinfo",
    http("GET http://{H}@evil.example{P} HTTP/1.1", HOST),
    s(400, 421),
)
case("host-dup-same", http(GET_P, HOST, HOST), 400)
case("host-empty", http(GET_P, "Host: "), 400)
case("host-missing", http(GET_P, "Accept: */*"), 400)
case("host-userinfo", http(GET_P, "Host: user@{H}"), s(400, 421))
case("host-list", http(GET_P, "Host: {H}, evil.example"), s(400, 421))
case("host-with-path", http(GET_P, "Host: {H}/x"), s(400, 421))
case("host-inner-space", http(GET_P, "Host: www.cdn .test"), s(400, 421))
case("host-missing-http10", http("GET {P} HTTP/1.0", "Accept: */*"), s(400, 421))

# 3. Unkeyed client fields never reach the origin; X-Forwarded-For is the client alone.
UNKEYED = {
    "X-Forwarded-Host": "evil.example",
    "X-Forwarded-Proto": "https",
    "X-Forwarded-Port": "1337",
    "X-Forwarded-Prefix": "/evil",
    "X-Forwarded-Server": "evil.example",
    "Forwarded": "for=6.6.6.6;host=evil.example;proto=https",
    "X-Original-URL": "/admin",
    "X-Rewrite-URL": "/admin",
    "X-Original-Host": "evil.example",
    "X-Host": "evil.example",
    "X-HTTP-Method-Override": "DELETE",
    "X-HTTP-Method": "DELETE",
    "X-Method-Override": "DELETE",
    "X-Real-IP": "6.6.6.6",
}
XFF = ("x-forwarded-for", CLIENT_IP.encode())
XFP = ("x-forwarded-proto", b"http")


def unkeyed_up(name: str) -> Up:
    if name.lower() == "x-forwarded-proto":
        return Up(equal=(XFP,))
    return Up(absent=(name.lower(),))


for host, tag in PATHS:
    edge = "edge-2" if tag == "shield" else "edge-1"
    for name, value in UNKEYED.items():
        case(
            f"unkeyed-{name.lower()}-{tag}",
            http(GET_P, HOST, f"{name}: {value}"),
            200,
            host=host,
            edge=edge,
            up=(unkeyed_up(name),),
        )
    case(
        f"unkeyed-xff-{tag}",
        http(GET_P, HOST, "X-Forwarded-For: 6.6.6.6"),
        200,
        host=host,
        edge=edge,
        up=(Up(equal=(XFF, XFP), present=("via",)),),
    )
    case(
        f"unkeyed-all-{tag}",
        http(
            GET_P,
            HOST,
            "X-Forwarded-For: 6.6.6.6, 7.7.7.7",
            "X-Forwarded-For: 8.8.8.8",
            *(f"{k}: {v}" for k, v in UNKEYED.items()),
        ),
        200,
        host=host,
        edge=edge,
        up=(
            Up(
                equal=(XFF, XFP),
                present=("via",),
                absent=tuple(k.lower() for k in UNKEYED if k != "X-Forwarded-Proto"),
            ),
        ),
    )
    case(
        f"unkeyed-overlay-{tag}",
        http(
            GET_P,
            HOST,
            "X-Overlay-Route: shield-1",
            "X-Overlay-Node: edge-1",
            "X-Overlay-Time: 1",
            "X-Overlay-Auth: v1=" + "0" * 64,
            "X-Overlay-Error: none",
            "X-Overlay-Evil: 1",
        ),
        200,
        host=host,
        edge=edge,
        up=(Up(),),  # no X-Overlay-* ever reaches the origin (checked for every case)
    )
# CGI, WSGI and PHP origins read X_Forwarded_Host as X-Forwarded-Host: underscores are dropped.
for host, tag in PATHS:
    case(
        f"unkeyed-underscore-{tag}",
        http(GET_P, HOST, "X_Forwarded_Host: evil.example", "X-FORWARDED_HOST: evil.example"),
        200,
        host=host,
        up=(Up(absent=("x_forwarded_host", "x-forwarded_host")),),
    )
case(
    "unkeyed-mixed-case",
    http(GET_P, HOST, "x-FORWARDED-host: evil.example", "FORWARDED: host=evil.example"),
    200,
    up=(Up(absent=("x-forwarded-host", "forwarded")),),
)

# Hop-by-hop abuse: a field named in Connection is the client's hop only; what the node itself
# sends up (Host, X-Forwarded-For, Via, the body framing) stays (RFC 9110 §7.6.1).
for host, tag in PATHS:
    case(
        f"hop-connection-xff-{tag}",
        http(GET_P, HOST, "Connection: X-Forwarded-For, Via, Host", "X-Forwarded-For: 6.6.6.6"),
        200,
        host=host,
        up=(Up(equal=(XFF,), present=("via",), absent=("connection",)),),
    )
case(
    "hop-connection-cl",
    http(POST_P, HOST, "Connection: Content-Length", "Content-Length: 5", body="hello"),
    s(200, 400),
    closes=True,
    up=(Up(method="POST", body=b"hello"),),
)
case(
    "hop-connection-te",
    http(
        POST_P,
        HOST,
        "Connection: Transfer-Encoding",
        "Transfer-Encoding: chunked",
        body=CHUNKED_HELLO,
    ),
    s(200, 400),
    closes=True,
    up=(Up(method="POST", body=b"hello", chunked_ok=True),),
)
case(
    "hop-upgrade-h2c",
    http(
        GET_P,
        HOST,
        "Connection: Upgrade, HTTP2-Settings",
        "Upgrade: h2c",
        "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA",
    ),
    200,
    up=(Up(absent=("upgrade", "http2-settings", "connection")),),
)
case(
    "hop-upgrade-websocket",
    http(
        GET_P,
        HOST,
        "Connection: Upgrade",
        "Upgrade: websocket",
        "Sec-WebSocket-Version: 13",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
    ),
    s(200, 400, 501),
    up=(Up(absent=("upgrade", "connection")),),
)
case(
    "hop-keep-alive-field",
    http(GET_P, HOST, "Connection: keep-alive, X-Secret", "Keep-Alive: timeout=5", "X-Secret: 1"),
    200,
    up=(Up(absent=("keep-alive", "x-secret", "connection")),),
)

# 4. Expect: 100-continue works; any other expectation is 417.
case(
    "expect-100-inline",
    http(POST_P, HOST, "Expect: 100-continue", "Content-Length: 5", body="hello"),
    200,
    up=(Up(method="POST", body=b"hello", absent=("expect",)),),
)
case(
    "expect-other",
    http(POST_P, HOST, "Expect: something", "Content-Length: 5", body="hello"),
    417,
)
case("expect-other-get", http(GET_P, HOST, "Expect: something"), 417)
case("expect-list", http(GET_P, HOST, "Expect: 100-continue, something"), 417)
case("expect-non-ascii", http(GET_P, HOST, "Expect: 100-cont\xc3\xafnue"), 417)
case("expect-non-utf8", http(GET_P, HOST, "Expect: 100-continue\xff"), s(400, 417))

# 5. TRACE and CONNECT are not for a cache.
for host, tag in PATHS:
    case(f"method-trace-{tag}", http("TRACE {P} HTTP/1.1", HOST), 405, host=host, allow=True)
case(
    "method-trace-body",
    http("TRACE {P} HTTP/1.1", HOST, "Content-Length: 5", body="hello"),
    s(400, 405),
)
case("method-connect", http("CONNECT {H}:80 HTTP/1.1", "Host: {H}:80"), s(400, 405))
case("method-connect-origin-form", http("CONNECT {P} HTTP/1.1", HOST), s(400, 405))

# 6. The status line is always HTTP/1.1; HTTP/2 and later on an HTTP/1 connection are 505.
for host, tag in PATHS:
    case(f"version-10-{tag}", http("GET {P} HTTP/1.0", HOST), 200, host=host, up=(Up(),))
case(
    "version-10-keepalive",
    http("GET {P} HTTP/1.0", HOST, "Connection: keep-alive"),
    200,
    up=(Up(absent=("connection",)),),
)
case("version-20", http("GET {P} HTTP/2.0", HOST), 505)
case("version-30", http("GET {P} HTTP/3.0", HOST), 505)
case("version-12", http("GET {P} HTTP/1.2", HOST), s(200, 505), up=(Up(),))
case("version-09", b"GET {P}\r\n\r\n", s(400, 505))
case("version-lowercase", http("GET {P} http/1.1", HOST), s(400, 505))
case("version-no-minor", http("GET {P} HTTP/2", HOST), s(400, 505))
case("version-trailing-space", http("GET {P} HTTP/1.1 ", HOST), 400)
case("version-prism", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", s(400, 505))

# 7. Field values must be UTF-8 (and then go up byte for byte).
for host, tag in PATHS:
    case(f"utf8-bad-value-{tag}", http(GET_P, HOST, "X-A: caf\xe9"), 400, host=host)
    case(
        f"utf8-good-value-{tag}",
        http(GET_P, HOST, "X-A: caf\xc3\xa9"),
        200,
        host=host,
        up=(Up(equal=(("x-a", "café".encode()),)),),
    )
case("utf8-bad-name", http(GET_P, HOST, "X-\xe9: a"), 400)
case("utf8-overlong", http(GET_P, HOST, "X-A: \xc0\xaf"), 400)
case("utf8-surrogate", http(GET_P, HOST, "X-A: \xed\xa0\x80"), 400)
case(
    "utf8-good-4byte",
    http(GET_P, HOST, "X-A: \xf0\x9f\x92\xa9"),
    200,
    up=(Up(equal=(("x-a", b"\xf0\x9f\x92\xa9"),)),),
)

# 8. Framing: anything that two parsers could read differently is refused.
CL5 = "Content-Length: 5"
TE = "Transfer-Encoding: chunked"
POST_HELLO = Up(method="POST", body=b"hello")
POST_CHUNKED = Up(method="POST", body=b"hello", chunked_ok=True)
frame: dict[str, object] = {"closes": True}
for host, tag in PATHS:
    case(
        f"frame-cl-te-{tag}",
        http(POST_P, HOST, CL5, TE, body=CHUNKED_HELLO),
        400,
        host=host,
        **frame,
    )
    case(
        f"frame-te-cl-{tag}",
        http(POST_P, HOST, TE, CL5, body=CHUNKED_HELLO),
        400,
        host=host,
        **frame,
    )
    case(
        f"frame-cl-diff-{tag}",
        http(POST_P, HOST, CL5, "Content-Length: 6", body="hello!"),
        400,
        host=host,
        **frame,
    )
case(
    "frame-cl-te-get",
    http(GET_P, HOST, "Content-Length: 3", TE, body="0\r\n\r\n"),
    400,
    **frame,
)
case("frame-cl-same", http(POST_P, HOST, CL5, CL5, body="hello"), s(200, 400), up=(POST_HELLO,))
for id, value in [
    ("list", "5, 5"),
    ("list-diff", "5, 6"),
    ("plus", "+5"),
    ("minus", "-5"),
    ("inner-space", "1 1"),
    ("hex", "0x5"),
    ("dot", "5.0"),
    ("empty", ""),
    ("letters", "five"),
]:
    case(
        f"frame-cl-{id}",
        http(POST_P, HOST, f"Content-Length: {value}".rstrip(), body="hello"),
        400,
        **frame,
    )
case(
    "frame-cl-huge",
    http(POST_P, HOST, "Content-Length: " + "9" * 30, body="hello"),
    s(400, 413),
    **frame,
)
for id, fields, codes in [
    ("xchunked", ["Transfer-Encoding: xchunked"], s(400, 501)),
    ("chunked-x", ["Transfer-Encoding: chunked, x"], s(400)),
    ("space-colon", ["Transfer-Encoding : chunked"], s(400)),
    ("gzip-chunked", ["Transfer-Encoding: gzip, chunked"], s(400, 501)),
    ("chunked-chunked", ["Transfer-Encoding: chunked, chunked"], s(400, 501)),
    ("two-fields", [TE, TE], s(400, 501)),
    ("vtab", ["Transfer-Encoding: \x0bchunked"], s(400)),
    ("quoted", ['Transfer-Encoding: "chunked"'], s(400, 501)),
    ("comma-first", ["Transfer-Encoding: , chunked"], s(200, 400)),
]:
    up = (POST_CHUNKED,) if 200 in codes else ()
    case(f"frame-te-{id}", http(POST_P, HOST, *fields, body=CHUNKED_HELLO), codes, up=up, **frame)
case(
    "frame-te-tab",
    http(POST_P, HOST, "Transfer-Encoding:\tchunked", body=CHUNKED_HELLO),
    s(200, 400),
    up=(POST_CHUNKED,),
    **frame,
)
case(
    "frame-te-upper",
    http(POST_P, HOST, "Transfer-Encoding: CHUNKED", body=CHUNKED_HELLO),
    s(200, 400),
    up=(POST_CHUNKED,),
    **frame,
)
case(
    "frame-te-http10",
    http("POST {P} HTTP/1.0", HOST, TE, body=CHUNKED_HELLO),
    400,
    **frame,
)
for id, body in [
    ("size-overflow", "FFFFFFFFFFFFFFFFFFFFFFFF\r\nhello\r\n0\r\n\r\n"),
    ("size-negative", "-5\r\nhello\r\n0\r\n\r\n"),
    ("size-0x", "0x5\r\nhello\r\n0\r\n\r\n"),
    ("size-plus", "+5\r\nhello\r\n0\r\n\r\n"),
    ("size-empty", "\r\nhello\r\n0\r\n\r\n"),
    ("ext-nul", "5;\x00\r\nhello\r\n0\r\n\r\n"),
    ("ext-unterminated-quote", '5;a="b\r\nhello\r\n0\r\n\r\n'),
    ("ext-bare-lf", "5;a=b\nhello\r\n0\r\n\r\n"),
    ("missing-crlf", "5\r\nhelloXX0\r\n\r\n"),
    ("data-too-long", "3\r\nhello\r\n0\r\n\r\n"),
    ("lf-only", "5\nhello\n0\n\n"),
    ("bare-cr", "5\rhello\r\n0\r\n\r\n"),
]:
    case(f"frame-chunk-{id}", http(POST_P, HOST, TE, body=body), 400, **frame)
for id, raw in [
    ("fold-field", http(GET_P, HOST, "X-A: a", " b")),
    ("fold-field-tab", http(GET_P, HOST, "X-A: a", "\tb")),
    ("fold-te", http(POST_P, HOST, "Transfer-Encoding:", " chunked", body=CHUNKED_HELLO)),
    ("fold-host", http(GET_P, HOST, " .evil.example")),
    ("fold-first-line", http(GET_P, " X-A: b", HOST)),
    ("bare-lf", http(GET_P, HOST, "X-A: b", end="\n")),
    ("bare-lf-field", b"GET {P} HTTP/1.1\r\nHost: {H}\nX-A: b\r\n\r\n"),
    ("bare-lf-end", http(GET_P, HOST)[:-2] + b"\n"),
    ("bare-lf-request-line", http(GET_P, HOST).replace(b"HTTP/1.1\r\n", b"HTTP/1.1\n")),
    ("bare-cr-field", http(GET_P, HOST, "X-A: a\rX-B: b")),
    ("bare-cr-request-line", http(GET_P, HOST).replace(b"HTTP/1.1\r\n", b"HTTP/1.1\r")),
    ("ctl-nul-target", http("GET {P}\x00 HTTP/1.1", HOST)),
    ("ctl-01-target", http("GET {P}\x01 HTTP/1.1", HOST)),
    ("ctl-del-target", http("GET {P}\x7f HTTP/1.1", HOST)),
    ("ctl-tab-target", http("GET {P}a\tb HTTP/1.1", HOST)),
    ("ctl-space-target", http("GET {P}a b HTTP/1.1", HOST)),
    ("ctl-nul-value", http(GET_P, HOST, "X-A: a\x00b")),
    ("ctl-01-value", http(GET_P, HOST, "X-A: a\x01b")),
    ("ctl-del-value", http(GET_P, HOST, "X-A: a\x7fb")),
    ("ctl-nul-name", http(GET_P, HOST, "X-\x00A: b")),
    ("ctl-space-name", http(GET_P, HOST, "X A: b")),
    ("ctl-colon-missing", http(GET_P, HOST, "X-A b")),
    ("ctl-empty-name", http(GET_P, HOST, ": b")),
    ("ctl-nul-method", http("G\x00ET {P} HTTP/1.1", HOST)),
]:
    case(f"frame-{id}", raw, 400, **frame)

# Limits (proxy.max_header_bytes = 16 KiB, proxy.max_request_body_bytes = 64 KiB).
case("limit-request-line", http("GET {P}" + "a" * 20_000 + " HTTP/1.1", HOST), s(414, 431))
case("limit-field", http(GET_P, HOST, "X-A: " + "a" * 20_000), 431)
case("limit-field-count", http(GET_P, HOST, *(f"X-{i}: {i}" for i in range(300))), 431)
case(
    "limit-field-total",
    http(GET_P, HOST, *(f"X-{i}: {'a' * 200}" for i in range(100))),
    431,
)
case("limit-body-cl", http(POST_P, HOST, f"Content-Length: {MAX_BODY + 1}"), 413)
_BIG = f"{MAX_BODY:x}\r\n{'a' * MAX_BODY}\r\n10\r\n{'b' * 16}\r\n0\r\n\r\n"
case("limit-body-chunked", http(POST_P, HOST, TE, body=_BIG), 413, partial_ok=True)

# Pipelining: nothing after a bad request reaches the origin; good ones come back in order.
NEXT = http("GET {P}next HTTP/1.1", HOST)
for id, raw in [
    ("cl-invalid", http(GET_P, HOST, "Content-Length: 1 1")),
    ("get-body", http(GET_P, HOST, CL5, body="hello")),
    ("cl-te", http(POST_P, HOST, CL5, TE, body=CHUNKED_HELLO)),
    ("fold", http(GET_P, HOST, "X-A: a", " b")),
    ("non-utf8", http(GET_P, HOST, "X-A: caf\xe9")),
    ("dup-host", http(GET_P, HOST, "Host: evil.example")),
    ("bad-chunk", http(POST_P, HOST, TE, body="zz\r\nhello\r\n0\r\n\r\n")),
]:
    case(f"pipe-after-{id}", raw + NEXT, 400, closes=True)
case(
    "pipe-3-gets",
    http("GET {P}1 HTTP/1.1", HOST)
    + http("GET {P}2 HTTP/1.1", HOST)
    + http("GET {P}3 HTTP/1.1", HOST),
    [200, 200, 200],
    up=(Up(target="{P}1"), Up(target="{P}2"), Up(target="{P}3")),
)
case(
    "pipe-get-head-get",
    http("GET {P}1 HTTP/1.1", HOST)
    + http("HEAD {P}2 HTTP/1.1", HOST)
    + http("GET {P}3 HTTP/1.1", HOST),
    [200, 200, 200],
    heads=(False, True, False),
    up=(Up(target="{P}1"), Up(method=("GET", "HEAD"), target="{P}2"), Up(target="{P}3")),
)
case(
    "pipe-post-get",
    http("POST {P}1 HTTP/1.1", HOST, CL5, body="hello") + http("GET {P}2 HTTP/1.1", HOST),
    [200, 200],
    up=(Up(method="POST", target="{P}1", body=b"hello"), Up(target="{P}2")),
)
case(
    "pipe-chunked-post-get",
    http("POST {P}1 HTTP/1.1", HOST, TE, body=CHUNKED_HELLO) + http("GET {P}2 HTTP/1.1", HOST),
    [200, 200],
    edge="edge-2",
    up=(Up(method="POST", target="{P}1", body=b"hello", chunked_ok=True), Up(target="{P}2")),
)
case(
    "pipe-cl0-get",
    http("GET {P}1 HTTP/1.1", HOST, "Content-Length: 0") + http("GET {P}2 HTTP/1.1", HOST),
    [200, 200],
    up=(Up(target="{P}1"), Up(target="{P}2")),
)


# -- checking one case -------------------------------------------------------------------------


def expected_body(up: Up, case: Case) -> str:
    method = up.method if isinstance(up.method, str) else up.method[0]
    text = echo_line(method, case.fill(up.target), case.fill(up.host))
    if up.body is not None:
        text += f" body={len(up.body)}"
    return text + "\n"


def check_seen(seen: Seen, up: Up, case: Case, overlay: HttpOverlay) -> list[str]:
    """What is wrong with one request the origin saw, against what the case expects."""
    problems = []
    methods = (up.method,) if isinstance(up.method, str) else up.method
    if seen.method not in methods:
        problems.append(f"method {seen.method!r}, not {methods}")
    if seen.target != case.fill(up.target):
        problems.append(f"target {seen.target!r}, not {case.fill(up.target)!r}")
    hosts = seen.values("host")
    if hosts != [case.fill(up.host).encode()]:
        problems.append(f"Host {hosts!r}, not [{case.fill(up.host)!r}]")
    cl, te = seen.values("content-length"), seen.values("transfer-encoding")
    if up.body is None:
        if cl or te or seen.body:
            problems.append(f"a body went up: CL={cl!r} TE={te!r} body={seen.body[:80]!r}")
    else:
        if seen.body != up.body:
            problems.append(f"body {seen.body[:200]!r}, not {up.body[:200]!r}")
        chunked = up.chunked_ok and te == [b"chunked"] and not cl
        sized = cl == [str(len(up.body)).encode()] and not te
        empty = not up.body and not cl and not te
        if not (chunked or sized or empty):
            problems.append(f"body framed as CL={cl!r} TE={te!r} for {len(up.body)} bytes")
    overlay_fields = [n for n in seen.names() if n.startswith("x-overlay-")]
    if overlay_fields:
        problems.append(f"overlay fields reached the origin: {overlay_fields}")
    for name in up.absent:
        if seen.values(name):
            problems.append(f"{name} reached the origin: {seen.values(name)!r}")
    for name, value in up.equal:
        if seen.values(name) != [value]:
            problems.append(f"{name} is {seen.values(name)!r}, not [{value!r}]")
    for name in up.present:
        if not seen.values(name):
            problems.append(f"{name} missing at the origin")
    peer = SHIELD_SOURCE if case.host == SITE else overlay.specs[case.edge].source_address
    if seen.peer != peer:
        problems.append(f"came from {seen.peer}, not {peer} (the wrong path)")
    if seen.body_error:
        problems.append(f"the body broke off: {seen.body_error}")
    return problems


def run_case(case: Case, overlay: HttpOverlay) -> Exchange:
    wanted = len(case.statuses)
    result = exchange(
        overlay.edge(case.edge),
        case.data(),
        responses=wanted,
        heads=case.heads,
        check_close=case.closes,
        close_wait_s=2.0,
        probe=case.fill(f"GET {{P}}probe HTTP/1.1\r\nHost: {case.host}\r\n\r\n").encode(),
    )
    return result


def verify_case(case: Case, result: Exchange, overlay: HttpOverlay) -> list[str]:
    problems: list[str] = []
    if result.error is not None or len(result.responses) < len(case.statuses):
        problems.append(f"no complete answer: {result.error}")
    for i, response in enumerate(result.responses):
        if not response.status_line.startswith(b"HTTP/1.1 "):
            problems.append(f"answer {i} has the status line {response.status_line!r}")
        for interim in response.interim:
            if not interim.status_line.startswith(b"HTTP/1.1 100 "):
                problems.append(f"answer {i} had the interim {interim.status_line!r}")
        if response.status not in case.statuses[i]:
            problems.append(
                f"answer {i} is {response.status}, not one of {sorted(case.statuses[i])}: "
                f"{response.body[:300]!r}"
            )
    statuses = [r.status for r in result.responses]
    served = bool(statuses) and all(200 <= c < 300 for c in statuses) and not problems
    if case.allow and result.responses and not result.responses[0].header("allow"):
        problems.append("no Allow field on the answer")
    if served:
        for i, (response, up) in enumerate(zip(result.responses, case.up, strict=False)):
            heads = i < len(case.heads) and case.heads[i]
            want = b"" if heads else expected_body(up, case).encode()
            if response.status == 200 and response.body != want:
                problems.append(f"answer {i} body {response.body[:200]!r}, not {want!r}")
    rejected = bool(statuses) and any(c >= 400 for c in statuses)
    if case.closes and rejected:
        last = result.responses[-1]
        says_close = "close" in (last.header("connection") or "").lower()
        if not (result.closing == "closed" or (result.closing == "lingering" and says_close)):
            problems.append(
                f"the connection stayed open after {statuses}: {result.closing} "
                f"({result.leftover[:200]!r})"
            )
    seen = overlay.origin.matching(case.path)
    if served:
        if len(seen) != len(case.up):
            problems.append(f"origin saw {len(seen)} requests, not {len(case.up)}: {seen!r}")
        else:
            for i, (one, up) in enumerate(zip(seen, case.up, strict=True)):
                problems += [f"origin request {i}: {p}" for p in check_seen(one, up, case, overlay)]
    else:
        complete = [x for x in seen if not (case.partial_ok and x.body_error)]
        if complete:
            problems.append(f"answered {statuses} but the origin saw {complete!r}")
        if not case.partial_ok and overlay.origin.raw_contains(case.path.encode()):
            problems.append("the case's bytes reached an origin connection")
    return problems


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_request(case: Case, http_overlay: HttpOverlay) -> None:
    assert not http_overlay.dead(), "a node died before this case"
    result = run_case(case, http_overlay)
    problems = verify_case(case, result, http_overlay)
    try:
        http_overlay.assert_in_sync(case.id)
    except AssertionError as exc:
        problems.append(f"after the case: {exc}")
    assert not problems, f"{case.data()[:300]!r}\n" + "\n".join(problems) + "\n" + result.describe()


def test_corpus_size() -> None:
    assert len(CASES) >= 60
    assert len({c.id for c in CASES}) == len(CASES)


# -- scenarios over several connections --------------------------------------------------------


@pytest.mark.parametrize("host", [SITE, DIRECT], ids=["shield", "direct"])
def test_get_with_body_smuggling_attack(host: str, http_overlay: HttpOverlay) -> None:
    """The original attack: a GET whose Content-Length body the overlay ignored, then a
    request carrying a smuggled request line in a field value. The origin never sees the
    smuggled request and no clean client gets an answer meant for another request."""
    tag = "shield" if host == SITE else "direct"
    base = f"/c/attack-{tag}"
    edges = [http_overlay.edge(e) for e in http_overlay.EDGES]
    filler = b"X" * 60 + b"\r\n"
    attack = http(f"GET {base}/a HTTP/1.1", f"Host: {host}", "Content-Length: 62") + filler
    exchange(edges[0], attack, check_close=True, close_wait_s=1.0)
    for i, edge in enumerate(edges):
        target = f"{base}/plain-{i}"
        response = get(edge, host, target, source="127.0.9.7")
        assert (response.status, response.body) == (
            200,
            (echo_line("GET", target, host) + "\n").encode(),
        ), response
    carrier = http(
        f"GET {base}/carrier HTTP/1.1",
        f"Host: {host}",
        f"X-Q: GET {base}/SMUGGLED HTTP/1.0",
    )
    exchange(edges[0], carrier)
    for i, edge in enumerate(edges):
        target = f"{base}/victim-{i}"
        response = get(edge, host, target, source="127.0.9.7")
        assert (response.status, response.body) == (
            200,
            (echo_line("GET", target, host) + "\n").encode(),
        ), response
    smuggled = [s for s in http_overlay.origin.seen if "SMUGGLED" in s.target]
    assert not smuggled, smuggled
    attacked = http_overlay.origin.with_target(f"{base}/a")
    assert not attacked, f"the GET with a body reached the origin: {attacked!r}"
    http_overlay.assert_in_sync("attack")


def _smuggle_offset(overlay: HttpOverlay, host: str, request: bytes, marker: bytes) -> int:
    """Where ``marker`` sits in ``request`` as the edge forwards it on the path of ``host``:
    read from the origin's raw bytes on the direct path, from a hop edge-3 sends to the
    recorder on the shield path (same node-name lengths, so the same layout)."""
    start = request.split(b" ", 2)[1]
    edge = "edge-1" if host == DIRECT else "edge-3"
    result = exchange(overlay.edge(edge), request, source="127.0.9.8")
    assert result.responses and result.responses[0].status == 200, result.describe()
    if host == DIRECT:
        streams = [s for s in overlay.origin.raw_streams() if b" " + start + b" " in s]
    else:
        streams = overlay.recorder.captured(b" " + start + b" ")
    assert len(streams) == 1, streams
    stream = streams[0]
    at = stream.index(b" " + start + b" ")
    begin = stream.rindex(b"\r\n", 0, at) + 2 if b"\r\n" in stream[:at] else 0
    return stream.index(marker, begin) - begin


@pytest.mark.parametrize("host", [SITE, DIRECT], ids=["shield", "direct"])
def test_calibrated_smuggling_attack(host: str, http_overlay: HttpOverlay) -> None:
    """The attack tuned to this overlay, on an origin path whose handler never reads bodies:
    the poison's Content-Length is exactly the offset at which the next forwarded request
    carries a smuggled request line. If a hop forwards that length without the body, the
    next request on the pooled connection is cut there and the smuggled line becomes a request
    of its own. The origin must never see it, and clean clients get their own answers."""
    tag = "shield" if host == SITE else "direct"
    base = f"/lenient/attack-{tag}"
    smuggled = f"GET {base}/SMUGGLED HTTP/1.0"

    def carrier(name: str) -> bytes:
        return http(f"GET {base}/{name} HTTP/1.1", f"Host: {host}", f"X-Q: {smuggled}")

    offset = _smuggle_offset(http_overlay, host, carrier("calibra"), smuggled.encode())
    poison = http(f"GET {base}/poison HTTP/1.1", f"Host: {host}", f"Content-Length: {offset}")
    exchange(http_overlay.edge("edge-1"), poison + b"F" * offset)
    exchange(http_overlay.edge("edge-1"), carrier("carrier"), source="127.0.9.8")
    for edge in http_overlay.EDGES:
        for i in range(3):
            target = f"{base}/victim-{edge}-{i}"
            response = get(http_overlay.edge(edge), host, target, source="127.0.9.7")
            want = (echo_line("GET", target, host) + "\n").encode()
            assert (response.status, response.body) == (200, want), response
    smuggled_seen = [s for s in http_overlay.origin.seen if "SMUGGLED" in s.target]
    assert not smuggled_seen, smuggled_seen
    poisoned = http_overlay.origin.with_target(f"{base}/poison")
    assert not poisoned, f"the GET with a body reached the origin: {poisoned!r}"
    http_overlay.assert_in_sync("calibrated attack")


@pytest.mark.parametrize("host", [SITE, DIRECT], ids=["shield", "direct"])
def test_expect_100_continue(host: str, http_overlay: HttpOverlay) -> None:
    """A client that waits for 100 Continue before it sends the body gets it, then the answer."""
    target = f"/c/expect-100-{'shield' if host == SITE else 'direct'}/"
    head = http(f"POST {target} HTTP/1.1", f"Host: {host}", "Expect: 100-continue", CL5)
    with connect(http_overlay.edge("edge-1")) as sock:
        sock.sendall(head)
        reader = Reader(sock, time.monotonic() + 10.0)
        interim = reader.line()
        assert interim == b"HTTP/1.1 100 Continue", interim
        while reader.line():
            pass
        sock.sendall(b"hello")
        response = reader.response()
    assert response.status_line.startswith(b"HTTP/1.1 200"), response
    assert response.body == (echo_line("POST", target, host) + " body=5\n").encode()
    seen = http_overlay.origin.with_target(target)
    assert len(seen) == 1 and seen[0].body == b"hello", seen
    assert not seen[0].values("expect"), seen[0]
    http_overlay.assert_in_sync("expect-100")


def test_clean_client_sees_its_address(http_overlay: HttpOverlay) -> None:
    """X-Forwarded-For is the connecting client's address, whichever address that is."""
    target = "/c/xff-source/"
    response = get(http_overlay.edge("edge-2"), SITE, target, source="127.0.9.77")
    assert response.status == 200, response
    (seen,) = http_overlay.origin.with_target(target)
    assert seen.values("x-forwarded-for") == [b"127.0.9.77"], seen
    assert response.tiers == ["shield-1", "edge-2"], response
