"""The control-plane data model (cdn_core.registry): targets, estimates and overload."""

from __future__ import annotations

import pytest

from cdn_core.config import Role
from cdn_core.registry import (
    NodeReport,
    PeerEstimate,
    network_target,
    node_target,
    origin_target,
)


def report(*, load: float = 0.0, capacity: float | None = None) -> NodeReport:
    return NodeReport(
        node="edge-1",
        role=Role.EDGE,
        region="eu",
        listen="127.0.1.1:8080",
        admin="127.0.1.1:9080",
        public_address="127.0.1.1",
        config_version="v1",
        started_at=0.0,
        heartbeat_at=1.0,
        load_rps=load,
        capacity_rps=capacity,
        estimates={
            node_target("shield-1"): PeerEstimate(
                rtt_ms=4.0, rttvar_ms=1.0, loss=0.0, up=True, samples=3
            )
        },
    )


def test_targets_are_named_by_kind() -> None:
    assert node_target("shield-1") == "node:shield-1"
    assert origin_target("site") == "origin:site"
    assert network_target("eu-users") == "net:eu-users"


def test_estimate_lookup() -> None:
    node = report()

    estimate = node.estimate("node:shield-1")

    assert estimate is not None and estimate.rtt_ms == 4.0
    assert node.estimate("node:other") is None


@pytest.mark.parametrize(
    ("load", "capacity", "overloaded"),
    [
        (1e9, None, False),  # no declared capacity: never overloaded
        (99.0, 100.0, False),
        (100.0, 100.0, False),  # at capacity is not over it
        (100.5, 100.0, True),
    ],
)
def test_overloaded_only_above_a_declared_capacity(
    load: float, capacity: float | None, overloaded: bool
) -> None:
    assert report(load=load, capacity=capacity).overloaded is overloaded
