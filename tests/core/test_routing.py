"""Routing decisions (cdn_core.routing): pure, no event loop.

Covers longest-prefix match and the RFC 7871 §7.2.1 scope, ranking by smoothed RTT, exclusion
of down/unreported/stale edges, hysteresis, overload spill, unknown networks and round-robin.
"""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest
from hypothesis import given, strategies as st

from cdn_core.config import ClientNetwork, DnsConfig, HostPort, NodeConfig, Role, RoutingPolicy
from cdn_core.errors import NoHealthyEdge
from cdn_core.registry import ClusterSnapshot, NodeReport, PeerEstimate, network_target
from cdn_core.routing import (
    Health,
    NetworkTable,
    Reason,
    RoutingParams,
    RoutingState,
    RoutingTable,
    decide_network,
    decide_routes,
    route_client,
    spill_bucket,
)

NOW = 1_000_000.0
NAMES = ("a", "b", "c", "d")


def node(name: str, address: str | None = None) -> NodeConfig:
    return NodeConfig(
        name=name,
        role=Role.EDGE,
        region="eu",
        listen=HostPort("127.0.1.1", 8080),
        admin=HostPort("127.0.1.1", 9080),
        public_address=address or f"192.0.2.{NAMES.index(name) + 1}",
    )


EDGES = tuple(node(n) for n in NAMES)


def network(name: str, *prefixes: str) -> ClientNetwork:
    return ClientNetwork(
        name=name,
        region="eu",
        prefixes=tuple(ipaddress.ip_network(p) for p in prefixes),
        probe=HostPort("127.0.0.1", 7000),
    )


NETWORKS = (
    network("eu", "10.0.0.0/8"),
    network("eu-lab", "10.1.0.0/16"),
    network("us", "172.16.0.0/12", "2001:db8::/32"),
)


def report(
    name: str,
    rtts: dict[str, float | None],
    *,
    age_s: float = 0.0,
    load: float = 0.0,
    capacity: float | None = None,
) -> NodeReport:
    return NodeReport(
        node=name,
        role=Role.EDGE,
        region="eu",
        listen="x",
        admin="x",
        public_address=f"192.0.2.{NAMES.index(name) + 1}",
        config_version="1",
        started_at=NOW - 100,
        heartbeat_at=NOW - age_s,
        load_rps=load,
        capacity_rps=capacity,
        estimates={
            network_target(n): PeerEstimate(
                rtt_ms=r, rttvar_ms=1, loss=0, up=r is not None, samples=5
            )
            for n, r in rtts.items()
        },
    )


def decide(
    *reports: NodeReport, state: RoutingState | None = None, **params: Any
) -> tuple[RoutingTable, RoutingState]:
    return decide_routes(
        edges=EDGES,
        networks=NETWORKS,
        snapshot=ClusterSnapshot(taken_at=NOW, nodes={r.node: r for r in reports}),
        state=state or RoutingState(),
        params=RoutingParams(**params),
        now=NOW,
    )


def chosen(table: RoutingTable, net: str | None) -> list[str]:
    return [e.name for e in table.decision(net).chosen]


class TestNetworkMatch:
    table = NetworkTable(NETWORKS)

    @pytest.mark.parametrize(
        ("address", "net", "prefix", "scope"),
        [
            ("10.2.3.4", "eu", 8, 15),  # 10.2/15 does not touch 10.1/16
            ("10.128.0.1", "eu", 8, 9),
            ("10.1.9.9", "eu-lab", 16, 16),
            ("172.20.0.1", "us", 12, 12),
            ("2001:db8:1::1", "us", 32, 32),
            ("192.168.1.1", None, 0, 2),  # differs from 172.16/12 at bit 2 and 10/8 earlier
            ("2001:db9::1", None, 0, 32),
        ],
    )
    def test_longest_prefix_and_scope(self, address, net, prefix, scope):
        match = self.table.match(ipaddress.ip_address(address))
        assert (match.network, match.prefix_len, match.scope) == (net, prefix, scope)

    @given(st.integers(min_value=0, max_value=2**32 - 1))
    def test_every_address_in_scope_matches_the_same_network(self, value):
        match = self.table.match(ipaddress.IPv4Address(value))
        block = ipaddress.ip_network((value, match.scope), strict=False)
        for probe in (block.network_address, block.broadcast_address):
            assert self.table.match(probe).network == match.network


