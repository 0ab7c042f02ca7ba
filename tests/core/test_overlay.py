"""Path planning (cdn_core.overlay): nearest with hysteresis, hash ring, detours, fallbacks."""

from __future__ import annotations

import dataclasses
import math

import pytest
from hypothesis import given, settings, strategies as st

from cdn_core.config import OverlayConfig, Role, ShieldPolicy
from cdn_core.overlay import PathReason, Route, hash_ring, link_cost_ms, plan_route
from cdn_core.registry import ClusterSnapshot, NodeReport, PeerEstimate
from cdn_core.testing import make_report

OVERLAY = OverlayConfig(switch_margin_ms=5.0, switch_margin_ratio=0.1, detour_margin_ms=20.0)
SHIELDS = ("shield-a", "shield-b", "shield-c")


def est(rtt_ms: float | None, *, up: bool = True, loss: float = 0.0) -> PeerEstimate:
    return PeerEstimate(rtt_ms=rtt_ms, rttvar_ms=1.0, loss=loss, up=up, samples=5)


def report(name: str, role: Role = Role.SHIELD, **estimates: PeerEstimate) -> NodeReport:
    return make_report(
        name,
        role=role,
        estimates={k.replace("__", ":").replace("_", "-"): v for k, v in estimates.items()},
    )


def snap(*reports: NodeReport) -> ClusterSnapshot:
    return ClusterSnapshot(taken_at=0.0, nodes={r.node: r for r in reports})


def two_shields(a_ms: float, b_ms: float, *, origin_ms: float = 10.0) -> ClusterSnapshot:
    return snap(
        report("edge", Role.EDGE, node__shield_a=est(a_ms), node__shield_b=est(b_ms)),
        report("shield-a", origin__site=est(origin_ms)),
        report("shield-b", origin__site=est(origin_ms)),
    )


def plan(
    snapshot: ClusterSnapshot,
    *,
    policy: ShieldPolicy = ShieldPolicy.NEAREST,
    previous: str | None = None,
    key: str = "www.cdn.test/x",
    down: tuple[str, ...] = (),
    shields: tuple[str, ...] = SHIELDS,
    overlay: OverlayConfig = OVERLAY,
) -> Route:
    return plan_route(
        snapshot,
        edge="edge",
        origin="site",
        policy=policy,
        shields=shields,
        overlay=overlay,
        key=key,
        previous=previous,
        locally_down=down,
    )


class TestNearest:
    def test_picks_lowest_edge_plus_origin_rtt(self) -> None:
        route = plan(two_shields(40.0, 10.0))
        assert route.shield == "shield-b"
        assert route.primary.reason is PathReason.NEAREST
        assert route.primary.cost_ms == 20.0

    def test_counts_the_shield_to_origin_leg(self) -> None:
        snapshot = snap(
            report("edge", Role.EDGE, node__shield_a=est(10.0), node__shield_b=est(30.0)),
            report("shield-a", origin__site=est(100.0)),
            report("shield-b", origin__site=est(10.0)),
        )
        assert plan(snapshot).shield == "shield-b"

    def test_failover_paths_follow_in_cost_order_then_direct(self) -> None:
        route = plan(two_shields(40.0, 10.0))
        assert [p.shield for p in route.paths] == ["shield-b", "shield-a", None]
        assert [p.reason for p in route.paths[1:]] == [PathReason.FAILOVER, PathReason.LAST_RESORT]

    def test_unmeasured_shields_are_ordered_by_name(self) -> None:
        snapshot = snap(report("edge", Role.EDGE), report("shield-b"), report("shield-a"))
        route = plan(snapshot)
        assert route.shield == "shield-a"
        assert route.primary.reason is PathReason.UNMEASURED
        assert route.paths[1].shield == "shield-b"

    def test_measured_beats_unmeasured(self) -> None:
        snapshot = snap(
            report("edge", Role.EDGE, node__shield_b=est(50.0)),
            report("shield-a"),
            report("shield-b", origin__site=est(50.0)),
        )
        assert plan(snapshot).shield == "shield-b"

    def test_a_shield_whose_origin_link_is_down_goes_last(self) -> None:
        snapshot = snap(
            report("edge", Role.EDGE, node__shield_a=est(1.0), node__shield_b=est(50.0)),
            report("shield-a", origin__site=est(None, up=False)),
            report("shield-b", origin__site=est(50.0)),
        )
        route = plan(snapshot, previous="shield-a")
        assert [p.shield for p in route.paths] == ["shield-b", "shield-a", None]


