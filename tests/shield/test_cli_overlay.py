"""`cdn shield` and `cdn edge` as real processes: the tiered overlay through the CLI.

An origin (in the test), one shield and two edges started with ``python -m cdn_cli.main`` on a
Redis control plane. Every node binds its outgoing connections to its own source address, so
the origin can tell who reached it.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp

from cdn_cli.configfile import read_config
from cdn_cli.status_cmd import render_status
from controlplane.connect import connect
from tests.shield.conftest import HOST, Origin
from tests.shield.processes import Cluster, cluster, config_text, members, node_specs

ATTEMPTS = 50  # x 0.2 s: the edges see the shield's first heartbeat well within this


async def get(
    client: aiohttp.ClientSession, url: str, headers: dict[str, str] | None = None
) -> tuple[int, str, list[str]]:
    async with client.get(url, headers={"Host": HOST, **(headers or {})}) as response:
        cache_status = ", ".join(response.headers.getall("Cache-Status", []))
        return response.status, await response.text(), members(cache_status)


async def first_miss_through_shield(
    client: aiohttp.ClientSession, running: Cluster, edge: str
) -> str:
    """Fresh paths at ``edge`` until one goes through the shield (the edge saw the snapshot)."""
    for i in range(ATTEMPTS):
        path = f"/warm-{edge}-{i}"
        status, _, tiers = await get(client, f"http://{running.specs[edge].listen}{path}")
        assert status == 200
        if tiers == ["shield-1", edge]:
            return path
        await asyncio.sleep(0.2)
    raise AssertionError(f"{edge} never routed through shield-1:\n{running.log(edge)}")


async def status_with_routes(running: Cluster, redis_url: str, cluster_name: str) -> list[str]:
    """``cdn status`` once both edges reported a route (they heartbeat every 200 ms)."""
    config = read_config(str(running.node_dir("edge-1") / "cdn.toml"))
    store = connect(redis_url, cluster_name)
    try:
        for _ in range(ATTEMPTS):
            snapshot = await store.snapshot()
            edges = [snapshot.nodes.get(e) for e in ("edge-1", "edge-2")]
            if all(r is not None and "site" in r.routes for r in edges):
                return render_status(config, snapshot)
            await asyncio.sleep(0.2)
    finally:
        await store.close()
    raise AssertionError("the edges never reported their routes")


async def test_cli_nodes_run_the_tiered_overlay(
    origin: Origin, tmp_path: Path, redis_url: str, cluster_name: str
) -> None:
    specs = node_specs(shields=1, edges=2)
    config = config_text(
        cluster=cluster_name,
        control_plane=redis_url,
        origin_url=f"http://127.0.0.1:{origin.port}",
        nodes=specs,
    )
    timeout = aiohttp.ClientTimeout(total=15)
    async with (
        cluster(tmp_path, config, specs) as running,
        aiohttp.ClientSession(timeout=timeout) as client,
    ):
        for spec in specs:
            running.start(spec.name)
        for spec in specs:
            await running.wait_healthy(client, spec.name)
        await running.wait_converged(redis_url, cluster_name)
        edge1, edge2 = (f"http://{running.specs[e].listen}" for e in ("edge-1", "edge-2"))
        shield = f"http://{running.specs['shield-1'].listen}"

        # A miss at edge-1 goes edge -> shield -> origin; both tiers report.
        await first_miss_through_shield(client, running, "edge-1")
        spoofed = {"X-Overlay-Route": "shield-1", "X-Forwarded-For": "10.9.9.9"}
        status, body, tiers = await get(client, f"{edge1}/a", spoofed)
        assert (status, body, tiers) == (200, "body of /a\n", ["shield-1", "edge-1"])
        index = [p for p, _ in origin.seen].index("/a")
        seen, remote = origin.seen[index][1], origin.remotes[index]
        assert remote == "127.0.2.1"  # the shield's source address
        assert not [k for k in seen if k.lower().startswith("x-overlay-")]
        assert "shield-1" not in repr(seen) and "edge-1" not in repr(seen)
        assert seen["CDN-Loop"] == cluster_name
        # The user's address, not the edge's; a user's own X-Forwarded-For is not trusted.
        assert seen["X-Forwarded-For"] == "127.0.0.1"

        # edge-2 reaches the same shield, which answers from its cache.
        await first_miss_through_shield(client, running, "edge-2")
        status, body, tiers = await get(client, f"{edge2}/a")
        assert (status, body, tiers) == (200, "body of /a\n", ["shield-1", "edge-2"])
        assert origin.requests_for("/a") == 1
        status_lines = await status_with_routes(running, redis_url, cluster_name)
        assert "chosen shield per edge (last route):" in status_lines
        assert [r for r in status_lines if r.split()[:3] == ["edge-1", "site", "shield-1"]]

        # The shield refuses a request without an overlay tag; a looping user request 508s.
        async with client.get(f"{shield}/a", headers={"Host": HOST}) as refused:
            assert refused.status == 403
            assert refused.headers["X-Overlay-Error"]
        looped = await get(client, f"{edge1}/loop", {"CDN-Loop": cluster_name})
        assert looped[0] == 508
        assert origin.requests_for("/loop") == 0

        # Kill the shield: the edges still answer, going direct.
        await running.kill("shield-1")
        for edge, url in (("edge-1", edge1), ("edge-2", edge2)):
            for i in range(3):
                status, body, tiers = await get(client, f"{url}/after-{i}")
                assert (status, tiers) == (200, [edge]), running.log(edge)
        direct = [origin.remotes[i] for i, (p, _) in enumerate(origin.seen) if "after" in p]
        assert set(direct) == {"127.0.1.1", "127.0.1.2"}  # the edges' sources
