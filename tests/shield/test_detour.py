"""The one-hop detour, end to end: edge -> shield-1 (relay) -> shield-2 -> origin.

The WAN (latency-injecting TCP relays, infra.wan) makes the edge's direct link to shield-2 far
and shield-1's link to the origin far, while edge -> shield-1 -> shield-2 is near: the best way
to the origin is shield-2 reached through shield-1. Probers, agents and the control plane (in
memory) are the real ones; nothing about the route is injected.
"""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import aiohttp

from cdn_core.config import HostPort
from controlplane.connect import connect
from infra.wan import Relay
from tests.shield.conftest import HOST, Origin, Running, edge_url, overlay_config, start_node
from tests.shield.test_latency_routing import relay_to

FAR_MS = 80.0
ATTEMPTS = 150  # misses, 50 ms apart at most


async def tiers(client: aiohttp.ClientSession, url: str) -> list[str]:
    async with client.get(url, headers={"Host": HOST}) as response:
        assert response.status == 200
        await response.read()
        return [m.split(";")[0].strip() for m in response.headers.getall("Cache-Status")]


async def test_a_far_shield_is_reached_through_a_near_relay(
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
    relays: list[Relay] = []
    started: list[Running] = []
    try:
        # The edge sees shield-2 (data and probe listeners) only across a far link.
        shield2 = config.node("shield-2")
        data = await relay_to(shield2.listen, FAR_MS, "127.0.3.2")
        relays.append(data)
        admin = await relay_to(shield2.admin, FAR_MS, "127.0.3.2")
        relays.append(admin)
        far_shield2 = dataclasses.replace(
            shield2,
            listen=HostPort("127.0.3.2", data.listen_port),
            admin=HostPort("127.0.3.2", admin.listen_port),
        )
        edge_config = dataclasses.replace(
            config, nodes=tuple(far_shield2 if n.name == "shield-2" else n for n in config.nodes)
        )
        # shield-1 sees the origin only across a far link.
        origin_relay = await relay_to(HostPort("127.0.0.1", origin.port), FAR_MS, "127.0.3.9")
        relays.append(origin_relay)
        [site] = config.origins
        far_site = dataclasses.replace(site, url=f"http://127.0.3.9:{origin_relay.listen_port}")
        shield1_config = dataclasses.replace(config, origins=(far_site,))

        control = connect("memory", cluster_name)
        started.append(await start_node(shield1_config, "shield-1", agent=True))
        started.append(await start_node(config, "shield-2", agent=True))
        started.append(await start_node(edge_config, "edge-1", control=control, agent=True))
        overlay = started[-1].parts.overlay
        assert overlay is not None

        for i in range(ATTEMPTS):
            await tiers(client, edge_url(config, "edge-1", f"/warm/{i}"))
            primary = overlay.last_routes["site"].route.primary
            if (primary.shield, primary.via) == ("shield-2", "shield-1"):
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError(f"the edge never planned the detour: {primary}")

        relay_store, shield_store = (started[i].node.store for i in (0, 1))
        before = len(relay_store), len(shield_store)
        assert await tiers(client, edge_url(config, "edge-1", "/detour")) == ["shield-2", "edge-1"]
        assert primary.reason.value == "nearest"
        assert origin.requests_for("/detour") == 1
        # shield-1 only relayed (nothing stored there); shield-2 stored the object.
        assert (len(relay_store), len(shield_store)) == (before[0], before[1] + 1)
        assert started[0].parts.guard is not None and not started[0].parts.guard.refused
        routes = overlay.route_choices()
        assert (routes["site"].shield, routes["site"].via) == ("shield-2", "shield-1")
    finally:
        for running_node in reversed(started):
            await running_node.stop()
        for relay in relays:
            await relay.close()