class TestHysteresis:
    def test_keeps_previous_within_margin(self) -> None:
        # previous costs 50, best 46: better by 4 < max(5, 5.0)
        route = plan(two_shields(40.0, 36.0), previous="shield-a")
        assert route.shield == "shield-a"
        assert route.primary.reason is PathReason.HYSTERESIS

    def test_switches_beyond_absolute_and_relative_margin(self) -> None:
        route = plan(two_shields(40.0, 30.0), previous="shield-a")
        assert route.shield == "shield-b"
        assert route.primary.reason is PathReason.NEAREST

    def test_relative_margin_applies_to_large_costs(self) -> None:
        # previous 210, best 190: better by 20 < 10 % of 210
        route = plan(two_shields(200.0, 180.0), previous="shield-a")
        assert route.shield == "shield-a"

    def test_previous_that_went_down_is_dropped(self) -> None:
        route = plan(two_shields(40.0, 36.0), previous="shield-a", down=("shield-a",))
        assert route.shield == "shield-b"
        assert route.primary.reason is PathReason.NEAREST

    def test_previous_unknown_name_is_ignored(self) -> None:
        assert plan(two_shields(40.0, 36.0), previous="gone").shield == "shield-b"

    def test_drops_a_kept_detour_through_the_best_shield(self) -> None:
        snapshot = snap(
            report("edge", Role.EDGE, node__shield_a=est(80.0), node__shield_b=est(7.0)),
            report("shield-a", origin__site=est(2.0), node__shield_b=est(3.0)),
            report("shield-b", origin__site=est(2.0), node__shield_a=est(3.0)),
        )
        route = plan(snapshot, previous="shield-a")  # a via b: 7+3+2 = 12; b: 9
        assert route.primary.hops == ("shield-b",)
        assert route.paths[1].hops == ("shield-b", "shield-a")


class TestDown:
    def test_absent_shield_is_down(self) -> None:
        snapshot = snap(
            report("edge", Role.EDGE, node__shield_a=est(1.0), node__shield_b=est(50.0)),
            report("shield-b", origin__site=est(1.0)),
        )
        assert [p.shield for p in plan(snapshot).paths] == ["shield-b", None]

    def test_down_link_without_relay_excludes_the_shield(self) -> None:
        snapshot = snap(
            report("edge", Role.EDGE, node__shield_a=est(1.0, up=False), node__shield_b=est(50.0)),
            report("shield-a", origin__site=est(1.0)),
            report("shield-b", origin__site=est(1.0)),
        )
        assert [p.shield for p in plan(snapshot).paths] == ["shield-b", None]

    def test_locally_down_shield_is_excluded(self) -> None:
        route = plan(two_shields(10.0, 40.0), down=("shield-a",))
        assert [p.shield for p in route.paths] == ["shield-b", None]

    def test_every_shield_down_goes_direct(self) -> None:
        route = plan(snap(report("edge", Role.EDGE)))
        assert route.paths == (route.primary,)
        assert route.primary.is_direct
        assert route.primary.reason is PathReason.NO_SHIELD
        assert route.primary.hops == ()

    def test_no_shield_configured_goes_direct(self) -> None:
        assert plan(two_shields(1.0, 1.0), shields=()).primary.reason is PathReason.NO_SHIELD

    def test_policy_none_goes_direct(self) -> None:
        route = plan(two_shields(1.0, 1.0), policy=ShieldPolicy.NONE)
        assert [p.reason for p in route.paths] == [PathReason.POLICY_DIRECT]

    def test_a_node_never_plans_through_itself(self) -> None:
        snapshot = snap(report("edge", Role.EDGE), report("shield-a"))
        route = plan_route(
            snapshot,
            edge="shield-a",
            origin="site",
            policy=ShieldPolicy.NEAREST,
            shields=SHIELDS,
            overlay=OVERLAY,
        )
        assert route.primary.is_direct


