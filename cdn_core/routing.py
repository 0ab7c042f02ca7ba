"""Request routing: which edge(s) DNS hands to a client, and why.

The decision has two stages, both pure:

1. :func:`decide_routes` runs whenever the control-plane snapshot changes. For every client
   network (and for clients in no network) it ranks the edges by the smoothed RTT they measured
   toward that network, applies hysteresis against the previous choice, notes overload, and
   returns a :class:`RoutingTable` plus the new :class:`RoutingState` (previous choices), as
   values.
2. :func:`route_client` runs per query: longest-prefix match of the client address (RFC 7871
   client subnet, else the source address) to a network, the overload spill bucket, and the
   ECS SCOPE PREFIX-LENGTH the answer actually depends on (RFC 7871 §7.2.1).

A down (estimate says unreachable), unreported (registration expired) or stale (heartbeat older
than ``stale_after_s``) edge is never chosen while a healthy one exists; when none is left every
configured edge is answered and the reason says so.
"""

from __future__ import annotations

import enum
import ipaddress
import statistics
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from cdn_core.config import ClientNetwork, DnsConfig, NodeConfig, Role, RoutingPolicy
from cdn_core.errors import NoHealthyEdge
from cdn_core.registry import ClusterSnapshot, NodeReport, network_target

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Clients are spilled (on overload) by hashing this much of their address (ANCHORS §5).
SPILL_PREFIX = {4: 24, 6: 56}


class Reason(enum.Enum):
    """Why the answer is what it is: a closed set, used as a metric label."""

    LOWEST_RTT = "lowest_rtt"
    HYSTERESIS = "hysteresis"
    OVERLOAD_SPILL = "overload_spill"
    UNKNOWN_NETWORK = "unknown_network"
    NO_RTT_DATA = "no_rtt_data"
    NO_HEALTHY_EDGE = "no_healthy_edge"
    ROUND_ROBIN = "round_robin"


class Health(enum.Enum):
    """An edge's health as seen for one client network."""

    UP = "up"
    DOWN = "down"  # the edge reports the network's probe target unreachable
    UNREPORTED = "unreported"  # no live registration in the control plane
    STALE = "stale"  # its last heartbeat is older than stale_after_s


