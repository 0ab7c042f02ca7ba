"""The authentication tag of an overlay hop: an HMAC-SHA256 with the cluster secret.

The sending node signs the request, not just the route: the method, the Host it sends, the
target, every end-to-end header field it sends (:func:`signed_fields`: everything but the
``X-Overlay-*`` fields, the hop-by-hop fields and the framing that each hop computes for itself),
a timestamp, its own name and the planned route (the hops still ahead). The receiving node
recomputes the tag over what it received and compares it in constant time, so a field added,
removed or changed on the way (or in a replayed capture) makes the tag fail. A timestamp
further than ``max_skew_s`` from the receiver's clock is refused, so a capture cannot be
replayed later; within the window the very same request can be replayed, which for the
idempotent requests the overlay carries yields the same answer. The window is the price of no
shared nonce state. The request body is not signed (it streams); an unsafe request is never
replayed by the overlay itself.

On the wire the tag travels in ``X-Overlay-Auth`` as ``v2=<hex>``, next to ``X-Overlay-Node``,
``X-Overlay-Time`` and ``X-Overlay-Route`` (see :mod:`cdn_core.hop`).
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import math
from collections.abc import Collection
from dataclasses import dataclass

from cdn_core.http import FRAMING_FIELDS, Headers, strip_hop_by_hop

AUTH_HEADER = "x-overlay-auth"
NODE_HEADER = "x-overlay-node"
TIME_HEADER = "x-overlay-time"
ROUTE_HEADER = "x-overlay-route"
_VERSION = "v2"
_OVERLAY_PREFIX = "x-overlay-"
_UNSIGNED = frozenset({"host", *FRAMING_FIELDS})


class AuthFailure(enum.Enum):
    """Why an overlay request was refused (a metric label; the client gets 403)."""

    MISSING = "missing"  # no tag, node or time
    MALFORMED = "malformed"  # a field does not parse
    UNKNOWN_NODE = "unknown-node"  # the sender is not a node of this overlay
    EXPIRED = "expired"  # timestamp older than the allowed skew (replay)
    FUTURE = "future"  # timestamp ahead of the allowed skew
    BAD_TAG = "bad-tag"  # the HMAC does not match


@dataclass(frozen=True, slots=True, kw_only=True)
class Valid:
    """The tag verifies: the sender and the route it planned."""

    node: str
    route: tuple[str, ...]
    timestamp: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Invalid:
    reason: AuthFailure


Verdict = Valid | Invalid


def signed_fields(headers: Headers) -> bytes:
    """The header fields a tag covers, canonically: ``name: value`` lines in received order.

    Left out: ``X-Overlay-*`` (the tag's own), hop-by-hop fields (RFC 9110 §7.6.1), ``Host``
    (signed on its own) and the framing fields, which every hop computes for the body it sends.
    """
    kept = strip_hop_by_hop(headers)
    lines = [
        f"{name}: {value.strip()}"
        for name, value in kept
        if name not in _UNSIGNED and not name.startswith(_OVERLAY_PREFIX)
    ]
    return hashlib.sha256("\n".join(lines).encode("utf-8", "surrogateescape")).digest()


def _message(
    method: str,
    host: str,
    target: str,
    timestamp: str,
    node: str,
    route: tuple[str, ...],
    headers: Headers,
) -> bytes:
    fields = (_VERSION, method.upper(), host.lower(), target, timestamp, node, ",".join(route))
    head = "\n".join(fields).encode("utf-8", "surrogateescape")
    return head + b"\n" + signed_fields(headers)


def format_route(route: tuple[str, ...]) -> str:
    return ",".join(route)


def parse_route(value: str | None) -> tuple[str, ...]:
    """The hops of an ``X-Overlay-Route`` value (empty for an absent or empty value)."""
    if not value:
        return ()
    return tuple(h.strip() for h in value.split(",") if h.strip())


def sign(
    secret: bytes,
    *,
    method: str,
    host: str,
    target: str,
    node: str,
    route: tuple[str, ...] = (),
    headers: Headers | None = None,
    now: float,
) -> Headers:
    """The overlay authentication fields for one hop.

    Args:
        secret: the cluster secret (``secret_file``).
        method: the request method.
        host: the request's host, lower-cased without port.
        target: the request target (path and query).
        node: the sending node's name.
        route: the hops still ahead, the next one first.
        headers: the fields the hop sends (see :func:`signed_fields`).
        now: wall-clock seconds (``time.time()``), because the tag crosses machines.

    Returns:
        ``X-Overlay-Node``, ``X-Overlay-Time``, ``X-Overlay-Route`` and ``X-Overlay-Auth``.
    """
    timestamp = f"{now:.3f}"
    message = _message(method, host, target, timestamp, node, route, headers or Headers())
    tag = hmac.new(secret, message, hashlib.sha256).hexdigest()
    return Headers(
        [
            (NODE_HEADER, node),
            (TIME_HEADER, timestamp),
            (ROUTE_HEADER, format_route(route)),
            (AUTH_HEADER, f"{_VERSION}={tag}"),
        ]
    )


def verify(
    secret: bytes,
    headers: Headers,
    *,
    method: str,
    host: str,
    target: str,
    now: float,
    max_skew_s: float,
    known_nodes: Collection[str] | None = None,
) -> Verdict:
    """Check the overlay authentication fields of a received request.

    Args:
        secret: the cluster secret.
        headers: the received request's fields (all of them: see :func:`signed_fields`).
        method: the received method.
        host: the received host, lower-cased without port.
        target: the received target.
        now: the receiver's wall clock in seconds.
        max_skew_s: how far the timestamp may be from ``now`` either way.
        known_nodes: when given, the sender must be one of them.

    Returns:
        :class:`Valid` with the sender and route, or :class:`Invalid` with the reason.
    """
    node = headers.get(NODE_HEADER)
    stamp = headers.get(TIME_HEADER)
    auth = headers.get(AUTH_HEADER)
    if not node or not stamp or not auth:
        return Invalid(reason=AuthFailure.MISSING)
    route = parse_route(headers.get(ROUTE_HEADER))
    version, sep, tag = auth.strip().partition("=")
    timestamp = _parse_time(stamp)
    if version != _VERSION or not sep or len(tag) != 64 or timestamp is None:
        return Invalid(reason=AuthFailure.MALFORMED)
    if known_nodes is not None and node not in known_nodes:
        return Invalid(reason=AuthFailure.UNKNOWN_NODE)
    if timestamp < now - max_skew_s:
        return Invalid(reason=AuthFailure.EXPIRED)
    if timestamp > now + max_skew_s:
        return Invalid(reason=AuthFailure.FUTURE)
    message = _message(method, host, target, stamp, node, route, headers)
    expected = hmac.new(secret, message, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode(), tag.lower().encode("ascii", "replace")):
        return Invalid(reason=AuthFailure.BAD_TAG)
    return Valid(node=node, route=route, timestamp=timestamp)


def _parse_time(value: str) -> float | None:
    try:
        timestamp = float(value)
    except ValueError:
        return None
    return timestamp if math.isfinite(timestamp) else None
