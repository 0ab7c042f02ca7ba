"""Ranking with latency data written through the control plane (a real Redis)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Mapping
from typing import Any

import dns.asyncquery
import dns.edns
import dns.message
import pytest

from controlplane.connect import connect
from tests.conftest import free_port
from tests.router.conftest import make_report

pytestmark = [pytest.mark.redis, pytest.mark.timeout(60)]


@pytest.fixture
async def store(redis_url, cluster_name):
    store = connect(redis_url, cluster_name)
    yield store
    await store.close()


async def answer_for(router, subnet: str) -> list[str]:
    option = dns.edns.ECSOption(subnet, 24)
    query = dns.message.make_query("www.cdn.test", "A", use_edns=0, options=[option])
    port = router.config.dns.listen.port
    response = await dns.asyncquery.udp(query, "127.0.0.1", port=port, timeout=3)
    return sorted(rd.to_text() for rrset in response.answer for rd in rrset)


async def publish(
    store: Any, rtts: Mapping[str, float | None], ttl_s: float = 30.0, **kw: Any
) -> None:
    for name in ("edge-a", "edge-b"):
        await store.publish_report(make_report(name, {"eu": rtts[name]}, **kw), ttl_s)


async def test_lowest_rtt_wins(start_router, store):
    await publish(store, {"edge-a": 40.0, "edge-b": 12.0})
    router = await start_router(source=store)
    assert await answer_for(router, "127.10.9.0") == ["127.0.1.2"]
    await publish(store, {"edge-a": 3.0, "edge-b": 12.0})
    assert await router.refresh()
    assert await answer_for(router, "127.10.9.0") == ["127.0.1.1"]


async def test_unreachable_estimate_is_never_chosen(start_router, store):
    await publish(store, {"edge-a": None, "edge-b": 80.0})
    router = await start_router(source=store)
    assert await answer_for(router, "127.10.9.0") == ["127.0.1.2"]


async def test_down_edge_excluded_within_one_heartbeat_ttl(start_router, store):
    ttl_s = 1.0
    await store.publish_report(make_report("edge-a", {"eu": 5.0}), ttl_s)
    await store.publish_report(make_report("edge-b", {"eu": 50.0}), 30.0)
    router = await start_router(source=store)
    assert await answer_for(router, "127.10.9.0") == ["127.0.1.1"]
    await asyncio.sleep(ttl_s + 0.2)  # edge-a stops heartbeating: its registration expires
    assert await router.refresh()
    assert await answer_for(router, "127.10.9.0") == ["127.0.1.2"]


async def test_hysteresis_holds_under_jitter(start_router, store):
    jitter = random.Random(7)
    await publish(store, {"edge-a": 20.0, "edge-b": 22.0})
    router = await start_router(source=store)
    assert await answer_for(router, "127.10.9.0") == ["127.0.1.1"]
    for _ in range(12):  # many probe rounds of +-3 ms noise: never beyond the 5 ms margin
        noisy = {
            "edge-a": 20.0 + jitter.uniform(-3, 3),
            "edge-b": 21.0 + jitter.uniform(-3, 3),
        }
        await publish(store, noisy)
        assert await router.refresh()
        assert await answer_for(router, "127.10.9.0") == ["127.0.1.1"]
    await publish(store, {"edge-a": 20.0, "edge-b": 9.0})  # a real improvement switches
    assert await router.refresh()
    assert await answer_for(router, "127.10.9.0") == ["127.0.1.2"]


class Switchable:
    """Reads the real store until pointed at a Redis URL where nothing listens."""

    def __init__(self, store: Any) -> None:
        self.store = store

    async def snapshot(self):
        return await self.store.snapshot()


async def test_router_keeps_answering_when_the_store_fails(start_router, store, cluster_name):
    await publish(store, {"edge-a": 40.0, "edge-b": 12.0})
    source = Switchable(store)
    router = await start_router(source=source)
    dead = connect(f"redis://127.0.0.1:{free_port()}/0", cluster_name)
    source.store = dead
    try:
        assert not await router.refresh()
        assert await answer_for(router, "127.10.9.0") == ["127.0.1.2"]
    finally:
        await dead.close()
