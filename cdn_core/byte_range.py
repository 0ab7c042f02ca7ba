"""Single byte ranges served from a cached full object (RFC 9110 §14).

Only ``GET`` has range semantics; anything that is not one well-formed byte range (other units,
several ranges, syntax errors) is ignored and the full body is sent. ``If-Range`` sends the full
body unless its validator strongly matches the stored one (RFC 9110 §13.1.5).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from cdn_core.http import RequestHead
from cdn_core.httpdate import parse_http_date

_SPEC = re.compile(r"(?P<first>\d*)\s*-\s*(?P<last>\d*)")


@dataclass(frozen=True, slots=True, kw_only=True)
class FullBody:
    """Send the whole representation with 200."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PartialBody:
    """Send bytes ``start..end`` (inclusive) with 206."""

    start: int
    end: int

    @property
    def length(self) -> int:
        return self.end - self.start + 1

    def content_range(self, size: int) -> str:
        return f"bytes {self.start}-{self.end}/{size}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Unsatisfiable:
    """Answer 416 with ``Content-Range: bytes */size``."""

    def content_range(self, size: int) -> str:
        return f"bytes */{size}"


RangeDecision = FullBody | PartialBody | Unsatisfiable


def decide_range(
    head: RequestHead, *, size: int, entry_etag: str | None, entry_last_modified: str | None
) -> RangeDecision:
    """Decide how to answer a request's ``Range`` from a full stored object (RFC 9110 §14.2).

    Args:
        head: the client request (Range and If-Range are read from it).
        size: the full body length in bytes.
        entry_etag: the stored ETag, for If-Range.
        entry_last_modified: the stored Last-Modified, for If-Range.

    Returns:
        FullBody (200), PartialBody (206) or Unsatisfiable (416).
    """
    ranges = head.headers.get_all("range")
    if head.method != "GET" or len(ranges) != 1:
        return FullBody()
    if_range = head.headers.get("if-range")
    if if_range is not None and not _if_range_matches(if_range, entry_etag, entry_last_modified):
        return FullBody()
    unit, sep, spec = ranges[0].partition("=")
    if not sep or unit.strip().lower() != "bytes" or "," in spec:
        return FullBody()
    match = _SPEC.fullmatch(spec.strip())
    if match is None or not (match["first"] or match["last"]):
        return FullBody()
    return _resolve(match["first"], match["last"], size)


def _resolve(first: str, last: str, size: int) -> RangeDecision:
    if not first:  # suffix range: the last N bytes
        length = int(last)
        if length == 0 or size == 0:
            return Unsatisfiable()
        return PartialBody(start=max(0, size - length), end=size - 1)
    start = int(first)
    if last and int(last) < start:
        return FullBody()  # invalid range-spec: ignore the Range field
    if start >= size:
        return Unsatisfiable()
    end = min(int(last), size - 1) if last else size - 1
    return PartialBody(start=start, end=end)


def _if_range_matches(if_range: str, etag: str | None, last_modified: str | None) -> bool:
    value = if_range.strip()
    if value.startswith(('"', "W/")):
        # Strong comparison: weak tags never match (RFC 9110 §8.8.3.2).
        return etag is not None and not value.startswith("W/") and value == etag.strip()
    requested = parse_http_date(value)
    stored = parse_http_date(last_modified)
    return requested is not None and requested == stored
