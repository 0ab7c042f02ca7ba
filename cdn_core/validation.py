"""Validation (RFC 9111 §4.3): asking upstream whether a stored response is still good, and
updating it from the answer.

:func:`conditional_headers` builds the conditional request (§4.3.1); a 304 goes through
:func:`can_freshen` and :func:`freshen` (§4.3.4, §3.2); a 200 to a HEAD request goes through
:func:`freshen_from_head` (§4.3.5). :func:`is_not_modified` answers a client's own conditional
request from the cache (§4.3.2). Nothing here reads a clock or does I/O.

Policy choices for HEAD (§4.3.5 leaves them open): entity tags match by weak comparison, as for
a 304, and Content-Length is compared with the stored body size. A HEAD response that carries
none of ETag, Last-Modified and Content-Length proves nothing; like one that says ``no-store``,
sends a different Vary, or answers for a stored non-200, it makes the stored response stale
instead of fresh. A HEAD response without Vary is taken to vary as the stored one.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass

from cdn_core.cache_control import response_cache_control
from cdn_core.cache_key import vary_fields
from cdn_core.entry import StoredEntry
from cdn_core.http import HOP_BY_HOP, Headers, RequestHead, ResponseHead, connection_tokens
from cdn_core.httpdate import format_http_date, parse_http_date
from cdn_core.response_headers import SURROGATE_KEY_FIELDS, surrogate_keys

# RFC 9111 §3.2: fields a 304 (or a HEAD response) never replaces in the stored head.
_NOT_FRESHENED = frozenset({"content-length", *HOP_BY_HOP, *SURROGATE_KEY_FIELDS, "set-cookie"})
# RFC 9110 §13.1.1-2: only GET and HEAD are answered 304 Not Modified.
_NOT_MODIFIED_METHODS = frozenset({"GET", "HEAD"})


class HeadMismatch(enum.Enum):
    """Why a 200 response to HEAD does not freshen the stored GET response (RFC 9111 §4.3.5)."""

    STATUS = "status"  # the stored response is not a 200
    ETAG = "etag"
    LAST_MODIFIED = "last-modified"
    CONTENT_LENGTH = "content-length"
    VARY = "vary"  # its Vary names other fields (or ``*``)
    NO_STORE = "no-store"
    NO_EVIDENCE = "no-evidence"  # no ETag, Last-Modified or Content-Length to compare


@dataclass(frozen=True, slots=True, kw_only=True)
class HeadFreshen:
    """Replace the stored head with ``entry`` (freshened, body unchanged)."""

    entry: StoredEntry


@dataclass(frozen=True, slots=True, kw_only=True)
class HeadInvalidate:
    """Replace the stored head with ``entry``: the same response, stale from the HEAD's arrival
    on (a soft purge), so its next use revalidates or refetches."""

    entry: StoredEntry
    reason: HeadMismatch


HeadUpdate = HeadFreshen | HeadInvalidate


def conditional_headers(entry: StoredEntry) -> Headers:
    """Validators to revalidate ``entry`` upstream (RFC 9111 §4.3.1): If-None-Match from ETag,
    If-Modified-Since from Last-Modified. Empty when the entry has neither.

    Args:
        entry: the stored entry.

    Returns:
        The conditional header fields to add to the upstream request.
    """
    fields: list[tuple[str, str]] = []
    if entry.etag is not None:
        fields.append(("if-none-match", entry.etag))
    if entry.last_modified is not None:
        fields.append(("if-modified-since", entry.last_modified))
    return Headers(fields)


def can_freshen(entry: StoredEntry, response: ResponseHead) -> bool:
    """Whether a 304 applies to ``entry`` (RFC 9111 §4.3.4): its ETag, if any, must match the
    stored one (weak comparison); without an ETag it applies to the revalidated entry."""
    etag = response.headers.get("etag")
    if etag is None:
        return True
    return entry.etag is not None and _weak_equal(etag, entry.etag)


def freshen(
    entry: StoredEntry, response: ResponseHead, *, request_time: float, response_time: float
) -> StoredEntry:
    """Update a stored entry from a 304 (RFC 9111 §4.3.4, §3.2).

    Every field of the 304 replaces the stored one, except Content-Length, hop-by-hop fields,
    surrogate keys and Set-Cookie. An ``Age`` the 304 lacks is removed and a missing ``Date``
    is set to ``response_time``, so the age restarts from this exchange. Clears a soft purge.

    Args:
        entry: the revalidated entry.
        response: the 304 head.
        request_time: when the conditional request was sent.
        response_time: when the 304 arrived.

    Returns:
        The freshened entry.
    """
    updates = response.headers.without(*connection_tokens(response.headers))
    headers = entry.response.headers.merged(updates, exclude=_NOT_FRESHENED)
    if "age" not in updates:
        headers = headers.without("age")
    if parse_http_date(updates.get("date")) is None:
        headers = headers.with_set("date", format_http_date(response_time))
    keys = surrogate_keys(response.headers) or entry.surrogate_keys
    return dataclasses.replace(
        entry,
        response=ResponseHead(status=entry.response.status, headers=headers),
        request_time=request_time,
        response_time=response_time,
        surrogate_keys=keys,
        stale_at=None,
    )


def freshen_from_head(
    entry: StoredEntry, response: ResponseHead, *, request_time: float, response_time: float
) -> HeadUpdate | None:
    """Update a stored GET response from a 200 response to HEAD (RFC 9111 §4.3.5).

    When every validator the HEAD response carries (ETag, weak comparison; Last-Modified)
    matches the stored one and its Content-Length, if any, equals the stored body size, the
    entry is freshened as by a 304 (§3.2). Otherwise the stored response is to be considered
    stale: the entry comes back soft-purged at ``response_time``.

    Args:
        entry: the stored entry the HEAD request would have been answered with (§4.1).
        response: the upstream response to HEAD.
        request_time: when the HEAD request was sent.
        response_time: when the HEAD response arrived.

    Returns:
        :class:`HeadFreshen` or :class:`HeadInvalidate`, both carrying the entry to store in
        place of ``entry``; None when the response is not a 200 (it says nothing about the
        stored one).
    """
    if response.status != 200:
        return None
    mismatch = _head_mismatch(entry, response.headers)
    if mismatch is not None:
        return HeadInvalidate(entry=entry.soft_purged(now=response_time), reason=mismatch)
    fresh = freshen(entry, response, request_time=request_time, response_time=response_time)
    return HeadFreshen(entry=fresh)


def _head_mismatch(entry: StoredEntry, headers: Headers) -> HeadMismatch | None:
    etag = headers.get("etag")
    last_modified = headers.get("last-modified")
    length = headers.get_joined("content-length")
    vary = vary_fields(headers)
    checks = (
        (entry.response.status != 200, HeadMismatch.STATUS),
        (etag is None and last_modified is None and length is None, HeadMismatch.NO_EVIDENCE),
        (
            etag is not None and (entry.etag is None or not _weak_equal(etag, entry.etag)),
            HeadMismatch.ETAG,
        ),
        (
            last_modified is not None and not _same_date(last_modified, entry.last_modified),
            HeadMismatch.LAST_MODIFIED,
        ),
        (
            length is not None and _content_length(length) != entry.body_size,
            HeadMismatch.CONTENT_LENGTH,
        ),
        (
            "vary" in headers and (vary is None or set(vary) != set(entry.vary)),
            HeadMismatch.VARY,
        ),
        (response_cache_control(headers).no_store, HeadMismatch.NO_STORE),
    )
    return next((reason for failed, reason in checks if failed), None)


def _same_date(value: str, stored: str | None) -> bool:
    if stored is None:
        return False
    if value.strip() == stored.strip():
        return True
    parsed = parse_http_date(value)
    return parsed is not None and parsed == parse_http_date(stored)


def _content_length(value: str) -> int | None:
    """Content-Length as a number (RFC 9110 §8.6: a list of identical values counts as one);
    None when malformed."""
    values = {v.strip() for v in value.split(",")}
    if len(values) != 1:
        return None
    (only,) = values
    return int(only) if only.isascii() and only.isdigit() else None


def is_not_modified(head: RequestHead, entry: StoredEntry) -> bool:
    """Whether the client's conditional request is answered 304 from cache (RFC 9111 §4.3.2).

    ``If-None-Match`` (weak comparison, ``*`` matches) wins; otherwise ``If-Modified-Since`` is
    compared with Last-Modified (or the stored Date). Only for GET/HEAD and a stored 200.

    Args:
        head: the client request.
        entry: the entry about to be served.

    Returns:
        True when the answer is 304 Not Modified.
    """
    if head.method not in _NOT_MODIFIED_METHODS or entry.response.status != 200:
        return False
    if_none_match = head.headers.get_joined("if-none-match")
    if if_none_match is not None:
        return _none_match(if_none_match, entry.etag)
    since = parse_http_date(head.headers.get("if-modified-since"))
    if since is None:
        return False
    modified = parse_http_date(entry.last_modified)
    if modified is None:
        modified = parse_http_date(entry.response.headers.get("date"))
    return modified is not None and modified <= since


def _none_match(if_none_match: str, etag: str | None) -> bool:
    if if_none_match.strip() == "*":
        return True
    if etag is None:
        return False
    return any(_weak_equal(tag, etag) for tag in if_none_match.split(",") if tag.strip())


def _weak_equal(a: str, b: str) -> bool:
    """Weak comparison of entity tags (RFC 9110 §8.8.3.2): opaque tags equal, W/ ignored."""
    return a.strip().removeprefix("W/") == b.strip().removeprefix("W/")
