"""Misses follow the measured latency: the nearer shield, and a move when the WAN changes.

The edge reaches each shield (data and probe listeners) through a latency-injecting TCP relay
(infra.wan); probers, node agents and the control plane (in memory) are the real ones.
"""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import aiohttp

from cdn_core.config import Config, HostPort
from controlplane.connect import connect
from infra.wan import Link, LinkState, Relay
from tests.shield.conftest import HOST, Origin, edge_url, overlay_config, start_node

FAR_MS, NEAR_MS = 80.0, 4.0


async def relay_to(address: HostPort, rtt_ms: float, front_host: str) -> Relay:
    link = Link(
        from_region="edge",
        to_region="shield",
        target=str(address),
        upstream_host=address.host,
        upstream_port=address.port,
    )
    relay = Relay(link, listen_host=front_host, listen_port=0, state=LinkState(rtt_ms=rtt_ms))
    await relay.start()
    return relay


async def first_tier(client: aiohttp.ClientSession, config: Config, path: str) -> str:
    async with client.get(edge_url(config, "edge-1", path), headers={"Host": HOST}) as response:
        assert response.status == 200
        await response.read()
        return response.headers.getall("Cache-Status")[0].split(";")[0]


async def wait_for_tier(
    client: aiohttp.ClientSession, config: Config, shield: str, prefix: str
) -> int:
    """Send misses until three in a row go through ``shield``; returns the misses sent."""
    streak = 0
    for i in range(300):  # bounded: 300 misses, 50 ms apart at most
        streak = streak + 1 if await first_tier(client, config, f"/{prefix}/{i}") == shield else 0
        if streak == 3:
            return i + 1
        await asyncio.sleep(0.05)
    raise AssertionError(f"misses never settled on {shield}")


async def test_nearest_shield_then_move_when_latency_changes(
    origin: Origin, secret_file: Path, client: aiohttp.ClientSession, cluster_name: str
) -> None:
    config = overlay_config(
        origin.port,
        shields=2,
        edges=1,
        secret_file=secret_file,
        overrides={
            "cluster": cluster_name,
            "controlplane": {"heartbeat_interval": "200ms", "node_ttl": "1s"},
        },
    )
    relays: dict[str, Relay] = {}
    started = []
    try:
        rtts = {"shield-1": FAR_MS, "shield-2": NEAR_MS}
        fronts = {}
        for i, (name, rtt) in enumerate(rtts.items(), start=1):
            node = config.node(name)
            relays[f"{name}.listen"] = await relay_to(node.listen, rtt, f"127.0.3.{i}")
            relays[f"{name}.admin"] = await relay_to(node.admin, rtt, f"127.0.3.{i}")
            fronts[name] = dataclasses.replace(
                node,
                listen=HostPort(f"127.0.3.{i}", relays[f"{name}.listen"].listen_port),
                admin=HostPort(f"127.0.3.{i}", relays[f"{name}.admin"].listen_port),
            )
        # The edge sees the shields at the relays' fronts; the shields bind the real addresses.
        edge_config = dataclasses.replace(
            config, nodes=tuple(fronts.get(n.name, n) for n in config.nodes)
        )
        control = connect("memory", cluster_name)
        for name in ("shield-1", "shield-2"):
            started.append(await start_node(config, name, agent=True))
        started.append(await start_node(edge_config, "edge-1", control=control, agent=True))

        overlay = started[-1].parts.overlay
        assert overlay is not None
        await wait_for_tier(client, edge_config, "shield-2", "before")
        assert overlay.last_routes["site"].route.primary.reason.value == "nearest"

        for name, rtt in (("shield-1", NEAR_MS), ("shield-2", FAR_MS)):
            for kind in ("listen", "admin"):
                relays[f"{name}.{kind}"].apply(LinkState(rtt_ms=rtt))
        await wait_for_tier(client, edge_config, "shield-1", "after")
        assert overlay.last_routes["site"].route.primary.reason.value == "nearest"
    finally:
        for running_node in reversed(started):
            await running_node.stop()
        for relay in relays.values():
            await relay.close()
