"""Building client responses: from a stored object, and the node's own error answers.

The inputs are cdn_core values (:class:`StoredEntry`, :class:`Headers`, decisions); the output
is an aiohttp response. Range (206/416), HEAD and client conditionals (304) are answered here
from a full stored object.
"""

from __future__ import annotations

from typing import assert_never

from aiohttp import web
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
) -> tuple[web.Response, int]:
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
    if head.method != "HEAD" and (status != 200 or "range" not in names):
        # The hit path: the prepared fields plus Age and Cache-Status, one header copy.
        fields = [*_client_fields(slot, via), age, ("Cache-Status", cache_status)]
        return web.Response(status=status, headers=fields, body=body), len(body)
    full = CIMultiDict(_client_fields(slot, via))
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


def _client_fields(slot: Slot, via: str) -> tuple[tuple[str, str], ...]:
    """The stored head as client fields, minus Age and framing, plus our Via: made once per
    stored head (the hit path only adds Age and Cache-Status)."""
    prepared = slot.prepared
    if isinstance(prepared, tuple):
        return prepared
    headers = client_headers(slot.entry.response.headers, age_s=None).without(*_FRAMING, "age")
    previous_via = headers.get_joined("via")
    fields = [(canonical_name(name), value) for name, value in headers.without("via")]
    fields.append(("Via", f"{previous_via}, {via}" if previous_via else via))
    slot.prepared = tuple(fields)
    return slot.prepared


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