def triangle(direct: PeerEstimate, *, relay_ms: float = 10.0) -> ClusterSnapshot:
    """edge -> shield-a directly, or edge -> relay -> shield-a (relay_ms each link)."""
    return snap(
        report(
            "edge",
            Role.EDGE,
            node__shield_a=direct,
            node__relay=est(relay_ms),
        ),
        report("relay", Role.EDGE, node__shield_a=est(relay_ms)),
        report("shield-a", origin__site=est(5.0)),
    )


class TestDetour:
    def test_taken_when_better_by_the_margin(self) -> None:
        route = plan(triangle(est(100.0)))
        assert route.primary.hops == ("relay", "shield-a")
        assert route.primary.is_detour
        assert route.primary.cost_ms == 25.0

    def test_not_taken_when_not_better_by_the_margin(self) -> None:
        route = plan(triangle(est(35.0)))  # relay path 20 + margin 20 > 35
        assert route.primary.hops == ("shield-a",)
        assert route.primary.cost_ms == 40.0

    def test_taken_on_a_lossy_link(self) -> None:
        route = plan(triangle(est(15.0, loss=0.3)))  # 15 + 300 ms of loss penalty
        assert route.primary.via == "relay"

    def test_taken_around_a_down_link(self) -> None:
        route = plan(triangle(est(None, up=False)))
        assert route.primary.via == "relay"

    def test_never_through_a_lossy_relay_link(self) -> None:
        snapshot = snap(
            report("edge", Role.EDGE, node__shield_a=est(100.0), node__relay=est(1.0, loss=0.5)),
            report("relay", Role.EDGE, node__shield_a=est(1.0)),
            report("shield-a", origin__site=est(5.0)),
        )
        assert plan(snapshot).primary.via is None

    def test_never_through_a_locally_down_relay(self) -> None:
        assert plan(triangle(est(100.0)), down=("relay",)).primary.via is None

    def test_not_taken_when_the_direct_link_is_unmeasured(self) -> None:
        snapshot = snap(
            report("edge", Role.EDGE, node__relay=est(1.0)),
            report("relay", Role.EDGE, node__shield_a=est(1.0)),
            report("shield-a", origin__site=est(5.0)),
        )
        assert plan(snapshot).primary.hops == ("shield-a",)

    @pytest.mark.parametrize("order", [("near", "far"), ("far", "near")])
    def test_the_cheapest_relay_wins_whatever_the_order(self, order: tuple[str, str]) -> None:
        rtt = {"near": 10.0, "far": 30.0}
        relays = [report(n, Role.EDGE, node__shield_a=est(rtt[n])) for n in order]
        edge = report(
            "edge", Role.EDGE, node__shield_a=est(200.0), node__near=est(10.0), node__far=est(30.0)
        )
        snapshot = snap(edge, *relays, report("shield-a", origin__site=est(5.0)))

        route = plan(snapshot)

        assert route.primary.hops == ("near", "shield-a")
        assert route.primary.cost_ms == 25.0

    @pytest.mark.parametrize("order", [("relay-a", "relay-b"), ("relay-b", "relay-a")])
    def test_equal_relays_are_broken_by_name(self, order: tuple[str, str]) -> None:
        relays = [report(n, Role.EDGE, node__shield_a=est(10.0)) for n in order]
        edge = report(
            "edge",
            Role.EDGE,
            node__shield_a=est(200.0),
            node__relay_a=est(10.0),
            node__relay_b=est(10.0),
        )
        snapshot = snap(edge, *relays, report("shield-a", origin__site=est(5.0)))

        assert plan(snapshot).primary.via == "relay-a"


