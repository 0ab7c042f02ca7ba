"""Cache keys: the primary key from the target URI and the Vary secondary key (RFC 9111 §4.1).

The primary key is ``"{host}{target}"``: the host lower-cased without its port, the target in
origin-form with percent-encoding normalised (RFC 3986 §6.2.2: hex digits upper-cased,
unreserved characters decoded). Normalisation is idempotent.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import urlsplit

from cdn_core.http import Headers, RequestHead

# A request field that is absent selects differently from one that is present but empty.
ABSENT = "\x00"

_PERCENT = re.compile(r"%([0-9A-Fa-f]{2})")
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_WHITESPACE = re.compile(r"\s+")

Variant = tuple[tuple[str, str], ...]


def primary_key(head: RequestHead) -> str:
    """The primary cache key of a request (RFC 9111 §4.1): normalised host and target.

    Args:
        head: the request; its target may be in origin-form or absolute-form.

    Returns:
        ``"{host}{target}"``, e.g. ``"example.com/a%2Fb?x=1"``.
    """
    return key_of(head.host, head.target)


def key_of(host: str, target: str) -> str:
    """The primary key for a host and request target; see :func:`primary_key`."""
    return f"{normalize_host(host)}{normalize_target(target)}"


def normalize_host(host: str) -> str:
    """Lower-case ``host`` and drop any port (``[v6]:port`` included) and trailing dot.

    Applied until nothing changes, so that normalising a normalised host is a no-op.
    """
    host = host.lower()
    while True:  # after lower-casing, each further round only removes characters
        shorter = _strip_host_once(host)
        if shorter == host:
            return host
        host = shorter


def _strip_host_once(host: str) -> str:
    host = host.strip()
    if host.startswith("["):
        return host[: host.find("]") + 1] if "]" in host else host
    name, sep, port = host.rpartition(":")
    if sep and port.isdigit():
        host = name
    return host.rstrip(".") or host


def normalize_target(target: str) -> str:
    """Origin-form target, percent-encoding normalised; absolute-form becomes path+query."""
    if "://" in target.split("?", 1)[0]:
        parts = urlsplit(target)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
    target = target.split("#", 1)[0]
    if not target.startswith("/") and target != "*":
        target = "/" + target
    return _PERCENT.sub(_normalize_escape, target)


def _normalize_escape(match: re.Match[str]) -> str:
    char = chr(int(match[1], 16))
    return char if char in _UNRESERVED else f"%{match[1].upper()}"


def vary_fields(response: Headers) -> tuple[str, ...] | None:
    """The field names a response varies on (RFC 9111 §4.1), lower-cased and de-duplicated.

    Args:
        response: response header fields.

    Returns:
        The names in order of first appearance, ``()`` without Vary, or None for ``Vary: *``
        (which never matches a later request, so such a response is not stored).
    """
    names: list[str] = []
    for value in response.get_all("vary"):
        for name in value.split(","):
            name = name.strip().lower()
            if name == "*":
                return None
            if name and name not in names:
                names.append(name)
    return tuple(names)


def variant_of(request: Headers, fields: Iterable[str]) -> Variant:
    """The normalised selecting values of a request for the given Vary fields (RFC 9111 §4.1).

    Values of repeated fields are comma-joined, whitespace around list commas is removed and
    inner whitespace runs collapse to one space; an absent field is :data:`ABSENT`.

    Args:
        request: request header fields.
        fields: the Vary field names (lower-case).

    Returns:
        ``((name, value), ...)`` in the order of ``fields``.
    """
    return tuple((name, _selecting_value(request, name)) for name in fields)


def _selecting_value(request: Headers, name: str) -> str:
    values = request.get_all(name)
    if not values:
        return ABSENT
    items = (_WHITESPACE.sub(" ", item.strip()) for v in values for item in v.split(","))
    return ",".join(item for item in items if item)
