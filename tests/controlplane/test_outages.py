"""Missed purges: node restarts, Redis restarts, trimmed logs. No purge is ever lost."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cdn_core.purge import PurgeKind
from controlplane.memory_store import MemoryControlStore
from controlplane.purge_log import issue_purge, new_rule
from controlplane.redis_server import start_redis_server, wait_for_port
from controlplane.redis_store import RedisControlStore
from controlplane.store import StoreUnavailable
from tests.conftest import free_port

from .harness import Cluster, eventually, make_config

HOST = "www.cdn.test"


async def test_node_stopped_during_a_purge_never_serves_the_object(
    tmp_path: Path, redis_url: str, cluster_name: str
) -> None:
    config = make_config(tmp_path, redis_url, cluster_name, shields=0, edges=2)
    store = RedisControlStore.from_url(redis_url, cluster_name)
    cluster = Cluster(config, store, {})
    try:
        await cluster.start_all()
        cache = cluster.caches["edge-1"]
        cache.put(HOST, "/a")
        await cluster.agents["edge-1"].stop()
        rule = new_rule(PurgeKind.URL, [f"http://{HOST}/a"], soft=False)
        await issue_purge(store, rule, maxlen=1000)

        again = cluster.agent("edge-1")  # same cache (as if on disk), same state dir
        await again.start()
        for _ in range(200):  # the edge may serve from cache only once ready
            if again.ready_to_serve_from_cache:
                assert cache.state(HOST, "/a") == "absent"
                break
            assert not again.ready_to_serve_from_cache
            await asyncio.sleep(0.05)
        assert again.ready_to_serve_from_cache
        assert cache.drops == 0  # the position survived: a catch-up, not a drop
    finally:
        await cluster.stop_all()
        await store.close()


async def test_trimmed_log_drops_the_cache(
    tmp_path: Path, redis_url: str, cluster_name: str
) -> None:
    config = make_config(
        tmp_path,
        redis_url,
        cluster_name,
        shields=0,
        edges=1,
        controlplane={"purge_log_maxlen": 100},
    )
    store = RedisControlStore.from_url(redis_url, cluster_name)
    cluster = Cluster(config, store, {})
    try:
        await cluster.start_all()
        await cluster.agents["edge-1"].stop()
        cache = cluster.caches["edge-1"]
        cache.put(HOST, "/kept-by-no-rule")
        for n in range(400):
            await issue_purge(store, new_rule("tag", [f"t{n}"], soft=False), maxlen=100)

        await cluster.agent("edge-1").start()
        await cluster.wait_ready()

        assert cache.drops == 1
        assert cache.objects == {}
    finally:
        await cluster.stop_all()
        await store.close()


async def test_lost_log_drops_the_cache_once_then_follows_the_new_log(
    tmp_path: Path, cluster_name: str
) -> None:
    config = make_config(tmp_path, "memory", cluster_name, shields=0, edges=1)
    old = MemoryControlStore(cluster_name)
    cluster = Cluster(config, old, {})
    new = MemoryControlStore(cluster_name)  # the store lost its data: a new epoch, a new log
    try:
        await cluster.start_all()
        cache = cluster.caches["edge-1"]
        first = new_rule("tag", ["t0"], soft=False)
        await issue_purge(old, first, maxlen=1000)

        async def applied_first() -> bool:
            return ("edge-1", first.id) in cache.events

        assert await eventually(applied_first)  # its position (old epoch) is in the state file
        await cluster.agents["edge-1"].stop()
        cache.put(HOST, "/cached-before-the-loss")
        second = new_rule("url", [f"http://{HOST}/a"], soft=False)
        await issue_purge(new, second, maxlen=1000)

        cluster.store = new
        await cluster.agent("edge-1", store=new).start()
        await cluster.wait_ready()

        assert cache.drops == 1
        assert cache.objects == {}
        assert cache.events[-1] == ("edge-1", second.id)  # the new log, from its start
    finally:
        await cluster.stop_all()
        await old.close()
        await new.close()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[tuple[str, Callable[[], None], Callable[[], None]]]:
    """A redis-server of this test (AOF, fsync always), restartable on the same port."""
    port = free_port()
    workdir = tmp_path / "redis"
    workdir.mkdir()
    procs: list[subprocess.Popen[bytes]] = []

    def start() -> None:
        procs.append(start_redis_server(port, workdir, durable=True))
        wait_for_port("127.0.0.1", port, 10.0)

    def kill() -> None:
        procs[-1].kill()
        procs[-1].wait(timeout=10)

    start()
    try:
        yield f"redis://127.0.0.1:{port}/0", start, kill
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=10)


async def test_redis_restart_loses_no_purge(tmp_path: Path, own_redis, cluster_name: str) -> None:
    url, start_redis, kill_redis = own_redis
    config = make_config(tmp_path, url, cluster_name, shields=1, edges=2)
    store = RedisControlStore.from_url(url, cluster_name)
    cluster = Cluster(config, store, {})
    try:
        await cluster.start_all()
        for cache in cluster.caches.values():
            for n in range(3):
                cache.put(HOST, f"/{n}")
        await cluster.agents["edge-2"].stop()
        await issue_purge(store, new_rule("url", [f"http://{HOST}/0"], soft=False), maxlen=1000)

        kill_redis()
        with pytest.raises(StoreUnavailable):
            await issue_purge(store, new_rule("url", [f"http://{HOST}/9"], soft=False), maxlen=1000)
        restarted = cluster.agent("edge-2")  # starts while Redis is away: not ready
        await restarted.start()
        await asyncio.sleep(0.3)  # a few follower retries against the dead Redis
        assert not restarted.ready_to_serve_from_cache
        start_redis()
        await issue_purge(store, new_rule("url", [f"http://{HOST}/1"], soft=False), maxlen=1000)

        async def all_applied() -> bool:
            return all(
                c.state(HOST, "/0") == c.state(HOST, "/1") == "absent"
                and c.state(HOST, "/2") == "fresh"
                for c in cluster.caches.values()
            )

        assert await eventually(all_applied)
        await cluster.wait_ready()  # everyone re-registered
    finally:
        await cluster.stop_all()
        await store.close()
