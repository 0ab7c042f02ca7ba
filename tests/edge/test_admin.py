"""The admin listener: /healthz and /metrics, and never user traffic (nor the reverse)."""

from __future__ import annotations

import dataclasses

import aiohttp
from aiohttp import web

from cdn_cli.node_root import run_node
from cdn_core.testing import FakeClock
from tests.edge.conftest import EdgeUnderTest, Origin, make_config, wait_until


def sample(text: str, line_prefix: str) -> float:
    for line in text.splitlines():
        if line.startswith(line_prefix + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{line_prefix} not in the metrics")


async def test_metrics_count_what_happened(origin: Origin, edge: EdgeUnderTest) -> None:
    origin.static("/m", b"m" * 100, cache_control="max-age=60")
    for _ in range(3):
        async with edge.get("/m") as response:
            await response.read()
    async with edge.get("/", headers={"Host": "nope.example"}):
        pass
    async with edge.session.get(edge.admin_url + "/metrics") as response:
        assert response.status == 200
        text = await response.text()
    assert sample(text, 'cdn_requests_total{cache="miss",status="2xx"}') == 1
    assert sample(text, 'cdn_requests_total{cache="hit",status="2xx"}') == 2
    assert sample(text, 'cdn_requests_total{cache="rejected",status="4xx"}') == 1
    assert sample(text, 'cdn_bytes_served_total{cache="hit"}') == 200
    assert sample(text, 'cdn_upstream_requests_total{result="ok"}') == 1
    assert sample(text, "cdn_upstream_first_byte_seconds_count") == 1
    assert sample(text, "cdn_cache_objects") == 1
    assert sample(text, "cdn_cache_bytes") > 100
    assert sample(text, "cdn_coalesced_waiters_total") == 0
    assert sample(text, "cdn_cache_evictions_total") == 0


async def test_healthz(edge: EdgeUnderTest) -> None:
    async with edge.session.get(edge.admin_url + "/healthz") as response:
        assert response.status == 200
        assert (await response.json())["node"] == "edge-1"


async def test_admin_listener_never_serves_user_traffic(
    origin: Origin, edge: EdgeUnderTest
) -> None:
    origin.static("/page", b"user content", cache_control="max-age=60")
    for path in ("/page", "/"):
        async with edge.session.get(
            edge.admin_url + path, headers={"Host": "www.cdn.test"}
        ) as response:
            assert response.status == 404
            assert b"user content" not in await response.read()
    assert origin.hits == {}


async def test_data_listener_never_serves_metrics(origin: Origin, edge: EdgeUnderTest) -> None:
    @origin.route("/metrics")
    async def origin_metrics(request: web.Request) -> web.Response:
        return web.Response(text="the origin's own page")

    async with edge.get("/metrics") as response:
        assert await response.text() == "the origin's own page"
    async with edge.get("/metrics", headers={"Host": "unknown.example"}) as response:
        assert response.status == 421
        assert "cdn_requests_total" not in await response.text()


async def test_with_the_control_plane_a_purge_reaches_the_cache(
    origin: Origin, clock: FakeClock, cluster_name: str
) -> None:
    from controlplane.purge_log import issue_purge, new_rule

    config = dataclasses.replace(make_config(origin.url), cluster=cluster_name)
    async with run_node(config, "edge-1", b"0123456789abcdef0123", clock=clock) as running:
        agent, node = running.agent, running.node
        assert agent is not None
        origin.static("/p", b"purge me", cache_control="max-age=600")
        url = f"http://{node.data_address}/p"
        async with aiohttp.ClientSession(headers={"Host": "www.cdn.test"}) as session:
            await wait_until(lambda: agent.ready_to_serve_from_cache)
            for _ in range(2):
                async with session.get(url) as response:
                    await response.read()
            assert len(node.store) == 1
            rule = new_rule("url", ["http://www.cdn.test/p"], soft=False)
            await issue_purge(running.control, rule, maxlen=1000)
            await wait_until(lambda: len(node.store) == 0)
            async with session.get(url) as response:
                assert "fwd=uri-miss" in response.headers["Cache-Status"]
        assert origin.hits["/p"] == 2
