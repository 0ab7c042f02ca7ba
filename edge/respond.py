"""Building client responses: from a stored object, and the node's own error answers.

The inputs are cdn_core values (:class:`StoredEntry`, :class:`Headers`, decisions); the output
is a response of the data plane's server (:mod:`edge.server`). Range (206/416), HEAD and
client conditionals (304) are answered here from a full stored object. A plain 200 GET hit is
a :class:`~edge.server.Prebuilt`: its status line and stored fields are serialised once per
stored object (:class:`Prepared`, kept on the store's slot), and each hit adds only ``Age``,
``Cache-Status``, ``Content-Length``, ``Date`` and the body ``memoryview``, written with one
``writelines`` and no copy of the body.
"""

from __future__ import annotations

import re
from typing import assert_never

from cdn_core.byte_range import FullBody, PartialBody, Unsatisfiable, decide_range
from cdn_core.cache_policy import is_not_modified
from cdn_core.entry import StoredEntry
from cdn_core.http import FRAMING_FIELDS, Headers, RequestHead
from cdn_core.response_headers import client_headers, not_modified_headers
from edge.server import Prebuilt, Response, date_field
from edge.server.writer import status_line
from edge.store import Slot

Field = tuple[str, str]
Fields = tuple[Field, ...]
ServerResponse = Response | Prebuilt

_CANONICAL: dict[str, str] = {"etag": "ETag", "www-authenticate": "WWW-Authenticate"}
_MAX_CANONICAL = 2048
# RFC 9110 §5.5: no CR, LF, NUL or other control but HTAB in a field (header injection).
_FORBIDDEN_IN_FIELDS = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def canonical_name(name: str) -> str:
    """``content-type`` -> ``Content-Type``: field names as most HTTP/1.1 peers write them."""
    known = _CANONICAL.get(name)
    if known is None:
        known = "-".join(part.capitalize() for part in name.split("-"))
        if len(_CANONICAL) < _MAX_CANONICAL:
            _CANONICAL[name] = known
    return known


def to_fields(headers: Headers) -> list[Field]:
    """``headers`` as the server writes them: canonical names, in order."""
    return [(canonical_name(name), value) for name, value in headers]


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
) -> tuple[ServerResponse, int]:
    """The client response for ``head`` from a stored object; returns it with its body size."""
    entry, body = slot.entry, slot.body
    names = head.headers.names()
    conditional = "if-none-match" in names or "if-modified-since" in names
    if conditional and is_not_modified(head, entry):
        headers = not_modified_headers(entry.response.headers, age_s=age_s)
        headers = with_node_fields(headers, cache_status=cache_status, via=via)
        return Response(304, to_fields(headers)), 0
    age = str(age_s) if age_s > 0 else "0"
    status = entry.response.status
    prepared = prepared_of(slot, via)
    if head.method == "GET" and (status != 200 or "range" not in names):
        if prepared.head is not None and _is_field_value(cache_status):
            # The hit path: the head serialised once per stored object (see Prepared).
            return prepared.hit(body, age, cache_status), len(body)
        fields = [*prepared.fields, ("Age", age), ("Cache-Status", cache_status)]
        return Response(status, fields, body), len(body)
    fields = [*prepared.fields, ("Age", age), ("Cache-Status", cache_status)]
    return _ranged(head, entry, status, fields, body)


def _ranged(
    head: RequestHead, entry: StoredEntry, status: int, fields: list[Field], body: bytes
) -> tuple[Response, int]:
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
            fields.append(("Content-Range", decision.content_range(size)))
            part = memoryview(body)[start : end + 1]
            return _with_body(head, 206, fields, part)
        case Unsatisfiable():
            dropped = {"content-type", "content-encoding", "etag", "last-modified"}
            kept = [(k, v) for k, v in fields if k.lower() not in dropped]
            kept.append(("Content-Range", decision.content_range(size)))
            text = f"416 Range Not Satisfiable: the object is {size} bytes\n".encode()
            return _with_body(head, 416, kept, text)
        case unreachable:
            assert_never(unreachable)


def _with_body(
    head: RequestHead, status: int, fields: list[Field], body: bytes | memoryview
) -> tuple[Response, int]:
    if head.method == "HEAD":
        # RFC 9110 §9.3.2: the fields a GET would get, its Content-Length included, no body.
        return Response(status, [*fields, ("Content-Length", str(len(body)))]), 0
    return Response(status, fields, body), len(body)


class Prepared:
    """What every hit on one stored head reuses: the client fields (minus Age and framing,
    plus our Via) and, when every field can be written, the serialised status line and
    fields (``head``) that a :class:`Prebuilt` starts with."""

    __slots__ = ("fields", "head", "length", "needs_date")

    def __init__(self, status: int, fields: Fields, body_size: int) -> None:
        self.fields = fields
        self.length = b"Content-Length: %d\r\n" % body_size
        self.needs_date = all(name.lower() != "date" for name, _ in fields)
        self.head = _serialise(status, fields)

    def hit(self, body: bytes, age: str, cache_status: str) -> Prebuilt:
        assert self.head is not None
        per_request = b"Age: " + age.encode() + b"\r\nCache-Status: " + cache_status.encode()
        tail: list[bytes | memoryview] = [
            per_request + b"\r\n",
            self.length,
            date_field() if self.needs_date else b"",
            b"\r\n",
            memoryview(body),
        ]
        return Prebuilt(self.head, tail)


def _serialise(status: int, fields: Fields) -> bytes | None:
    """The status line and ``Name: value`` lines, or None when a field has a control
    character (a stored field must never inject a line) or the status has no body."""
    if status in (204, 304) or not 200 <= status < 600:
        return None
    if any(not _is_field_value(n) or not _is_field_value(v) for n, v in fields):
        return None
    text = "".join(f"{name}: {value}\r\n" for name, value in fields)
    return status_line(status) + text.encode("utf-8", "surrogateescape")


def _is_field_value(text: str) -> bool:
    return _FORBIDDEN_IN_FIELDS.search(text) is None


def prepared_of(slot: Slot, via: str) -> Prepared:
    """The :class:`Prepared` of ``slot``'s head: made once per stored head."""
    prepared = slot.prepared
    if isinstance(prepared, Prepared):
        return prepared
    headers = client_headers(slot.entry.response.headers, age_s=None).without(
        *FRAMING_FIELDS, "age"
    )
    previous_via = headers.get_joined("via")
    fields = [(canonical_name(name), value) for name, value in headers.without("via")]
    fields.append(("Via", f"{previous_via}, {via}" if previous_via else via))
    made = Prepared(slot.entry.response.status, tuple(fields), len(slot.body))
    slot.prepared = made
    return made


def error_response(
    status: int,
    text: str,
    *,
    cache_status: str,
    via: str,
    extra: Fields = (),
    close: bool = False,
) -> Response:
    """A short plain-text answer of this node (bad input, misdirected, upstream failure);
    ``extra`` fields (``Allow``, ``Retry-After``) go after the node's own."""
    headers = Headers(
        [("content-type", "text/plain; charset=utf-8"), ("cache-control", "no-store")]
    )
    headers = with_node_fields(headers, cache_status=cache_status, via=via)
    body = (text.rstrip() + "\n").encode("utf-8", "replace")
    return Response(status, [*to_fields(headers), *extra], body, close=close)
