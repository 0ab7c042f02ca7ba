"""A small overlay config, control-plane reports, and a running router on loopback."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from cdn_core.config import Config, Role, load_config
from cdn_core.registry import ClusterSnapshot, NodeReport, PeerEstimate, network_target
from controlplane.feed import StaticSource
from router.server import DnsRouter
from tests.conftest import free_port

LONG_HOST = ".".join(["a" * 60, "b" * 60, "c" * 60, "cdn.test"])
EDGES = {"edge-a": "127.0.1.1", "edge-b": "127.0.1.2", "edge-c": "2001:db8::3"}
# Sixteen IPv6 edges: sixteen AAAA records after a long name do not fit 512 bytes.
V6_EDGES = {f"edge-v6-{i}": f"2001:db8::{i + 16:x}" for i in range(16)}
ADDRESSES = {**EDGES, **V6_EDGES}


def make_config(port: int = 5353, *, edges: Mapping[str, str] = EDGES, **dns: Any) -> Config:
    nodes = [
        {
            "name": name,
            "role": "edge",
            "region": "eu",
            "listen": f"127.0.1.{i + 1}:8080",
            "admin": f"127.0.1.{i + 1}:9080",
            "public_address": address,
        }
        for i, (name, address) in enumerate(edges.items())
    ]
    nodes.append(
        {
            "name": "shield-1",
            "role": "shield",
            "region": "eu",
            "listen": "127.0.2.1:8080",
            "admin": "127.0.2.1:9080",
        }
    )
    return load_config(
        {
            "cluster": "test",
            "control_plane": "memory",
            "secret_file": "cluster.key",
            "dns": {"zone": "cdn.test", "listen": f"127.0.0.1:{port}", "ttl_s": 20, **dns},
            "origins": [
                {
                    "name": "site",
                    "hostnames": ["www.cdn.test", "img.deep.cdn.test", LONG_HOST],
                    "url": "http://127.0.0.1:9000",
                },
                {"name": "other", "hostnames": ["www.example.org"], "url": "http://127.0.0.1:9001"},
            ],
            "nodes": nodes,
            "client_networks": [
                {
                    "name": "eu",
                    "region": "eu",
                    "prefixes": ["127.10.0.0/16"],
                    "probe": "127.10.0.1:7000",
                },
                {
                    "name": "eu-lab",
                    "region": "eu",
                    "prefixes": ["127.10.5.0/24"],
                    "probe": "127.10.5.1:7000",
                },
                {
                    "name": "us",
                    "region": "us",
                    "prefixes": ["127.20.0.0/16", "2001:db8:100::/48"],
                    "probe": "127.20.0.1:7000",
                },
                {
                    "name": "local",
                    "region": "eu",
                    "prefixes": ["127.0.0.0/24"],
                    "probe": "127.0.0.1:7000",
                },
            ],
        }
    )


def make_report(
    name: str,
    rtts: Mapping[str, float | None],
    *,
    heartbeat_at: float | None = None,
    load_rps: float = 0.0,
    capacity_rps: float | None = None,
) -> NodeReport:
    """A live edge report whose RTT toward each named network is given (None: unreachable)."""
    now = time.time() if heartbeat_at is None else heartbeat_at
    return NodeReport(
        node=name,
        role=Role.EDGE,
        region="eu",
        listen="127.0.1.1:8080",
        admin="127.0.1.1:9080",
        public_address=ADDRESSES[name],
        config_version="v1",
        started_at=now - 60,
        heartbeat_at=now,
        load_rps=load_rps,
        capacity_rps=capacity_rps,
        estimates={
            network_target(net): PeerEstimate(
                rtt_ms=rtt, rttvar_ms=1.0, loss=0.0, up=rtt is not None, samples=10
            )
            for net, rtt in rtts.items()
        },
    )


def snapshot_of(*reports: NodeReport, taken_at: float | None = None) -> ClusterSnapshot:
    return ClusterSnapshot(
        taken_at=time.time() if taken_at is None else taken_at,
        nodes={r.node: r for r in reports},
    )


def default_reports() -> tuple[NodeReport, ...]:
    """The default edge reports, with heartbeats taken now (a report goes stale after 10 s)."""
    return (
        make_report("edge-a", {"eu": 10.0, "eu-lab": 30.0, "us": 90.0, "local": 5.0}),
        make_report("edge-b", {"eu": 40.0, "eu-lab": 8.0, "us": 20.0, "local": 15.0}),
        make_report("edge-c", {"eu": 60.0, "eu-lab": 60.0, "us": 30.0, "local": 25.0}),
    )


RouterFactory = Callable[..., Any]


@pytest.fixture
async def start_router() -> AsyncIterator[RouterFactory]:
    """Start routers on free loopback ports; every one is closed at the end of the test."""
    started: list[DnsRouter] = []

    async def start(
        *reports: NodeReport,
        source: Any = None,
        clock: Any = time.monotonic,
        edges: Mapping[str, str] = EDGES,
        **dns: Any,
    ) -> DnsRouter:
        config = make_config(free_port(), edges=edges, **dns)
        if source is None:
            default = default_reports() if edges is EDGES else ()
            source = StaticSource(snapshot_of(*(reports or default)))
        router = DnsRouter(
            config, source, registry=CollectorRegistry(), refresh_s=0.05, clock=clock
        )
        await router.start()
        started.append(router)
        return router

    yield start
    for router in started:
        await router.close()
