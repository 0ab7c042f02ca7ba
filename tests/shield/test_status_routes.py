"""The chosen shield per edge: carried in the node report, shown by ``cdn status``."""

from __future__ import annotations

from pathlib import Path

from cdn_cli.status_cmd import render_status
from cdn_core.config import Role
from cdn_core.registry import ClusterSnapshot, NodeReport, RouteChoice
from cdn_core.testing import make_report
from controlplane.codec import report_from_json, report_to_json
from tests.shield.conftest import overlay_config


def report(node: str, role: Role, routes: dict[str, RouteChoice]) -> NodeReport:
    return make_report(node, role=role, started_at=1.0, heartbeat_at=2.0, routes=routes)


def test_routes_survive_the_codec_and_old_reports_have_none() -> None:
    routes = {
        "site": RouteChoice(shield="shield-2", via="shield-1", reason="nearest", planned_at=3.5),
        "other": RouteChoice(shield=None, reason="no-shield"),
    }
    original = report("edge-1", Role.EDGE, routes)
    assert report_from_json(report_to_json(original)) == original
    old = report_to_json(report("edge-1", Role.EDGE, {})).replace(',"routes":{}', "")
    assert '"routes"' not in old
    assert report_from_json(old).routes == {}


def test_status_shows_the_chosen_shield_per_edge(tmp_path: Path) -> None:
    secret = tmp_path / "key"
    secret.write_bytes(b"x" * 32)
    config = overlay_config(1, shields=2, edges=2, secret_file=secret)
    snapshot = ClusterSnapshot(
        taken_at=2.0,
        nodes={
            "shield-1": report("shield-1", Role.SHIELD, {}),
            "edge-1": report(
                "edge-1",
                Role.EDGE,
                {"site": RouteChoice(shield="shield-2", via="shield-1", reason="nearest")},
            ),
            "edge-2": report("edge-2", Role.EDGE, {"site": RouteChoice(shield=None)}),
        },
    )
    lines = render_status(config, snapshot)
    start = lines.index("chosen shield per edge (last route):")
    rows = [line.split() for line in lines[start + 1 :]]
    assert rows == [
        ["EDGE", "ORIGIN", "SHIELD", "VIA", "REASON"],
        ["edge-1", "site", "shield-2", "shield-1", "nearest"],
        ["edge-2", "site", "direct", "-", "-"],
    ]
    no_routes = ClusterSnapshot(
        taken_at=2.0, nodes={"shield-1": report("shield-1", Role.SHIELD, {})}
    )
    assert not [line for line in render_status(config, no_routes) if "chosen shield" in line]
