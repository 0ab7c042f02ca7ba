"""The text ``cdn lab`` prints once it is ready: what runs where, and a quickstart that works."""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from pathlib import Path

from cdn_core.config import Role
from infra.lab_plan import LabPlan

MEMORY_WARNING = (
    "Note: no redis-server on PATH, so every process runs its own in-memory control plane.",
    "Purges, latency reports and health do not cross processes: the router answers with all",
    "edges and purges reach no node. Install redis-server (Debian package) for the full lab.",
)


def client_address(plan: LabPlan, network_index: int = 0) -> tuple[str, str, str]:
    """(network name, a user address inside it, its /24) for quickstart commands."""
    network = plan.config.client_networks[network_index]
    prefix = network.prefixes[0]
    user = str(prefix.network_address + 9)
    subnet = f"{prefix.network_address}/{max(prefix.prefixlen, 24)}"
    return network.name, user, subnet


def guide(plan: LabPlan, *, config_path: str, run_dir: str) -> str:
    config = plan.config
    lines = [f"Overlay CDN lab {config.cluster!r} is up. Run dir: {run_dir}", ""]
    lines += _processes(plan)
    lines += ["", *_wan(plan), "", *_quickstart(plan, config_path, run_dir)]
    if config.control_plane == "memory":
        lines += ["", *MEMORY_WARNING]
    return "\n".join(lines)


def _processes(plan: LabPlan) -> list[str]:
    config = plan.config
    dns = config.dns
    admin = f"  metrics http://{dns.admin}/metrics" if dns.admin else ""
    lines = [
        f"  {'router':<14} dns {dns.listen} (zone {dns.zone}, policy {dns.policy.value}){admin}",
        f"  {'origin':<14} {config.origins[0].url} (region {_origin_region(plan)})",
        f"  {'control plane':<14} {config.control_plane}",
    ]
    for node in config.nodes:
        lines.append(
            f"  {node.name:<14} {node.role.value:<6} {node.region:<4} http {node.listen}"
            f"  metrics http://{node.admin}/metrics"
        )
    for network in config.client_networks:
        prefixes = ", ".join(str(p) for p in network.prefixes)
        lines.append(f"  {network.name:<14} users in {network.region} at {prefixes}")
    return lines


def _wan(plan: LabPlan) -> list[str]:
    lab = plan.config.lab
    if lab is None:
        return []
    pairs = [
        f"{a}-{b} {lab.rtt_between(a, b):g}ms"
        for i, a in enumerate(plan.regions)
        for b in plan.regions[i + 1 :]
    ]
    return [f"WAN RTTs: intra-region {lab.intra_region_rtt_ms:g}ms, " + ", ".join(pairs)]


def cdn_command() -> str:
    """How to call ``cdn`` from here: plain ``cdn`` when PATH finds this one, else its path."""
    ours = Path(sys.executable).parent / "cdn"
    found = shutil.which("cdn")
    if not ours.exists() or (found is not None and Path(found).resolve() == ours.resolve()):
        return "cdn"
    try:
        return os.path.relpath(ours)
    except ValueError:
        return str(ours)


def _quickstart(plan: LabPlan, config_path: str, run_dir: str) -> list[str]:
    config = plan.config
    cdn = cdn_command()
    dns = config.dns
    host = config.origins[0].hostnames[0]
    port = next(n.listen.port for n in config.nodes if n.role is Role.EDGE)
    network, user, subnet = client_address(plan)
    cfg = shlex.quote(config_path)
    dig = f"dig @{dns.listen.host} -p {dns.listen.port} {host} A +subnet={subnet} +short"
    edge = f"$({dig} | head -n1)"
    curl = (
        f"curl -s -o /dev/null -D - --interface {user} --resolve {host}:{port}:{edge} "
        f"http://{host}:{port}/obj/3"
    )
    a, b = (plan.regions + plan.regions)[:2]
    return [
        f"Quickstart (as a user in {network}, {subnet}):",
        f"  {dig}",
        f"  {curl}",
        f"  {curl}    # again: Cache-Status says hit",
        f"  {cdn} purge url http://{host}/obj/3 --wait --config {cfg}",
        f"  {cdn} route explain --config {cfg} {user}",
        f"  {cdn} status --config {cfg}",
        f"  {cdn} lab wan set {a} {b} --rtt 300ms --run-dir {shlex.quote(run_dir)}",
        "",
        f"Prometheus scrape config: {os.path.join(run_dir, 'prometheus.yml')}",
        "Ctrl-C stops the lab and every process it started.",
    ]


def _origin_region(plan: LabPlan) -> str:
    lab = plan.config.lab
    return lab.origin_region if lab is not None and lab.origin_region else plan.regions[0]