class TestHash:
    def test_owner_is_first_on_the_ring(self) -> None:
        snapshot = three_live()
        for key in ("a", "b", "c", "d"):
            route = plan(snapshot, policy=ShieldPolicy.HASH, key=key)
            assert route.shield == hash_ring(SHIELDS, key)[0]
            assert route.primary.reason is PathReason.HASH_OWNER

    def test_keys_spread_over_the_pool(self) -> None:
        owners = {hash_ring(SHIELDS, f"www.cdn.test/{i}")[0] for i in range(60)}
        assert owners == set(SHIELDS)

    def test_down_owner_is_skipped_and_its_keys_return(self) -> None:
        key = "www.cdn.test/some/object"
        owner, second, _ = hash_ring(SHIELDS, key)
        route = plan(three_live(), policy=ShieldPolicy.HASH, key=key, down=(owner,))
        assert route.shield == second
        assert route.primary.reason is PathReason.HASH_NEXT
        assert plan(three_live(), policy=ShieldPolicy.HASH, key=key).shield == owner

    def test_failover_follows_the_ring(self) -> None:
        key = "k"
        route = plan(three_live(), policy=ShieldPolicy.HASH, key=key)
        assert [p.shield for p in route.paths] == [*hash_ring(SHIELDS, key), None]

    @given(st.text(max_size=40), st.sampled_from(SHIELDS))
    @settings(max_examples=200)
    def test_removing_a_shield_moves_only_its_keys(self, key: str, gone: str) -> None:
        full = hash_ring(SHIELDS, key)
        reduced = hash_ring([s for s in SHIELDS if s != gone], key)
        if full[0] != gone:
            assert reduced[0] == full[0]
        assert reduced == tuple(s for s in full if s != gone)


def three_live() -> ClusterSnapshot:
    return snap(report("edge", Role.EDGE), *(report(s) for s in SHIELDS))


def test_link_cost() -> None:
    assert link_cost_ms(None) is None
    assert link_cost_ms(est(None)) is None
    assert link_cost_ms(est(5.0, up=False)) == math.inf
    assert link_cost_ms(est(5.0, loss=0.1)) == 105.0


names = st.sampled_from(["edge", "relay", "shield-a", "shield-b", "shield-c"])
estimates = st.builds(
    PeerEstimate,
    rtt_ms=st.one_of(st.none(), st.floats(0, 500)),
    rttvar_ms=st.just(1.0),
    loss=st.floats(0, 1),
    up=st.booleans(),
    samples=st.just(3),
)


@st.composite
def snapshots(draw: st.DrawFn) -> ClusterSnapshot:
    live = draw(st.sets(names, min_size=0, max_size=5))
    reports = []
    for name in live:
        targets = draw(st.dictionaries(st.sampled_from(["node:" + n for n in live]), estimates))
        targets.update(draw(st.dictionaries(st.just("origin:site"), estimates)))
        reports.append(_with(name, targets))
    return snap(*reports)


def _with(name: str, targets: dict[str, PeerEstimate]) -> NodeReport:
    return dataclasses.replace(report(name), estimates=targets)


@given(
    snapshots(),
    st.sampled_from(list(ShieldPolicy)),
    st.one_of(st.none(), names),
    st.sets(names, max_size=2),
)
@settings(max_examples=300)
def test_routes_are_well_formed(
    snapshot: ClusterSnapshot, policy: ShieldPolicy, previous: str | None, down: set[str]
) -> None:
    route = plan(snapshot, policy=policy, previous=previous, down=tuple(down))
    shields = [p.shield for p in route.paths if p.shield is not None]
    assert route.paths[-1].is_direct
    assert len(shields) == len(set(shields))
    for path in route.paths:
        for hop in path.hops:
            assert snapshot.is_live(hop) and hop not in down and hop != "edge"
        if path.via is not None:
            assert path.cost_ms is None or path.cost_ms >= 0
    assert route == plan(snapshot, policy=policy, previous=previous, down=tuple(down))
