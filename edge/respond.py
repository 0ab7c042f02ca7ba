"""Building client responses: from a stored object, and the node's own error answers.

The inputs are cdn_core values (:class:`StoredEntry`, :class:`Headers`, decisions); the output
is an aiohttp response. Range (206/416), HEAD and client conditionals (304) are answered here
from a full stored object. A plain 200 GET hit is a :class:`CachedHit`: its head is serialised
once per stored object and written with the body in one write, the bytes ``web.Response``
would have written.
"""

from __future__ import annotations

import re
import time
from email.utils import formatdate
from typing import assert_never

from aiohttp import web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.http import SERVER_SOFTWARE, HttpVersion10, HttpVersion11
from multidict import CIMultiDict

from cdn_core.byte_range import FullBody, PartialBody, Unsatisfiable, decide_range
from cdn_core.cache_policy import is_not_modified
from cdn_core.entry import StoredEntry
from cdn_core.http import Headers, RequestHead
from cdn_core.response_headers import client_headers, not_modified_headers
from edge.store import Slot

# Fields aiohttp computes itself from the body it is given.
_FRAMING = ("content-length", "transfer-encoding")


_CANONICAL: dict[str, str] = {"etag": "ETag", "www-authenticate": "WWW-Authenticate"}
_MAX_CANONICAL = 2048


def canonical_name(name: str) -> str:
    """``content-type`` -> ``Content-Type``: field names as most HTTP/1.1 peers write them."""
    known = _CANONICAL.get(name)
    if known is None:
        known = "-".join(part.capitalize() for part in name.split("-"))
        if len(_CANONICAL) < _MAX_CANONICAL:
            _CANONICAL[name] = known
    return known


def to_aiohttp(headers: Headers) -> CIMultiDict[str]:
    return CIMultiDict([(canonical_name(name), value) for name, value in headers])


def with_node_fields(headers: Headers, *, cache_status: str, via: str) -> Headers:
    """Append this node's Cache-Status member (RFC 9211) and Via hop (RFC 9110 §7.6.3)."""
    previous_via = headers.get_joined("via")
    return (
        headers.without("via")
        .with_added("cache-status", cache_status)
        .with_added("via", f"{previous_via}, {via}" if previous_via else via)
    )


def from_cache(
    head: RequestHead, slot: Slot, *, age_s: int, cache_status: str, via: str
) -> tuple[web.StreamResponse, int]:
    """The client response for ``head`` from a stored object; returns it with its body size."""
    entry, body = slot.entry, slot.body
    names = head.headers.names()
    conditional = "if-none-match" in names or "if-modified-since" in names
    if conditional and is_not_modified(head, entry):
        headers = not_modified_headers(entry.response.headers, age_s=age_s)
        headers = with_node_fields(headers, cache_status=cache_status, via=via)
        return web.Response(status=304, headers=to_aiohttp(headers)), 0
    age = ("Age", str(age_s) if age_s > 0 else "0")
    status = entry.response.status
    prepared = _prepared(slot, via)
    if status == 200 and head.method == "GET" and "range" not in names and prepared.serialisable:
        # The plain hit: the head is pre-serialised per stored object (see CachedHit).
        return CachedHit(prepared, body, age[1], cache_status), len(body)
    if head.method != "HEAD" and (status != 200 or "range" not in names):
        # The hit path: the prepared fields plus Age and Cache-Status, one header copy.
        fields = [*prepared.fields, age, ("Cache-Status", cache_status)]
        return web.Response(status=status, headers=fields, body=body), len(body)
    full = CIMultiDict(prepared.fields)
    full.add(*age)
    full.add("Cache-Status", cache_status)
    return _ranged(head, entry, status, full, body)


