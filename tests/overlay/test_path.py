"""The path planner's bookkeeping reads the clocks it is given, not the system's."""

from __future__ import annotations

from pathlib import Path

from cdn_core.testing import FakeClock, make_request
from controlplane.feed import assumed_snapshot
from overlay.path import Overlay
from overlay.peers import PeerClient
from tests.shield.conftest import HOST, SECRET, overlay_config


def test_the_last_route_is_stamped_with_the_injected_wall_clock(tmp_path: Path) -> None:
    config = overlay_config(1, shields=1, edges=1, secret_file=tmp_path / "key")
    clock = FakeClock(now=1234.5)
    snapshot = assumed_snapshot(config, now=clock())
    peers = PeerClient(config, "edge-1", SECRET, clock=clock)
    overlay = Overlay(config, "edge-1", peers, lambda: snapshot, clock=clock)
    [site] = config.origins

    route = overlay.plan(site, make_request("/a", host=HOST))
    assert route.shield == "shield-1"
    assert overlay.last_routes["site"].planned_at == 1234.5
    clock.advance(10)  # the same snapshot: the route is not planned again
    overlay.plan(site, make_request("/b", host=HOST))
    assert overlay.route_choices()["site"].planned_at == 1234.5
