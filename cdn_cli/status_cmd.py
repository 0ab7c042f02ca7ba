"""``cdn status --config F``: every configured node's health and figures, the latency matrix
(rows: nodes; columns: probe targets; cells: smoothed RTT in ms, ``down`` or ``-``), then the
chosen shield per edge and origin with the reason of the choice (the edge's last route)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from cdn_cli.configfile import add_config_option, read_config
from cdn_core.config import Config, Role
from cdn_core.registry import ClusterSnapshot, RouteChoice
from controlplane.connect import read_snapshot
from controlplane.store import StoreUnavailable


def register(subparsers: Any) -> None:
    status = subparsers.add_parser("status", help="nodes, health and the latency matrix")
    add_config_option(status)
    status.set_defaults(run=run_status)


def run_status(args: argparse.Namespace) -> int:
    config = read_config(args.config)
    try:
        snapshot = asyncio.run(read_snapshot(config.control_plane, config.cluster))
    except StoreUnavailable as exc:
        print(f"cdn status: {exc}", file=sys.stderr)
        return 1
    print("\n".join(render_status(config, snapshot)))
    return 0


def render_status(config: Config, snapshot: ClusterSnapshot) -> list[str]:
    rows: list[tuple[str, ...]] = [
        ("NODE", "ROLE", "REGION", "HEALTH", "HEARTBEAT", "OBJECTS", "BYTES")
    ]
    for node in config.nodes:
        report = snapshot.nodes.get(node.name)
        if report is None:
            rows.append((node.name, node.role.value, node.region, "down", "-", "-", "-"))
            continue
        age = max(0.0, snapshot.taken_at - report.heartbeat_at)
        rows.append(
            (
                node.name,
                node.role.value,
                node.region,
                "up",
                f"{age:.1f}s ago",
                str(report.cache_objects),
                str(report.cache_bytes),
            )
        )
    lines = _table(rows)
    targets = sorted({t for r in snapshot.nodes.values() for t in r.estimates})
    if targets:
        lines += ["", "latency (smoothed RTT, ms):"]
        matrix: list[tuple[str, ...]] = [("", *targets)]
        for node in config.nodes:
            report = snapshot.nodes.get(node.name)
            cells = [_cell(report.estimate(t) if report else None) for t in targets]
            matrix.append((node.name, *cells))
        lines += _table(matrix)
    return lines + _routes(config, snapshot)


def _routes(config: Config, snapshot: ClusterSnapshot) -> list[str]:
    rows: list[tuple[str, ...]] = [("EDGE", "ORIGIN", "SHIELD", "VIA", "REASON")]
    for node in config.nodes_with_role(Role.EDGE):
        report = snapshot.nodes.get(node.name)
        for origin, route in sorted(report.routes.items() if report else ()):
            rows.append((node.name, origin, *_route_cells(route)))
    if len(rows) == 1:
        return []
    return ["", "chosen shield per edge (last route):", *_table(rows)]


def _route_cells(route: RouteChoice) -> tuple[str, str, str]:
    return (route.shield or "direct", route.via or "-", route.reason or "-")


def _cell(estimate: Any) -> str:
    if estimate is None:
        return "-"
    if not estimate.up:
        return "down"
    if estimate.rtt_ms is None:
        return "-"
    return f"{estimate.rtt_ms:.1f}"


def _table(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    ]
