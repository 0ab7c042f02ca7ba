"""ControlStore contract, registry half: both implementations behave the same."""

from __future__ import annotations

import asyncio

from cdn_core.config import Role
from cdn_core.registry import PeerEstimate
from controlplane.connect import connect
from controlplane.memory_store import MemoryControlStore
from controlplane.redis_store import RedisControlStore

from .conftest import StoreUnderTest, make_report


async def test_published_report_is_in_the_snapshot(subject: StoreUnderTest) -> None:
    report = make_report("edge-1", cache_objects=7, cache_bytes=1024, capacity_rps=500.0)

    await subject.store.publish_report(report, ttl_s=5.0)
    snapshot = await subject.store.snapshot()

    assert snapshot.is_live("edge-1")
    assert snapshot.nodes["edge-1"] == report
    assert snapshot.nodes["edge-1"].estimate("node:shield-1") == PeerEstimate(
        rtt_ms=1.5, rttvar_ms=0.5, loss=0.0, up=True, samples=3
    )


async def test_registration_expires_after_its_ttl(subject: StoreUnderTest) -> None:
    await subject.store.publish_report(make_report("edge-1"), ttl_s=0.2)
    await subject.store.publish_report(make_report("shield-1", role=Role.SHIELD), ttl_s=30.0)

    for _ in range(50):  # Redis expires keys lazily-or-actively; bounded wait, no timing claim
        await subject.let_pass(0.25)
        if not (await subject.store.snapshot()).is_live("edge-1"):
            break

    snapshot = await subject.store.snapshot()
    assert not snapshot.is_live("edge-1")
    assert snapshot.is_live("shield-1")


async def test_a_fresh_heartbeat_replaces_the_report(subject: StoreUnderTest) -> None:
    await subject.store.publish_report(make_report("edge-1", cache_objects=1), ttl_s=5.0)
    await subject.store.publish_report(make_report("edge-1", cache_objects=2), ttl_s=5.0)

    snapshot = await subject.store.snapshot()

    assert snapshot.nodes["edge-1"].cache_objects == 2
    assert list(snapshot.nodes) == ["edge-1"]


async def test_removed_report_is_down_at_once(subject: StoreUnderTest) -> None:
    await subject.store.publish_report(make_report("edge-1"), ttl_s=5.0)

    await subject.store.remove_report("edge-1")

    assert not (await subject.store.snapshot()).is_live("edge-1")


async def test_empty_cluster_has_an_empty_snapshot(subject: StoreUnderTest) -> None:
    assert (await subject.store.snapshot()).nodes == {}


async def test_clusters_do_not_see_each_other(redis_url: str, cluster_name: str) -> None:
    a = RedisControlStore.from_url(redis_url, cluster_name + "a")
    b = RedisControlStore.from_url(redis_url, cluster_name + "b")
    try:
        await a.publish_report(make_report("edge-1"), ttl_s=5.0)
        assert (await b.snapshot()).nodes == {}
    finally:
        await a.close()
        await b.close()


async def test_malformed_report_in_redis_is_ignored(redis_url: str, cluster_name: str) -> None:
    store = RedisControlStore.from_url(redis_url, cluster_name)
    try:
        await store.publish_report(make_report("edge-1"), ttl_s=5.0)
        raw = store._redis  # write garbage exactly where a report lives
        await raw.set(f"cdn:{cluster_name}:node:edge-2", "{not json", px=5000)
        await raw.sadd(f"cdn:{cluster_name}:nodes", "edge-2")

        assert list((await store.snapshot()).nodes) == ["edge-1"]
    finally:
        await store.close()


def test_connect_picks_the_implementation(redis_url: str, cluster_name: str) -> None:
    memory = connect("memory", cluster_name)

    assert isinstance(memory, MemoryControlStore)
    assert connect("memory", cluster_name) is memory
    assert isinstance(connect(redis_url, cluster_name), RedisControlStore)


async def test_unreachable_redis_raises_store_unavailable(cluster_name: str) -> None:
    from controlplane.store import StoreUnavailable
    from tests.conftest import free_port

    store = RedisControlStore.from_url(f"redis://127.0.0.1:{free_port()}/0", cluster_name)
    try:
        for call in (store.snapshot(), store.publish_report(make_report("e"), ttl_s=1.0)):
            try:
                await asyncio.wait_for(call, 10)
            except StoreUnavailable as exc:
                assert "unreachable" in str(exc)
            else:
                raise AssertionError("expected StoreUnavailable")
    finally:
        await store.close()
