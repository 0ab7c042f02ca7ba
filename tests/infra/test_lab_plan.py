"""The lab's wiring plan: fronts, backends and source regions, for every shipped topology."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from cdn_core.config import HostPort, NodeConfig, Role
from cdn_core.errors import ConfigError
from cdn_core.registry import ClusterSnapshot, NodeReport, PeerEstimate
from cdn_core.testing import make_report
from infra.lab_guide import guide
from infra.lab_plan import backend_host, plan_lab
from infra.lab_runner import measured_everywhere

LAB_DIR = Path(__file__).resolve().parents[2] / "infra" / "lab"


def load(name: str) -> dict[str, Any]:
    with open(LAB_DIR / name, "rb") as file:
        return tomllib.load(file)


def plan(name: str = "default.toml"):
    ports = iter(range(20000, 30000))
    return plan_lab(
        load(name),
        base_dir=str(LAB_DIR),
        control_plane="redis://127.0.0.1:1/0",
        secret_file="/run/lab/cluster.key",
        allocate_port=lambda host: next(ports),
    )


@pytest.mark.parametrize("name", ["default.toml", "small.toml", "large.toml"])
def test_every_shipped_topology_plans(name: str) -> None:
    lab = plan(name)
    config = lab.config

    assert config.control_plane == "redis://127.0.0.1:1/0"
    assert config.secret_file == "/run/lab/cluster.key"
    assert len(lab.relays) == 2 * len(config.nodes) + 1 + len(config.client_networks)
    fronts = [r.front for r in lab.relays]
    backends = [r.backend for r in lab.relays]
    assert len(set(fronts)) == len(fronts)
    assert len(set(backends)) == len(backends)
    assert not set(fronts) & set(backends)


def test_default_topology_shape() -> None:
    config = plan().config

    regions = {n.region for n in config.nodes}
    assert regions == {"eu", "us", "ap"}
    for region in regions:
        edges = [n for n in config.nodes if n.role is Role.EDGE and n.region == region]
        assert len(edges) == 2
    assert len({n.region for n in config.nodes if n.role is Role.SHIELD}) >= 2
    assert all(network.probe_url for network in config.client_networks)


def test_nodes_bind_behind_their_fronts_and_send_from_their_region() -> None:
    lab = plan()
    node = lab.config.node("edge-us-1")

    assert node.listen == HostPort("127.0.1.3", 8080)
    assert node.listen_bind.host == backend_host(lab.regions.index("us"))
    assert node.source_address == node.listen_bind.host
    assert lab.region_of(node.source_address) == "us"


def test_source_regions_and_rtts() -> None:
    lab = plan()

    assert lab.region_of("127.10.3.4") == "eu"
    assert lab.region_of("127.30.0.9") == "ap"
    assert lab.region_of("127.0.0.1") is None
    assert lab.region_of("not an ip") is None
    assert lab.rtt_ms("eu", "ap") == 200
    assert lab.rtt_ms("us", "us") == 4
    assert lab.rtt_ms(None, "us") == 0


def test_a_topology_without_a_lab_section_is_refused() -> None:
    data = load("small.toml")
    del data["lab"]

    with pytest.raises(ConfigError, match="lab"):
        plan_lab(
            data,
            base_dir=str(LAB_DIR),
            control_plane="memory",
            secret_file="k",
            allocate_port=lambda host: 1,
        )


def test_the_guide_warns_when_the_control_plane_is_not_shared() -> None:
    ports = iter(range(20000, 30000))
    memory = plan_lab(
        load("small.toml"),
        base_dir=str(LAB_DIR),
        control_plane="memory",
        secret_file="/run/lab/cluster.key",
        allocate_port=lambda host: next(ports),
    )

    assert "in-memory control plane" in guide(memory, config_path="c.toml", run_dir="r")
    assert "in-memory control plane" not in guide(plan(), config_path="c.toml", run_dir="r")


def test_the_guide_quickstart_names_the_router_a_user_and_the_config() -> None:
    text = guide(plan(), config_path="lab-run/cdn.toml", run_dir="lab-run")

    assert "dig @127.0.4.1 -p 5353 www.cdn.test A +subnet=127.10.0.0/24" in text
    assert "--interface 127.10.0.9" in text
    assert "purge url http://www.cdn.test/obj/3 --wait --config lab-run/cdn.toml" in text
    assert "lab wan set" in text


def test_the_lab_is_not_ready_before_every_edge_measured_every_network() -> None:
    config = plan("small.toml").config
    edges = [n for n in config.nodes if n.role is Role.EDGE]
    nets = [f"net:{n.name}" for n in config.client_networks]

    def report(node: NodeConfig, estimates: dict[str, PeerEstimate]) -> NodeReport:
        return make_report(node.name, role=node.role, region=node.region, estimates=estimates)

    up = PeerEstimate(rtt_ms=5.0, rttvar_ms=1.0, loss=0.0, up=True, samples=3)
    down = PeerEstimate(rtt_ms=None, rttvar_ms=0.0, loss=1.0, up=False, samples=3)
    full = {e.name: report(e, dict.fromkeys(nets, up)) for e in edges}
    partial = dict(full, **{edges[0].name: report(edges[0], {nets[0]: up, nets[1]: down})})

    assert measured_everywhere(config, ClusterSnapshot(taken_at=0.0, nodes=full))
    assert not measured_everywhere(config, ClusterSnapshot(taken_at=0.0, nodes=partial))
    missing = {e.name: full[e.name] for e in edges[1:]}
    assert not measured_everywhere(config, ClusterSnapshot(taken_at=0.0, nodes=missing))
