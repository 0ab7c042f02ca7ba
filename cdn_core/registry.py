"""What every node tells the control plane, and what every reader gets back.

This is the overlay's shared language: the DNS router, the path planner, ``cdn status`` and the lab
all read :class:`ClusterSnapshot`. Nodes write a :class:`NodeReport` every heartbeat; a report
carries the node's identity, its cache and load figures, and its latency estimate toward every
probe target.

Probe targets are named by kind, so one mapping holds them all:

- ``node:<name>``: an overlay peer (edge → shield, shield → shield)
- ``origin:<name>``: an origin from ``[[origins]]``
- ``net:<name>``: a ``[[client_networks]]`` probe target (edges only)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from cdn_core.config import Role


def node_target(name: str) -> str:
    return f"node:{name}"


def origin_target(name: str) -> str:
    return f"origin:{name}"


def network_target(name: str) -> str:
    return f"net:{name}"


@dataclass(frozen=True, slots=True, kw_only=True)
class PeerEstimate:
    """The prober's smoothed view of one target (see ``cdn_core.latency``)."""

    rtt_ms: float | None
    rttvar_ms: float
    loss: float
    up: bool
    samples: int


@dataclass(frozen=True, slots=True, kw_only=True)
class RouteChoice:
    """An edge's last route toward one origin, as ``cdn status`` shows it.

    ``shield`` is None when the edge goes direct; ``via`` names the relay of a detour;
    ``reason`` is a :class:`cdn_core.overlay.PathReason` value.
    """

    shield: str | None
    via: str | None = None
    reason: str = ""
    planned_at: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeStats:
    """The figures a node's data plane hands its control-plane agent each heartbeat."""

    cache_objects: int = 0
    cache_bytes: int = 0
    load_rps: float = 0.0
    routes: Mapping[str, RouteChoice] = field(default_factory=dict)  # per origin (edges)


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeReport:
    """One node's heartbeat: identity, health figures and latency estimates.

    Times are wall-clock seconds (``time.time()``) because they cross machines.
    """

    node: str
    role: Role
    region: str
    listen: str
    admin: str
    public_address: str
    config_version: str
    started_at: float
    heartbeat_at: float
    cache_objects: int = 0
    cache_bytes: int = 0
    load_rps: float = 0.0
    capacity_rps: float | None = None
    estimates: Mapping[str, PeerEstimate] = field(default_factory=dict)
    routes: Mapping[str, RouteChoice] = field(default_factory=dict)  # origin -> last route

    def estimate(self, target: str) -> PeerEstimate | None:
        return self.estimates.get(target)

    @property
    def overloaded(self) -> bool:
        return self.capacity_rps is not None and self.load_rps > self.capacity_rps


@dataclass(frozen=True, slots=True, kw_only=True)
class ClusterSnapshot:
    """The live nodes as the control plane sees them at ``taken_at`` (wall-clock seconds).

    A node whose registration expired is absent: absent means down.
    """

    taken_at: float
    nodes: Mapping[str, NodeReport] = field(default_factory=dict)

    def is_live(self, name: str) -> bool:
        return name in self.nodes
