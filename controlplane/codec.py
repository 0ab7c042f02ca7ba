"""JSON encoding of the control plane's values (reports and purge log entries)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from cdn_core.config import Role
from cdn_core.registry import NodeReport, PeerEstimate, RouteChoice


def report_to_json(report: NodeReport) -> str:
    data = {
        "node": report.node,
        "role": report.role.value,
        "region": report.region,
        "listen": report.listen,
        "admin": report.admin,
        "public_address": report.public_address,
        "config_version": report.config_version,
        "started_at": report.started_at,
        "heartbeat_at": report.heartbeat_at,
        "cache_objects": report.cache_objects,
        "cache_bytes": report.cache_bytes,
        "load_rps": report.load_rps,
        "capacity_rps": report.capacity_rps,
        "estimates": {t: _estimate_to_dict(e) for t, e in report.estimates.items()},
        "routes": {o: _route_to_dict(r) for o, r in report.routes.items()},
    }
    return json.dumps(data, separators=(",", ":"))


def report_from_json(text: str | bytes) -> NodeReport:
    """Parse a report; raises ValueError (or KeyError/TypeError) on a malformed one."""
    data = json.loads(text)
    estimates = data.get("estimates") or {}
    routes = data.get("routes") or {}
    return NodeReport(
        node=str(data["node"]),
        role=Role(data["role"]),
        region=str(data["region"]),
        listen=str(data["listen"]),
        admin=str(data["admin"]),
        public_address=str(data["public_address"]),
        config_version=str(data["config_version"]),
        started_at=float(data["started_at"]),
        heartbeat_at=float(data["heartbeat_at"]),
        cache_objects=int(data.get("cache_objects", 0)),
        cache_bytes=int(data.get("cache_bytes", 0)),
        load_rps=float(data.get("load_rps", 0.0)),
        capacity_rps=None if data.get("capacity_rps") is None else float(data["capacity_rps"]),
        estimates={str(t): _estimate_from_dict(e) for t, e in estimates.items()},
        routes={str(o): _route_from_dict(r) for o, r in routes.items()},
    )


def _estimate_to_dict(estimate: PeerEstimate) -> dict[str, Any]:
    return {
        "rtt_ms": estimate.rtt_ms,
        "rttvar_ms": estimate.rttvar_ms,
        "loss": estimate.loss,
        "up": estimate.up,
        "samples": estimate.samples,
    }


def _estimate_from_dict(data: Mapping[str, Any]) -> PeerEstimate:
    rtt = data.get("rtt_ms")
    return PeerEstimate(
        rtt_ms=None if rtt is None else float(rtt),
        rttvar_ms=float(data["rttvar_ms"]),
        loss=float(data["loss"]),
        up=bool(data["up"]),
        samples=int(data["samples"]),
    )


def _route_to_dict(route: RouteChoice) -> dict[str, Any]:
    return {
        "shield": route.shield,
        "via": route.via,
        "reason": route.reason,
        "planned_at": route.planned_at,
    }


def _route_from_dict(data: Mapping[str, Any]) -> RouteChoice:
    shield, via = data.get("shield"), data.get("via")
    return RouteChoice(
        shield=None if shield is None else str(shield),
        via=None if via is None else str(via),
        reason=str(data.get("reason", "")),
        planned_at=float(data.get("planned_at", 0.0)),
    )
