"""The lab's wiring plan: which real socket sits behind each advertised address, and where.

A lab topology is an ordinary overlay config plus a ``[lab]`` section. Every advertised
address in it (a node's ``listen`` and ``admin``, the origin's URL, each client network's probe
target) becomes the *front* of a WAN relay; the real socket binds a *backend* address on the
loopback range reserved for its region (``127.0.<100 + region index>.1``, on a free port).
Nodes open their outgoing connections from their region's backend address, and simulated users
from an address inside their client network, so a relay can tell the source region of each
connection from its peer address and delay it by the RTT between the two regions.

This module is pure: it takes the parsed topology and a port allocator and returns the plan,
including the runtime config document that every lab process reads.
"""

from __future__ import annotations

import copy
import ipaddress
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from cdn_core.config import Config, HostPort, load_config
from cdn_core.errors import ConfigError


@dataclass(frozen=True, slots=True, kw_only=True)
class RelaySpec:
    """One WAN relay: ``front`` (advertised, in ``region``) forwards to ``backend``."""

    name: str
    region: str
    front: HostPort
    backend: HostPort


@dataclass(frozen=True, slots=True, kw_only=True)
class LabPlan:
    config: Config
    document: dict[str, Any]
    regions: tuple[str, ...]
    relays: tuple[RelaySpec, ...]
    origin_backend: HostPort
    probe_backends: Mapping[str, HostPort]
    source_regions: tuple[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str], ...]

    def region_of(self, address: str) -> str | None:
        """The region a peer address belongs to (a node's source address or a client network)."""
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return None
        best: tuple[int, str] | None = None
        for network, region in self.source_regions:
            if ip in network and (best is None or network.prefixlen > best[0]):
                best = (network.prefixlen, region)
        return best[1] if best else None

    def rtt_ms(self, source_region: str | None, front_region: str) -> float:
        lab = self.config.lab
        if source_region is None or lab is None:
            return 0.0
        return lab.rtt_between(source_region, front_region)


def backend_host(region_index: int) -> str:
    return f"127.0.{100 + region_index}.1"


def plan_lab(
    topology: Mapping[str, Any],
    *,
    base_dir: str,
    control_plane: str,
    secret_file: str,
    allocate_port: Callable[[str], int],
) -> LabPlan:
    """Wire a topology for one machine.

    Args:
        topology: the parsed topology file (config format plus ``[lab]``).
        base_dir: where relative paths of the topology resolve.
        control_plane: the control-plane URL the lab started (redis:// or "memory").
        secret_file: the cluster secret the lab generated.
        allocate_port: returns a free TCP port on the given loopback host.

    Raises:
        ConfigError: the topology is not a valid config, or has no ``[lab]`` section.
    """
    checked = load_config(topology, base_dir=base_dir)
    if checked.lab is None:
        raise ConfigError("lab", None, "a lab topology needs a [lab] section")
    regions = _regions(checked)
    index = {region: i for i, region in enumerate(regions)}
    document = copy.deepcopy(dict(topology))
    document["control_plane"] = control_plane
    document["secret_file"] = secret_file
    relays: list[RelaySpec] = []

    def backend(region: str) -> HostPort:
        host = backend_host(index[region])
        return HostPort(host, allocate_port(host))

    for raw, node in zip(document["nodes"], checked.nodes, strict=True):
        listen, admin = backend(node.region), backend(node.region)
        raw["bind"], raw["admin_bind"] = str(listen), str(admin)
        raw["source_address"] = listen.host
        relays.append(
            RelaySpec(name=node.name, region=node.region, front=node.listen, backend=listen)
        )
        relays.append(
            RelaySpec(
                name=f"{node.name}/admin", region=node.region, front=node.admin, backend=admin
            )
        )
    origin_region = checked.lab.origin_region or regions[0]
    if origin_region not in index:
        raise ConfigError("lab.origin_region", origin_region, "is not a region of any node")
    origin = checked.origins[0]
    origin_backend = backend(origin_region)
    relays.append(
        RelaySpec(
            name=f"origin/{origin.name}",
            region=origin_region,
            front=origin.address,
            backend=origin_backend,
        )
    )
    probe_backends: dict[str, HostPort] = {}
    for network in checked.client_networks:
        probe_backends[network.name] = backend(network.region)
        relays.append(
            RelaySpec(
                name=f"probe/{network.name}",
                region=network.region,
                front=network.probe,
                backend=probe_backends[network.name],
            )
        )
    sources = [
        (ipaddress.ip_network(f"{backend_host(i)}/32"), region) for region, i in index.items()
    ]
    sources += [(p, n.region) for n in checked.client_networks for p in n.prefixes]
    config = load_config(document, base_dir=base_dir)
    return LabPlan(
        config=config,
        document=document,
        regions=regions,
        relays=tuple(relays),
        origin_backend=origin_backend,
        probe_backends=probe_backends,
        source_regions=tuple(sources),
    )


def _regions(config: Config) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for node in config.nodes:
        seen.setdefault(node.region)
    for network in config.client_networks:
        seen.setdefault(network.region)
    if len(seen) > 150:
        raise ConfigError("nodes", len(seen), "the lab supports at most 150 regions")
    return tuple(seen)