class TestRanking:
    def test_lowest_rtt_wins(self):
        table, _ = decide(report("a", {"eu": 30}), report("b", {"eu": 10}), report("c", {}))
        assert chosen(table, "eu") == ["b"]
        assert table.decision("eu").reason is Reason.LOWEST_RTT

    def test_answers_shape(self):
        reports = (report("a", {"eu": 30}), report("b", {"eu": 10}), report("c", {"eu": 20}))
        table, _ = decide(*reports, answers=2)
        assert chosen(table, "eu") == ["b", "c"]

    @pytest.mark.parametrize(
        ("bad", "health"),
        [
            (report("a", {"eu": 1}, age_s=60), Health.STALE),
            (report("a", {"eu": None}), Health.DOWN),
            (None, Health.UNREPORTED),
        ],
    )
    def test_unhealthy_edges_are_not_chosen(self, bad, health):
        reports = [r for r in (bad, report("b", {"eu": 50})) if r is not None]
        table, _ = decide(*reports)
        assert chosen(table, "eu") == ["b"]
        ranked = {e.name: e.health for e in table.decision("eu").ranked}
        assert ranked["a"] is health

    def test_no_healthy_edge_falls_back_to_all(self):
        table, _ = decide(report("a", {"eu": 5}, age_s=60), answers=4)
        decision = table.decision("eu")
        assert decision.reason is Reason.NO_HEALTHY_EDGE
        assert sorted(chosen(table, "eu")) == list(NAMES)

    def test_no_rtt_data(self):
        table, _ = decide(report("c", {}), report("b", {}))
        assert chosen(table, "eu") == ["b"]
        assert table.decision("eu").reason is Reason.NO_RTT_DATA

    def test_unknown_network_gets_best_median(self):
        reports = (
            report("a", {"eu": 1, "eu-lab": 100, "us": 100}),
            report("b", {"eu": 20, "eu-lab": 20, "us": 20}),
        )
        table, _ = decide(*reports)
        assert chosen(table, None) == ["b"]
        assert table.unknown.reason is Reason.UNKNOWN_NETWORK

    def test_empty_edge_list_raises(self):
        with pytest.raises(NoHealthyEdge):
            decide_network((), "eu", None, RoutingParams())


class TestHysteresis:
    def test_small_improvement_keeps_previous(self):
        _, state = decide(report("a", {"eu": 20}), report("b", {"eu": 25}))
        table, state = decide(report("a", {"eu": 22}), report("b", {"eu": 18}), state=state)
        assert chosen(table, "eu") == ["a"]
        assert table.decision("eu").reason is Reason.HYSTERESIS

    def test_ratio_margin_for_long_paths(self):
        _, state = decide(report("a", {"eu": 200}), report("b", {"eu": 250}))
        table, _ = decide(report("a", {"eu": 200}), report("b", {"eu": 185}), state=state)
        assert chosen(table, "eu") == ["a"]  # 15 ms < 10 % of 200

    def test_big_improvement_switches(self):
        _, state = decide(report("a", {"eu": 20}), report("b", {"eu": 25}))
        table, _ = decide(report("a", {"eu": 20}), report("b", {"eu": 10}), state=state)
        assert chosen(table, "eu") == ["b"]

    def test_previous_going_down_switches_at_once(self):
        _, state = decide(report("a", {"eu": 20}), report("b", {"eu": 21}))
        table, _ = decide(report("a", {"eu": None}), report("b", {"eu": 21}), state=state)
        assert chosen(table, "eu") == ["b"]

    @given(st.lists(st.tuples(st.floats(-2.4, 2.4), st.floats(-2.4, 2.4)), max_size=2))
    def test_two_rounds_of_noise_do_not_flip(self, noise):
        _, state = decide(report("a", {"eu": 20}), report("b", {"eu": 20.5}))
        for da, db in noise:
            table, state = decide(
                report("a", {"eu": 20 + da}), report("b", {"eu": 20.5 + db}), state=state
            )
            assert chosen(table, "eu") == ["a"]


class TestOverload:
    def test_share_of_clients_spills_to_next_best(self):
        reports = (report("a", {"eu": 5}, load=200, capacity=100), report("b", {"eu": 9}))
        table, _ = decide(*reports, overload_spill_share=0.5)
        nets = NetworkTable(NETWORKS)
        routes = [
            route_client(table, nets, ipaddress.IPv4Address(f"10.2.{i}.1")) for i in range(200)
        ]
        spilled = [r for r in routes if r.reason is Reason.OVERLOAD_SPILL]
        assert 60 < len(spilled) < 140
        assert all([e.name for e in r.edges] == ["b"] for r in spilled)
        assert all(r.scope >= 24 for r in routes)

    def test_spill_is_deterministic_per_subnet(self):
        one = ipaddress.IPv4Address("10.2.3.4")
        assert spill_bucket(one) == spill_bucket(ipaddress.IPv4Address("10.2.3.200"))

    def test_no_spill_when_everyone_is_overloaded(self):
        reports = (
            report("a", {"eu": 5}, load=200, capacity=100),
            report("b", {"eu": 9}, load=200, capacity=100),
        )
        table, _ = decide(*reports)
        assert table.decision("eu").spill == ()