def _ranged(
    head: RequestHead, entry: StoredEntry, status: int, fields: CIMultiDict[str], body: bytes
) -> tuple[web.Response, int]:
    """HEAD and Range requests (RFC 9110 §14) on a stored object."""
    if status != 200 or "range" not in head.headers:
        return _with_body(head, status, fields, body)
    size = len(body)
    decision = decide_range(
        head, size=size, entry_etag=entry.etag, entry_last_modified=entry.last_modified
    )
    match decision:
        case FullBody():
            return _with_body(head, 200, fields, body)
        case PartialBody(start=start, end=end):
            fields["Content-Range"] = decision.content_range(size)
            return _with_body(head, 206, fields, body[start : end + 1])
        case Unsatisfiable():
            for name in ("Content-Type", "Content-Encoding", "ETag", "Last-Modified"):
                fields.popall(name, None)
            fields["Content-Range"] = decision.content_range(size)
            text = f"416 Range Not Satisfiable: the object is {size} bytes\n".encode()
            return _with_body(head, 416, fields, text)
        case unreachable:
            assert_never(unreachable)


Fields = tuple[tuple[str, str], ...]


class _Prepared:
    """What every hit on one stored head reuses: the client fields (minus Age and framing, plus
    our Via) and, for :class:`CachedHit`, those fields and aiohttp's own serialised once."""

    __slots__ = (
        "fields",
        "head",
        "framing",
        "server",
        "needs_date",
        "needs_connection",
        "serialisable",
    )

    def __init__(self, fields: Fields, body_size: int) -> None:
        self.fields = fields
        names = {name.lower() for name, _ in fields}
        self.needs_date = "date" not in names
        self.needs_connection = "connection" not in names
        # What aiohttp appends after our fields, in its order: Content-Length (Response._start),
        # then Content-Type, Date and Server (StreamResponse._prepare_headers), Connection.
        framing = [("Content-Length", str(body_size))]
        if body_size and "content-type" not in names:
            framing.append(("Content-Type", "application/octet-stream"))
        server = [] if "server" in names else [("Server", SERVER_SOFTWARE)]
        self.head = _serialise(fields)
        self.framing = _serialise(framing)
        self.server = _serialise(server)
        # False when aiohttp would refuse a field: hits on this head then take the usual path.
        self.serialisable = (
            self.head is not None and self.framing is not None and self.server is not None
        )


_FORBIDDEN_IN_FIELDS = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # as aiohttp's http_writer


def _serialise(fields: list[tuple[str, str]] | Fields) -> bytes | None:
    """``Name: value\r\n`` lines as aiohttp writes them (UTF-8), or None for a field with a
    control character (aiohttp refuses those: header injection)."""
    lines = []
    for name, value in fields:
        if _FORBIDDEN_IN_FIELDS.search(name) or _FORBIDDEN_IN_FIELDS.search(value):
            return None
        lines.append(f"{name}: {value}\r\n")
    return "".join(lines).encode()


def _prepared(slot: Slot, via: str) -> _Prepared:
    """The :class:`_Prepared` of ``slot``'s head: made once per stored head."""
    prepared = slot.prepared
    if isinstance(prepared, _Prepared):
        return prepared
    headers = client_headers(slot.entry.response.headers, age_s=None).without(*_FRAMING, "age")
    previous_via = headers.get_joined("via")
    fields = [(canonical_name(name), value) for name, value in headers.without("via")]
    fields.append(("Via", f"{previous_via}, {via}" if previous_via else via))
    made = _Prepared(tuple(fields), len(slot.body))
    slot.prepared = made
    return made


# Always HTTP/1.1 (RFC 9110 §6.2), as edge.limits makes aiohttp's own status lines.
_STATUS_LINES = {HttpVersion11: b"HTTP/1.1 200 OK\r\n", HttpVersion10: b"HTTP/1.1 200 OK\r\n"}
_date_second = -1
_date_line = b""


def _date_field() -> bytes:
    """``Date: <IMF-fixdate>\r\n`` of the current second, as aiohttp's (RFC 9110 §6.6.1)."""
    global _date_second, _date_line
    now = int(time.time())
    if now != _date_second:
        _date_line = f"Date: {formatdate(now, usegmt=True)}\r\n".encode()
        _date_second = now
    return _date_line