@dataclass(frozen=True, slots=True, kw_only=True)
class RoutingParams:
    """The ``[dns]`` knobs the decision uses."""

    policy: RoutingPolicy = RoutingPolicy.LATENCY
    answers: int = 1
    switch_margin_ms: float = 5.0
    switch_margin_ratio: float = 0.1
    overload_spill_share: float = 0.5
    stale_after_s: float = 10.0

    @classmethod
    def from_dns(cls, dns: DnsConfig, *, policy: RoutingPolicy | None = None) -> RoutingParams:
        return cls(
            policy=policy or dns.policy,
            answers=dns.answers,
            switch_margin_ms=dns.switch_margin_ms,
            switch_margin_ratio=dns.switch_margin_ratio,
            overload_spill_share=dns.overload_spill_share,
            stale_after_s=dns.stale_after_s,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class EdgeRank:
    """One edge as ranked for one client network."""

    name: str
    address: str
    health: Health
    rtt_ms: float | None
    load_rps: float = 0.0
    capacity_rps: float | None = None

    @property
    def eligible(self) -> bool:
        return self.health is Health.UP

    @property
    def overloaded(self) -> bool:
        return self.capacity_rps is not None and self.load_rps > self.capacity_rps


@dataclass(frozen=True, slots=True, kw_only=True)
class NetworkDecision:
    """The answer for one client network (``network=None``: clients in no network).

    ``spill`` is the answer for the share ``spill_share`` of clients moved off an overloaded
    choice; it is empty when nothing spills.
    """

    network: str | None
    ranked: tuple[EdgeRank, ...]
    chosen: tuple[EdgeRank, ...]
    reason: Reason
    spill: tuple[EdgeRank, ...] = ()
    spill_share: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class RoutingState:
    """The previous primary choice per network, carried from one decision to the next."""

    choices: Mapping[str | None, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class RoutingTable:
    """Decisions for every client network plus the unknown-network one."""

    decisions: Mapping[str, NetworkDecision]
    unknown: NetworkDecision
    policy: RoutingPolicy
    answers: int = 1

    def decision(self, network: str | None) -> NetworkDecision:
        return self.unknown if network is None else self.decisions[network]


@dataclass(frozen=True, slots=True, kw_only=True)
class NetworkMatch:
    """A client mapped to a network, with the ECS scope that mapping depends on."""

    network: str | None
    prefix_len: int
    scope: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientRoute:
    """The per-query result: the edges to answer, why, and the ECS scope to return."""

    network: str | None
    edges: tuple[EdgeRank, ...]
    reason: Reason
    scope: int


# -- longest-prefix match --------------------------------------------------------------------


def _common_prefix_len(a: int, b: int, bits: int) -> int:
    return bits - (a ^ b).bit_length()


class NetworkTable:
    """Longest-prefix match of client addresses onto ``[[client_networks]]`` (IPv4 and IPv6).

    Lookups probe one dict per distinct prefix length, longest first, so a query costs a few
    hash lookups whatever the number of prefixes.
    """

    def __init__(self, networks: Iterable[ClientNetwork]) -> None:
        self._prefixes: dict[int, list[tuple[int, int]]] = {4: [], 6: []}
        lengths: dict[int, set[int]] = {4: set(), 6: set()}
        table: dict[tuple[int, int, int], str] = {}
        for network in networks:
            for prefix in network.prefixes:
                key = (prefix.version, prefix.prefixlen, int(prefix.network_address))
                table.setdefault(key, network.name)
                lengths[prefix.version].add(prefix.prefixlen)
                self._prefixes[prefix.version].append((prefix.prefixlen, key[2]))
        self._table = table
        self._lengths = {v: sorted(ls, reverse=True) for v, ls in lengths.items()}

    def match(self, address: IPAddress) -> NetworkMatch:
        """The network holding ``address`` and the prefix length the answer depends on.

        The scope is the matched prefix length, lengthened just enough that no more specific
        configured prefix shares the client's scope block (RFC 7871 §7.2.1: every address in
        the returned scope must get the same answer).
        """
        version = address.version
        bits = address.max_prefixlen
        value = int(address)
        for length in self._lengths[version]:
            shift = bits - length
            network = self._table.get((version, length, (value >> shift) << shift))
            if network is not None:
                return NetworkMatch(
                    network=network, prefix_len=length, scope=self._scope(value, version, length)
                )
        return NetworkMatch(network=None, prefix_len=0, scope=self._scope(value, version, 0))

    def _scope(self, value: int, version: int, matched_len: int) -> int:
        bits = 32 if version == 4 else 128
        scope = matched_len
        for length, base in self._prefixes[version]:
            if length <= matched_len:
                continue
            common = _common_prefix_len(value, base, bits)
            if common >= matched_len:
                scope = max(scope, min(common + 1, bits))
        return scope


# -- ranking ---------------------------------------------------------------------------------


def _health(
    report: NodeReport | None, network: str | None, *, now: float, stale_s: float
) -> Health:
    if report is None:
        return Health.UNREPORTED
    if now - report.heartbeat_at > stale_s:
        return Health.STALE
    if network is not None:
        estimate = report.estimate(network_target(network))
        if estimate is not None and not estimate.up:
            return Health.DOWN
    return Health.UP


def _rtt(report: NodeReport | None, network: str) -> float | None:
    estimate = None if report is None else report.estimate(network_target(network))
    if estimate is None or not estimate.up:
        return None
    return estimate.rtt_ms


def _median_rtt(report: NodeReport | None, networks: Sequence[str]) -> float | None:
    values = [r for r in (_rtt(report, n) for n in networks) if r is not None]
    return statistics.median(values) if values else None


def _sort_key(edge: EdgeRank) -> tuple[bool, bool, float, str]:
    return (not edge.eligible, edge.rtt_ms is None, edge.rtt_ms or 0.0, edge.name)


def rank_edges(
    edges: Sequence[NodeConfig],
    snapshot: ClusterSnapshot,
    network: str | None,
    *,
    all_networks: Sequence[str],
    now: float,
    stale_after_s: float,
) -> tuple[EdgeRank, ...]:
    """Edges ordered for a client network: healthy first, then by smoothed RTT, then by name.

    For ``network=None`` (a client in no configured network) an edge's RTT is its median RTT
    over all networks. Edges with no RTT rank after measured ones.

    Args:
        edges: the configured edge nodes.
        snapshot: the live reports from the control plane.
        network: the client network's name, or None.
        all_networks: every configured network name (for the median).
        now: wall-clock seconds, compared with heartbeats.
        stale_after_s: a heartbeat older than this makes the edge stale.

    Returns:
        Every configured edge, best first.
    """
    ranked = []
    for node in edges:
        report = snapshot.nodes.get(node.name)
        rtt = _median_rtt(report, all_networks) if network is None else _rtt(report, network)
        ranked.append(
            EdgeRank(
                name=node.name,
                address=report.public_address if report else node.public_address,
                health=_health(report, network, now=now, stale_s=stale_after_s),
                rtt_ms=rtt,
                load_rps=report.load_rps if report else 0.0,
                capacity_rps=(report.capacity_rps if report else None) or node.capacity_rps,
            )
        )
    return tuple(sorted(ranked, key=_sort_key))


def _keep_previous(
    ranked: Sequence[EdgeRank], previous: str | None, params: RoutingParams
) -> EdgeRank | None:
    """The previous choice, if still healthy and not beaten by the switch margin."""
    current = next((e for e in ranked if e.name == previous and e.eligible), None)
    best = ranked[0]
    if current is None or current.rtt_ms is None or best.rtt_ms is None:
        return None
    margin = max(params.switch_margin_ms, params.switch_margin_ratio * current.rtt_ms)
    return current if current.rtt_ms - best.rtt_ms <= margin else None


def _answer_set(primary: EdgeRank, ranked: Sequence[EdgeRank], count: int) -> tuple[EdgeRank, ...]:
    rest = [e for e in ranked if e.eligible and e.name != primary.name]
    return (primary, *rest[: count - 1])


def decide_network(
    ranked: tuple[EdgeRank, ...],
    network: str | None,
    previous: str | None,
    params: RoutingParams,
) -> NetworkDecision:
    """Choose the answer for one network from its ranking, with hysteresis and overload spill.

    Args:
        ranked: the output of :func:`rank_edges` (not empty).
        network: the network's name, or None for clients in no network.
        previous: the primary chosen last time for this network, if any.
        params: the routing knobs.

    Returns:
        The decision; its ``chosen[0]`` is the new previous choice.

    Raises:
        NoHealthyEdge: ``ranked`` is empty (no edge is configured).
    """
    if not ranked:
        raise NoHealthyEdge("no edge is configured")
    eligible = [e for e in ranked if e.eligible]
    if not eligible:
        return NetworkDecision(
            network=network,
            ranked=ranked,
            chosen=ranked[: params.answers],
            reason=Reason.NO_HEALTHY_EDGE,
        )
    if params.policy is RoutingPolicy.ROUND_ROBIN:
        return NetworkDecision(
            network=network, ranked=ranked, chosen=tuple(eligible), reason=Reason.ROUND_ROBIN
        )
    kept = _keep_previous(eligible, previous, params)
    primary = kept or eligible[0]
    if kept is not None and kept is not eligible[0]:
        reason = Reason.HYSTERESIS
    elif primary.rtt_ms is None:
        reason = Reason.NO_RTT_DATA
    else:
        reason = Reason.UNKNOWN_NETWORK if network is None else Reason.LOWEST_RTT
    chosen = _answer_set(primary, eligible, params.answers)
    spare = [e for e in eligible if e.name != primary.name and not e.overloaded]
    spill: tuple[EdgeRank, ...] = ()
    if primary.overloaded and spare and params.overload_spill_share > 0:
        spill = _answer_set(spare[0], eligible, params.answers)
    return NetworkDecision(
        network=network,
        ranked=ranked,
        chosen=chosen,
        reason=reason,
        spill=spill,
        spill_share=params.overload_spill_share if spill else 0.0,
    )


def decide_routes(
    *,
    edges: Sequence[NodeConfig],
    networks: Sequence[ClientNetwork],
    snapshot: ClusterSnapshot,
    state: RoutingState,
    params: RoutingParams,
    now: float,
) -> tuple[RoutingTable, RoutingState]:
    """Decide the answer for every client network, carrying hysteresis state as a value.

    Args:
        edges: the configured nodes (only role ``edge`` is used).
        networks: the ``[[client_networks]]``.
        snapshot: the control plane's live reports.
        state: the previous choices, as returned by the previous call.
        params: the routing knobs.
        now: wall-clock seconds (heartbeats are wall-clock).

    Returns:
        The routing table and the state to pass to the next call.
    """
    edge_nodes = [n for n in edges if n.role is Role.EDGE]
    names = [n.name for n in networks]
    decisions: dict[str, NetworkDecision] = {}
    for name in [*names, None]:
        ranked = rank_edges(
            edge_nodes,
            snapshot,
            name,
            all_networks=names,
            now=now,
            stale_after_s=params.stale_after_s,
        )
        decision = decide_network(ranked, name, state.choices.get(name), params)
        decisions[name or ""] = decision
    unknown = decisions.pop("")
    table = RoutingTable(
        decisions=decisions, unknown=unknown, policy=params.policy, answers=params.answers
    )
    choices: dict[str | None, str] = {n: d.chosen[0].name for n, d in decisions.items()}
    choices[None] = unknown.chosen[0].name
    return table, RoutingState(choices=choices)


# -- per query -------------------------------------------------------------------------------


def spill_bucket(address: IPAddress) -> float:
    """A stable number in [0, 1) for the client's /24 (IPv4) or /56 (IPv6) subnet."""
    bits = address.max_prefixlen
    shift = bits - SPILL_PREFIX[address.version]
    subnet = (int(address) >> shift).to_bytes(bits // 8, "big")
    return zlib.crc32(subnet) / 2**32


def route_client(
    table: RoutingTable, networks: NetworkTable, address: IPAddress, *, counter: int = 0
) -> ClientRoute:
    """The edges to answer one client, why, and the ECS scope the answer depends on.

    Args:
        table: the current :class:`RoutingTable`.
        networks: the longest-prefix table of client networks.
        address: the client subnet's address (RFC 7871) or the query's source address.
        counter: a per-query counter; the round-robin policy rotates answers by it.

    Returns:
        The answer; ``scope`` is the SCOPE PREFIX-LENGTH to return (RFC 7871 §7.2.1).
    """
    if table.policy is RoutingPolicy.ROUND_ROBIN:
        decision = table.unknown
        if decision.reason is Reason.ROUND_ROBIN:
            count = len(decision.chosen)
            start = counter % count
            rotated = decision.chosen[start:] + decision.chosen[:start]
            return ClientRoute(
                network=None, edges=rotated[: table.answers], reason=Reason.ROUND_ROBIN, scope=0
            )
        return ClientRoute(network=None, edges=decision.chosen, reason=decision.reason, scope=0)
    match = networks.match(address)
    decision = table.decision(match.network)
    if decision.spill:
        scope = max(match.scope, SPILL_PREFIX[address.version])
        if spill_bucket(address) < decision.spill_share:
            return ClientRoute(
                network=match.network,
                edges=decision.spill,
                reason=Reason.OVERLOAD_SPILL,
                scope=scope,
            )
        return ClientRoute(
            network=match.network, edges=decision.chosen, reason=decision.reason, scope=scope
        )
    return ClientRoute(
        network=match.network, edges=decision.chosen, reason=decision.reason, scope=match.scope
    )