class TestRoundRobin:
    def test_rotates_over_healthy_edges_ignoring_latency(self):
        reports = (report("a", {"eu": 5}), report("b", {"eu": 90}), report("c", {"eu": 50}))
        table, _ = decide(*reports, policy=RoutingPolicy.ROUND_ROBIN)
        nets = NetworkTable(NETWORKS)
        address = ipaddress.IPv4Address("10.2.3.4")
        seen = [route_client(table, nets, address, counter=i).edges[0].name for i in range(6)]
        assert sorted(set(seen)) == ["a", "b", "c"]
        route = route_client(table, nets, address)
        assert route.reason is Reason.ROUND_ROBIN and route.scope == 0


rtt = st.one_of(st.none(), st.floats(0.1, 500))
reports_strategy = st.dictionaries(
    st.sampled_from(NAMES),
    st.tuples(st.dictionaries(st.sampled_from(["eu", "eu-lab", "us"]), rtt), st.booleans()),
)


def build(spec: Any) -> list[NodeReport]:
    return [report(n, rtts, age_s=60 if stale else 0) for n, (rtts, stale) in spec.items()]


class TestProperties:
    @given(reports_strategy, st.sampled_from(["eu", "eu-lab", "us", None]), st.integers(1, 4))
    def test_never_a_down_edge_when_a_healthy_one_exists(self, spec, net, answers):
        table, _ = decide(*build(spec), answers=answers)
        decision = table.decision(net)
        if any(e.health is Health.UP for e in decision.ranked):
            assert all(e.health is Health.UP for e in decision.chosen)
            assert decision.reason is not Reason.NO_HEALTHY_EDGE
        assert 1 <= len(decision.chosen) <= answers

    @given(reports_strategy, st.integers(0, 2**32 - 1))
    def test_deterministic(self, spec, value):
        address = ipaddress.IPv4Address(value)
        nets = NetworkTable(NETWORKS)
        first, state1 = decide(*build(spec))
        second, state2 = decide(*build(spec))
        assert first == second and state1 == state2
        assert route_client(first, nets, address) == route_client(second, nets, address)


class TestRoundRobinWithoutHealthyEdges:
    def test_falls_back_to_every_edge_unrotated(self):
        table, _ = decide(report("a", {"eu": 5}, age_s=60), policy=RoutingPolicy.ROUND_ROBIN)
        nets = NetworkTable(NETWORKS)
        address = ipaddress.IPv4Address("10.2.3.4")

        routes = [route_client(table, nets, address, counter=i) for i in range(3)]

        assert {r.reason for r in routes} == {Reason.NO_HEALTHY_EDGE}
        assert [[e.name for e in r.edges] for r in routes] == [chosen(table, None)] * 3
        assert all(r.network is None and r.scope == 0 for r in routes)


class TestParamsFromDns:
    def test_copies_the_dns_knobs(self):
        dns = DnsConfig(
            zone="cdn.test",
            listen=HostPort("127.0.0.1", 5353),
            answers=3,
            policy=RoutingPolicy.ROUND_ROBIN,
            switch_margin_ms=7.0,
            switch_margin_ratio=0.3,
            overload_spill_share=0.25,
            stale_after_s=4.0,
        )

        params = RoutingParams.from_dns(dns)

        assert params == RoutingParams(
            policy=RoutingPolicy.ROUND_ROBIN,
            answers=3,
            switch_margin_ms=7.0,
            switch_margin_ratio=0.3,
            overload_spill_share=0.25,
            stale_after_s=4.0,
        )

    def test_policy_override_wins(self):
        dns = DnsConfig(zone="cdn.test", listen=HostPort("127.0.0.1", 5353))

        params = RoutingParams.from_dns(dns, policy=RoutingPolicy.ROUND_ROBIN)

        assert params.policy is RoutingPolicy.ROUND_ROBIN
        assert RoutingParams.from_dns(dns).policy is RoutingPolicy.LATENCY