class CachedHit(web.StreamResponse):
    """A 200 GET answered from a stored object: status line, head and body in one write.

    The bytes are those aiohttp's ``web.Response`` would write for the same fields (same
    order, same Content-Length/Content-Type/Date/Server/Connection additions, same keep-alive),
    without building and serialising a header multidict per hit. Anything this does not cover
    (a middleware adding fields or changing the status, an HTTP version other than 1.0/1.1, a
    Cache-Status value aiohttp would refuse) is answered by a ``web.Response`` built the usual
    way, with the added fields after ours.
    """

    def __init__(self, prepared: _Prepared, body: bytes, age: str, cache_status: str) -> None:
        super().__init__(status=200)
        self._prepared = prepared
        self._body_bytes = body
        self._age = age
        self._cache_status = cache_status
        self._keep: bool | None = None
        self._fallback: web.Response | None = None

    @property
    def keep_alive(self) -> bool | None:
        if self._fallback is not None:
            return self._fallback.keep_alive
        return self._keep

    async def prepare(self, request: web.BaseRequest) -> AbstractStreamWriter | None:
        status_line = _STATUS_LINES.get(request.version)
        if (
            status_line is None
            or self.status != 200
            or self.headers
            or _FORBIDDEN_IN_FIELDS.search(self._cache_status) is not None
        ):
            return await self._usual(request)
        keep_alive = request.keep_alive
        p = self._prepared
        connection = b""
        if p.needs_connection:
            if request.version == HttpVersion11:
                connection = b"" if keep_alive else b"Connection: close\r\n"
            elif keep_alive:
                connection = b"Connection: keep-alive\r\n"
        assert p.head is not None and p.framing is not None and p.server is not None
        wire = b"".join(
            (
                status_line,
                p.head,
                b"Age: ",
                self._age.encode(),
                b"\r\nCache-Status: ",
                self._cache_status.encode(),
                b"\r\n",
                p.framing,
                _date_field() if p.needs_date else b"",
                p.server,
                connection,
                b"\r\n",
                self._body_bytes,
            )
        )
        self._keep = keep_alive
        writer = request.writer
        await _write_message(writer, wire)
        return writer

    async def write_eof(self, data: bytes = b"") -> None:
        if self._fallback is not None:
            await self._fallback.write_eof(data)

    async def _usual(self, request: web.BaseRequest) -> AbstractStreamWriter | None:
        fields = [
            *self._prepared.fields,
            ("Age", self._age),
            ("Cache-Status", self._cache_status),
            *self.headers.items(),
        ]
        self._fallback = web.Response(
            status=self.status, reason=self.reason, headers=fields, body=self._body_bytes
        )
        return await self._fallback.prepare(request)


async def _write_message(writer: AbstractStreamWriter, message: bytes) -> None:
    """Write a whole serialised HTTP message (head and body) as the request's last bytes.

    The one place that relies on how aiohttp 3.14's server drives a response: it calls
    ``prepare()`` then ``write_eof()`` on what the handler returned, then reads
    ``keep_alive``; a payload writer given no headers (``write_headers`` never called) and no
    length writes ``write_eof``'s chunk as is, then drains. tests/edge/test_cached_hit.py
    compares these bytes with ``web.Response``'s and fails if aiohttp changes either.
    """
    await writer.write_eof(message)


def _with_body(
    head: RequestHead, status: int, fields: CIMultiDict[str], body: bytes
) -> tuple[web.Response, int]:
    if head.method == "HEAD":
        fields["Content-Length"] = str(len(body))
        return web.Response(status=status, headers=fields), 0
    return web.Response(status=status, headers=fields, body=body), len(body)


def error_response(status: int, text: str, *, cache_status: str, via: str) -> web.Response:
    """A short plain-text answer of this node (bad input, misdirected, upstream failure)."""
    headers = Headers(
        [("content-type", "text/plain; charset=utf-8"), ("cache-control", "no-store")]
    )
    headers = with_node_fields(headers, cache_status=cache_status, via=via)
    return web.Response(status=status, headers=to_aiohttp(headers), text=text.rstrip() + "\n")
