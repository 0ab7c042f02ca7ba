"""``cdn route explain --config F CLIENT_IP``: which edge DNS gives a client, and why."""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import sys
from typing import Any

from cdn_cli.configfile import add_config_option, read_config
from cdn_core.routing import (
    ClientRoute,
    NetworkTable,
    RoutingParams,
    RoutingState,
    RoutingTable,
    decide_routes,
    route_client,
)
from controlplane.connect import read_snapshot


def register(subparsers: Any) -> None:
    route = subparsers.add_parser("route", help="explain routing decisions")
    actions = route.add_subparsers(dest="action", metavar="ACTION", required=True)
    explain = actions.add_parser("explain", help="the edge DNS gives CLIENT_IP, and why")
    add_config_option(explain)
    explain.add_argument("client", metavar="CLIENT_IP")
    explain.set_defaults(run=run_explain)


def run_explain(args: argparse.Namespace) -> int:
    try:
        address = ipaddress.ip_address(args.client)
    except ValueError:
        print(f"cdn: {args.client!r} is not an IPv4 or IPv6 address", file=sys.stderr)
        return 2
    config = read_config(args.config)
    try:
        snapshot = asyncio.run(read_snapshot(config.control_plane, config.cluster))
    except Exception as exc:  # the store's errors: report, do not trace back
        print(f"cdn: cannot read the control plane {config.control_plane}: {exc}", file=sys.stderr)
        return 1
    table, _ = decide_routes(
        edges=config.nodes,
        networks=config.client_networks,
        snapshot=snapshot,
        state=RoutingState(),
        params=RoutingParams.from_dns(config.dns),
        now=snapshot.taken_at,
    )
    route = route_client(table, NetworkTable(config.client_networks), address)
    print(explain(address, table, route))
    return 0


def explain(address: object, table: RoutingTable, route: ClientRoute) -> str:
    decision = table.decision(route.network)
    lines = [
        f"client:   {address}",
        f"network:  {route.network or '(none: best median RTT over all networks)'}"
        f"  (ECS scope /{route.scope})",
        f"policy:   {table.policy.value}",
        "edges:",
        f"  {'edge':<20} {'address':<22} {'rtt_ms':>8} {'health':<11} load",
    ]
    for edge in decision.ranked:
        rtt = "-" if edge.rtt_ms is None else f"{edge.rtt_ms:.1f}"
        capacity = "-" if edge.capacity_rps is None else f"{edge.capacity_rps:.0f}"
        load = f"{edge.load_rps:.0f}/{capacity} rps" + (" OVERLOADED" if edge.overloaded else "")
        lines.append(
            f"  {edge.name:<20} {edge.address:<22} {rtt:>8} {edge.health.value:<11} {load}"
        )
    lines.append(f"chosen:   {', '.join(e.name for e in route.edges)}")
    lines.append(f"reason:   {route.reason.value}")
    return "\n".join(lines)
