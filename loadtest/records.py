"""One record per simulated request, and reading the edge's verdict from ``Cache-Status``.

RFC 9211 §2: each cache on the path appends its member to the ``Cache-Status`` list, so the
first member is the cache nearest the origin (a shield) and the *last* is the one nearest the
user (the edge). A request is an edge hit when the last member carries the bare ``hit`` parameter.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from cdn_core.http import split_unquoted


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestRecord:
    """What one request did, as seen by the user.

    ``started_at`` is wall-clock seconds; ``ttfb_ms`` runs from the start (DNS excluded) to the
    response head; ``attempts`` counts the edges tried (more than one means a failover).
    """

    region: str
    path: str
    started_at: float
    ttfb_ms: float | None
    total_ms: float
    status: int | None
    cache_status: str | None
    edge: str | None
    error: str | None = None
    attempts: int = 1
    body_bytes: int = 0

    @property
    def ok(self) -> bool:
        return self.error is None and self.status is not None and self.status < 500

    @property
    def edge_hit(self) -> bool:
        return is_edge_hit(self.cache_status)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RequestRecord:
        return cls(**data)


def split_list(value: str) -> list[str]:
    """Split a structured-field list on commas outside quoted strings (RFC 8941 §3.1)."""
    return [m.strip() for m in split_unquoted(value, ",") if m.strip()]


def member_params(member: str) -> tuple[str, dict[str, str]]:
    """The cache name and parameters of one member: ``'e1; hit; ttl=4'`` -> ``('e1', {...})``.

    A bare parameter (``hit``) maps to ``"?1"``, the structured-field boolean true.
    """
    parts = [p.strip() for p in split_unquoted(member, ";")]
    params: dict[str, str] = {}
    for part in parts[1:]:
        key, sep, raw = part.partition("=")
        if key:
            params[key.strip().lower()] = raw.strip() if sep else "?1"
    return parts[0], params


def edge_member(cache_status: str | None) -> str | None:
    """The member the user-facing cache added: the last one (RFC 9211 §2)."""
    if not cache_status:
        return None
    members = split_list(cache_status)
    return members[-1] if members else None


def is_edge_hit(cache_status: str | None) -> bool:
    member = edge_member(cache_status)
    if member is None:
        return False
    return member_params(member)[1].get("hit") == "?1"
