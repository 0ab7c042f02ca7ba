"""Edges reaching the origin through shields: tiers, collapsing, failover, direct fallback."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp

from controlplane.memory_store import MemoryControlStore
from tests.shield.conftest import HOST, Origin, edge_url, overlay_config, running


async def get(client: aiohttp.ClientSession, url: str) -> tuple[int, str, str]:
    async with client.get(url, headers={"Host": HOST}) as response:
        cache_status = ", ".join(response.headers.getall("Cache-Status", []))
        return response.status, await response.text(), cache_status


async def test_miss_goes_through_a_shield_and_both_tiers_report(
    origin: Origin, secret_file: Path, client: aiohttp.ClientSession
) -> None:
    config = overlay_config(origin.port, shields=1, edges=1, secret_file=secret_file)
    async with running(config, ["shield-1", "edge-1"]) as nodes:
        status, body, cache_status = await get(client, edge_url(config, "edge-1", "/a"))
        assert (status, body) == (200, "body of /a\n")
        members = [m.strip().split(";")[0] for m in cache_status.split(",")]
        assert members == ["shield-1", "edge-1"]
        assert len(nodes["shield-1"].node.store) == 1
    [(_, seen)] = origin.seen
    assert not [k for k in seen if k.lower().startswith("x-overlay-")]
    assert "shield-1" not in repr(seen) and "edge-1" not in repr(seen)
    assert seen["CDN-Loop"] == "ovl"
    assert "X-Forwarded-For" in seen


async def test_four_edges_one_cold_object_one_origin_request(
    origin: Origin, secret_file: Path, client: aiohttp.ClientSession
) -> None:
    origin.delay_s = 0.3
    config = overlay_config(origin.port, shields=1, edges=4, secret_file=secret_file)
    edges = [f"edge-{i}" for i in range(1, 5)]
    async with running(config, ["shield-1", *edges]):
        results = await asyncio.gather(
            *(get(client, edge_url(config, edge, "/cold")) for edge in edges)
        )
    assert [r[:2] for r in results] == [(200, "body of /cold\n")] * 4
    assert origin.requests_for("/cold") == 1


async def test_every_shield_down_goes_direct(
    origin: Origin, secret_file: Path, client: aiohttp.ClientSession
) -> None:
    config = overlay_config(origin.port, shields=2, edges=1, secret_file=secret_file)
    # Without a control plane the edge assumes both shields live: it tries them and fails over.
    async with running(config, ["edge-1"]) as nodes:
        for i in range(3):
            status, body, cache_status = await get(client, edge_url(config, "edge-1", f"/d{i}"))
            assert (status, body) == (200, f"body of /d{i}\n")
            assert "shield" not in cache_status
        overlay = nodes["edge-1"].overlay
        assert overlay is not None
        assert overlay.locally_down() == {"shield-1", "shield-2"}
        assert overlay.last_routes["site"].route.primary.reason.value == "no-shield"
    assert origin.requests_for("/d0") == 1


async def test_no_live_shield_in_the_control_plane_goes_direct(
    origin: Origin, secret_file: Path, client: aiohttp.ClientSession
) -> None:
    config = overlay_config(origin.port, shields=1, edges=1, secret_file=secret_file)
    store = MemoryControlStore("ovl")
    async with running(config, ["shield-1", "edge-1"], control=store) as nodes:
        status, _, cache_status = await get(client, edge_url(config, "edge-1", "/n"))
        assert status == 200 and "shield-1" not in cache_status
        overlay = nodes["edge-1"].overlay
        assert overlay is not None
        assert overlay.last_routes["site"].route.primary.reason.value == "no-shield"
    assert origin.requests_for("/n") == 1


async def test_killing_the_shield_in_use_fails_no_request(
    origin: Origin, secret_file: Path, client: aiohttp.ClientSession
) -> None:
    config = overlay_config(origin.port, shields=2, edges=1, secret_file=secret_file)
    async with running(config, ["shield-1", "shield-2", "edge-1"]) as nodes:
        statuses: list[int] = []
        tiers: list[str] = []

        async def worker(w: int) -> None:
            for i in range(40):
                status, _, cache_status = await get(
                    client, edge_url(config, "edge-1", f"/load/{w}/{i}")
                )
                statuses.append(status)
                tiers.append(cache_status.split(";")[0])

        load = asyncio.gather(*(worker(w) for w in range(4)))
        for _ in range(200):  # until some misses went through shield-1 (bounded)
            if tiers.count("shield-1") >= 10:
                break
            await asyncio.sleep(0.01)
        await nodes["shield-1"].node.stop()
        await load
        assert statuses == [200] * 160
        assert tiers.count("shield-1") >= 10
        assert tiers[-20:] == ["shield-2"] * 20
