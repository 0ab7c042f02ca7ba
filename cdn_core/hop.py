"""Wrapping and unwrapping a request for an overlay hop: Via, CDN-Loop and the overlay fields.

Each overlay node that forwards a request appends itself to ``Via`` (RFC 9110 §7.6.3) and to
``CDN-Loop`` (RFC 8586) with the cdn-id ``<node>.<cluster>``. A node that finds its own cdn-id in
``CDN-Loop`` refuses the request with 508 (Loop Detected, RFC 5842 §7.2), and so does any node
when the overlay hops already recorded reach the hop limit.

The last hop unwraps: the origin sees the client's request with ``X-Forwarded-For`` and, instead
of the internal hops, one ``Via`` and one ``CDN-Loop`` entry for the whole cluster, so that a
second CDN in front of or behind ours can still detect a loop (RFC 8586 §2) while the internal
node names and every ``X-Overlay-*`` field stay inside the overlay.
"""

from __future__ import annotations

import enum
from collections.abc import Collection
from dataclasses import dataclass

from cdn_core.http import Headers, strip_hop_by_hop

OVERLAY_PREFIX = "x-overlay-"
LOOP_STATUS = 508
_PROTOCOL = "1.1"


class HopRefusal(enum.Enum):
    """Why a hop refuses to forward (a metric label; the client gets 508)."""

    LOOP = "loop"  # our own cdn-id is already in CDN-Loop
    HOP_LIMIT = "hop-limit"  # the overlay hops recorded reach overlay.hop_limit


@dataclass(frozen=True, slots=True, kw_only=True)
class HopOk:
    hops: int  # overlay hops of this cluster already recorded


@dataclass(frozen=True, slots=True, kw_only=True)
class HopRefused:
    reason: HopRefusal
    status: int = LOOP_STATUS


HopCheck = HopOk | HopRefused


def cdn_id(cluster: str, node: str | None = None) -> str:
    """The RFC 8586 cdn-id of a node (``<node>.<cluster>``), or of the whole cluster."""
    return f"{node}.{cluster}" if node else cluster


def cdn_loop_ids(headers: Headers) -> tuple[str, ...]:
    """The cdn-ids listed in every ``CDN-Loop`` field, in order, parameters dropped (RFC 8586 §2).

    Args:
        headers: a request's fields.

    Returns:
        The cdn-ids, lower-cased.
    """
    ids: list[str] = []
    for value in headers.get_all("cdn-loop"):
        for member in value.split(","):
            name = member.split(";", 1)[0].strip().lower()
            if name:
                ids.append(name)
    return tuple(ids)


def check_hop(headers: Headers, *, cluster: str, node: str, hop_limit: int) -> HopCheck:
    """Refuse a request that loops through ``node`` or has taken too many overlay hops.

    Args:
        headers: the received request's fields.
        cluster: this overlay's cluster name.
        node: this node's name.
        hop_limit: the most overlay hops a request may have taken before reaching this node.

    Returns:
        :class:`HopOk` with the hop count, or :class:`HopRefused` (status 508, RFC 5842 §7.2).
    """
    ids = cdn_loop_ids(headers)
    if cdn_id(cluster, node).lower() in ids:
        return HopRefused(reason=HopRefusal.LOOP)
    suffix = "." + cluster.lower()
    hops = sum(1 for i in ids if i.endswith(suffix))
    if hops >= hop_limit:
        return HopRefused(reason=HopRefusal.HOP_LIMIT)
    return HopOk(hops=hops)


def check_client_loop(headers: Headers, *, cluster: str) -> HopCheck:
    """Refuse a client request that already went through this cluster (RFC 8586 §2).

    An origin that points back at the CDN makes the last hop's cluster-wide cdn-id come back
    to an edge; answering 508 stops the loop at once.
    """
    if cdn_id(cluster).lower() in cdn_loop_ids(headers):
        return HopRefused(reason=HopRefusal.LOOP)
    return HopOk(hops=0)


def forward_headers(
    headers: Headers, *, cluster: str, node: str, client_ip: str | None = None
) -> Headers:
    """The fields of a request forwarded to the next overlay hop (without the auth fields).

    Args:
        headers: the received request's fields.
        cluster: this overlay's cluster name.
        node: this (forwarding) node's name.
        client_ip: the user's address, given by the edge only: appended to X-Forwarded-For.

    Returns:
        The fields minus hop-by-hop and old overlay fields, with ``CDN-Loop`` and ``Via``
        extended (``Via`` only when the caching engine did not already add this node);
        :func:`cdn_core.overlay_auth.sign` adds the authentication fields.
    """
    out = _without_overlay(strip_hop_by_hop(headers))
    if client_ip is not None:
        out = _append(out, "x-forwarded-for", client_ip)
    names = {node.lower(), cdn_id(cluster, node).lower()}
    if not any(_via_name(v) in names for v in _members(out, "via")):
        out = _append(out, "via", f"{_PROTOCOL} {cdn_id(cluster, node)}")
    return _append(out, "cdn-loop", cdn_id(cluster, node))


def strip_overlay_headers(
    headers: Headers,
    *,
    cluster: str,
    nodes: Collection[str] = (),
    client_ip: str | None = None,
) -> Headers:
    """The fields the origin sees: the overlay unwrapped at the last hop.

    Every ``X-Overlay-*`` field and every hop-by-hop field is dropped; the ``Via`` and
    ``CDN-Loop`` entries of this cluster's nodes (named ``<node>.<cluster>``, or just ``<node>``
    for one of ``nodes``) are replaced by one entry for the cluster.
    ``X-Forwarded-For`` (added by the edge) stays.

    Args:
        headers: the fields as received by the last overlay hop (or by an edge going direct).
        cluster: this overlay's cluster name.
        nodes: the names of the cluster's nodes.
        client_ip: the user's address, when an edge goes direct: appended to X-Forwarded-For.

    Returns:
        The fields to send to the origin.
    """
    out = _without_overlay(strip_hop_by_hop(headers))
    if client_ip is not None:
        out = _append(out, "x-forwarded-for", client_ip)
    internal = {n.lower() for n in nodes}
    via = [v for v in _members(out, "via") if not _ours(_via_name(v), cluster, internal)]
    loop = [v for v in _members(out, "cdn-loop") if not _ours(_loop_name(v), cluster, internal)]
    via.append(f"{_PROTOCOL} {cdn_id(cluster)}")
    loop.append(cdn_id(cluster))
    return (
        out.without("via", "cdn-loop")
        .with_set("via", ", ".join(via))
        .with_set("cdn-loop", ", ".join(loop))
    )


def is_overlay_header(name: str) -> bool:
    return name.lower().startswith(OVERLAY_PREFIX)


def _without_overlay(headers: Headers) -> Headers:
    return Headers([(k, v) for k, v in headers if not k.startswith(OVERLAY_PREFIX)])


def _members(headers: Headers, name: str) -> list[str]:
    return [m.strip() for v in headers.get_all(name) for m in v.split(",") if m.strip()]


def _ours(name: str, cluster: str, nodes: set[str]) -> bool:
    cluster = cluster.lower()
    return name == cluster or name.endswith("." + cluster) or name in nodes


def _via_name(member: str) -> str:
    parts = member.split()
    return parts[1].lower() if len(parts) > 1 else ""


def _loop_name(member: str) -> str:
    return member.split(";", 1)[0].strip().lower()


def _append(headers: Headers, name: str, member: str) -> Headers:
    joined = headers.get_joined(name)
    return headers.with_set(name, f"{joined}, {member}" if joined else member)
