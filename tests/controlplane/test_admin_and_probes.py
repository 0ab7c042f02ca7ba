"""Admin endpoints (401 / 200) and probe estimates reaching the control plane."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from controlplane.admin import add_admin_routes, sign_admin_request
from controlplane.redis_store import RedisControlStore

from .harness import SECRET, Cluster, eventually, make_config


async def serve(app: web.Application, host: str, port: int) -> web.AppRunner:
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner


async def _origin_page(request: web.Request) -> web.Response:
    return web.Response(text="ok")


@pytest.fixture
async def cluster(tmp_path: Path, redis_url: str, cluster_name: str) -> AsyncIterator[Cluster]:
    config = make_config(tmp_path, redis_url, cluster_name, shields=2, edges=1, client_networks=[])
    store = RedisControlStore.from_url(redis_url, cluster_name)
    c = Cluster(config, store, {})
    runners: list[web.AppRunner] = []
    try:
        for node in config.nodes:
            app = web.Application()
            add_admin_routes(app, c.agent(node.name), SECRET)
            runners.append(await serve(app, node.admin.host, node.admin.port))
        origin = web.Application()
        origin.router.add_get("/", _origin_page)
        addr = config.origins[0].address
        runners.append(await serve(origin, addr.host, addr.port))
        for agent in c.agents.values():
            await agent.start()
        await c.wait_ready()
        c.runners = runners  # type: ignore[attr-defined]
        yield c
    finally:
        await c.stop_all()
        for runner in runners:
            await runner.cleanup()
        await store.close()


async def test_probe_estimates_reach_the_control_plane(cluster: Cluster) -> None:
    async def measured() -> bool:
        report = (await cluster.store.snapshot()).nodes.get("edge-1")
        if report is None:
            return False
        targets = ("node:shield-1", "node:shield-2", "origin:site")
        return all((e := report.estimate(t)) is not None and e.up and e.rtt_ms for t in targets)

    assert await eventually(measured)
    shield = (await cluster.store.snapshot()).nodes["shield-1"]
    assert set(shield.estimates) == {"node:shield-2", "origin:site"}

    await cluster.runners[1].cleanup()  # type: ignore[attr-defined]  # shield-2's admin dies

    async def marked_down() -> bool:
        report = (await cluster.store.snapshot()).nodes["edge-1"]
        estimate = report.estimate("node:shield-2")
        return estimate is not None and not estimate.up and estimate.loss > 0

    assert await eventually(marked_down)


async def post_purge(
    cluster: Cluster, body: bytes, headers: dict[str, str]
) -> tuple[int, dict[str, Any]]:
    admin = cluster.config.node("edge-1").admin
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"http://{admin}/purge", data=body, headers=headers) as response,
    ):
        return response.status, await response.json()


BODY = json.dumps({"kind": "tag", "values": ["product-1"], "soft": True}).encode()


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-secret-wrong-secret"},
        {"Authorization": "CDN-HMAC t=1,sig=00"},
        {
            "Authorization": sign_admin_request(
                b"another-secret-0123", "POST", "/purge", BODY, now=time.time()
            )
        },
        {
            "Authorization": sign_admin_request(
                SECRET, "POST", "/purge", BODY, now=time.time() - 3600
            )
        },
        {"Authorization": sign_admin_request(SECRET, "POST", "/purge", b"{}", now=time.time())},
        {"Authorization": "Basic Zm9vOmJhcg=="},
    ],
    ids=["none", "bad-bearer", "bad-sig", "other-secret", "too-old", "other-body", "basic"],
)
async def test_unauthenticated_purge_is_401_and_changes_nothing(cluster: Cluster, headers) -> None:
    status, body = await post_purge(cluster, BODY, headers)

    assert status == 401
    assert "secret" in body["error"]
    assert await cluster.store.read_purges("0-0") == []


@pytest.mark.parametrize("scheme", ["bearer", "hmac"])
async def test_authenticated_purge_is_applied_everywhere(cluster: Cluster, scheme: str) -> None:
    for cache in cluster.caches.values():
        cache.put("www.cdn.test", "/p", "product-1")
    auth = (
        f"Bearer {SECRET.decode()}"
        if scheme == "bearer"
        else sign_admin_request(SECRET, "POST", "/purge", BODY, now=time.time())
    )

    status, body = await post_purge(cluster, BODY, {"Authorization": auth})

    assert status == 200 and body["id"]

    async def applied() -> bool:
        return all(c.state("www.cdn.test", "/p") == "stale" for c in cluster.caches.values())

    assert await eventually(applied)


async def test_purge_with_wait_reports_acks(cluster: Cluster) -> None:
    body = json.dumps({"kind": "url", "values": ["http://www.cdn.test/x"], "wait": True}).encode()

    status, reply = await post_purge(cluster, body, {"Authorization": f"Bearer {SECRET.decode()}"})

    assert status == 200
    assert reply["acked"] == ["edge-1", "shield-1", "shield-2"] and reply["missing"] == []


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"kind": "url"}',
        b'{"kind": "nope", "values": ["x"]}',
        b'{"kind": "tag", "values": ["x"], "soft": "yes"}',
        b'{"kind": "tag", "values": [1]}',
    ],
)
async def test_bad_purge_body_is_400(cluster: Cluster, body: bytes) -> None:
    status, reply = await post_purge(cluster, body, {"Authorization": f"Bearer {SECRET.decode()}"})

    assert status == 400 and reply["error"]
    assert await cluster.store.read_purges("0-0") == []


async def test_probe_endpoint_answers_204(cluster: Cluster) -> None:
    admin = cluster.config.node("shield-1").admin
    async with aiohttp.ClientSession() as session, session.get(f"http://{admin}/probe") as resp:
        assert resp.status == 204
    await asyncio.sleep(0)
