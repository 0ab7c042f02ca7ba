"""The Cache-Status response field (RFC 9211): one list member per cache on the path.

Each cache appends its member, e.g. ``edge-eu-1; hit; ttl=42`` or
``edge-eu-1; fwd=uri-miss; fwd-status=200; stored; collapsed``.
"""

from __future__ import annotations

import enum
import math
import re

_TOKEN = re.compile(r"[A-Za-z*][!#$%&'*+\-.^_`|~0-9A-Za-z:/]*")


class Forward(enum.Enum):
    """Why the request went forward (RFC 9211 §2.2).

    RFC 9211's ``partial`` is absent: partial content is never stored, so a request never goes
    forward to complete a stored part.
    """

    BYPASS = "bypass"
    METHOD = "method"
    URI_MISS = "uri-miss"
    VARY_MISS = "vary-miss"
    MISS = "miss"
    REQUEST = "request"
    STALE = "stale"


def cache_status_entry(
    node: str,
    *,
    hit: bool,
    fwd: Forward | None = None,
    fwd_status: int | None = None,
    stored: bool = False,
    ttl_s: float | None = None,
    collapsed: bool = False,
    detail: str | None = None,
) -> str:
    """One Cache-Status list member for this cache (RFC 9211 §2).

    Args:
        node: the cache's identifier (an sf-token, else sent as an sf-string).
        hit: the response was served from cache without going forward.
        fwd: why the request went forward, if it did.
        fwd_status: the status the next hop answered.
        stored: the forwarded response was stored.
        ttl_s: remaining freshness in seconds (may be negative), sent as an integer.
        collapsed: the request was collapsed with another one.
        detail: free-form detail, sent as an sf-string (non-printable characters dropped).

    Returns:
        The member, e.g. ``'edge-eu-1; hit; ttl=42'``.
    """
    params: list[str] = [_item(node)]
    if hit:
        params.append("hit")
    if fwd is not None:
        params.append(f"fwd={fwd.value}")
    if fwd_status is not None:
        params.append(f"fwd-status={fwd_status}")
    if stored:
        params.append("stored")
    if collapsed:
        params.append("collapsed")
    if ttl_s is not None and math.isfinite(ttl_s):
        params.append(f"ttl={math.floor(ttl_s)}")
    if detail is not None:
        params.append(f"detail={_sf_string(detail)}")
    return "; ".join(params)


def _item(node: str) -> str:
    return node if _TOKEN.fullmatch(node) else _sf_string(node)


def _sf_string(value: str) -> str:
    printable = "".join(c for c in value if " " <= c <= "~")
    return '"' + printable.replace("\\", "\\\\").replace('"', '\\"') + '"'
