"""Purges end to end on a real Redis: CLI -> log -> agents -> caches -> acks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from cdn_cli.main import main
from cdn_core.config import Role
from controlplane.redis_store import RedisControlStore

from .conftest import make_report
from .harness import Cluster, make_config

HOST = "www.cdn.test"


@pytest.fixture
async def cluster(tmp_path: Path, redis_url: str, cluster_name: str) -> AsyncIterator[Cluster]:
    config = make_config(tmp_path, redis_url, cluster_name)
    store = RedisControlStore.from_url(redis_url, cluster_name)
    c = Cluster(config, store, {})
    try:
        await c.start_all()
        yield c
    finally:
        await c.stop_all()
        await store.close()


def fill(cluster: Cluster) -> None:
    for cache in cluster.caches.values():
        cache.put(HOST, "/a.css", "style")
        cache.put(HOST, "/img/1.png", "img", "product-1")
        cache.put(HOST, "/img/2.png?v=2", "img")
        cache.put("other.test", "/a.css", "style")


async def cdn(*argv: str) -> int:
    return await asyncio.to_thread(main, list(argv))


CASES = [
    (["url", f"http://{HOST}/a.css"], {(HOST, "/a.css")}),
    (["prefix", f"http://{HOST}/img/"], {(HOST, "/img/1.png"), (HOST, "/img/2.png?v=2")}),
    (["tag", "product-1", "nothing"], {(HOST, "/img/1.png")}),
    (["tag", "style"], {(HOST, "/a.css"), ("other.test", "/a.css")}),
    (["all", HOST], {(HOST, "/a.css"), (HOST, "/img/1.png"), (HOST, "/img/2.png?v=2")}),
]


@pytest.mark.parametrize("soft", [False, True], ids=["hard", "soft"])
@pytest.mark.parametrize(
    ("argv", "purged"), CASES, ids=[c[0][0] + str(i) for i, c in enumerate(CASES)]
)
async def test_each_purge_kind_reaches_every_node(
    cluster: Cluster,
    tmp_path: Path,
    capsys,
    argv: list[str],
    purged: set[tuple[str, str]],
    soft: bool,
) -> None:
    fill(cluster)
    flags = ["--wait", "--config", str(tmp_path / "cdn.toml")] + (["--soft"] if soft else [])

    status = await cdn("purge", *argv, *flags)

    assert status == 0
    assert "acked by 4/4 live node(s)" in capsys.readouterr().out
    for cache in cluster.caches.values():
        for key in cache.objects.keys() | purged:
            expected = ("stale" if soft else "absent") if key in purged else "fresh"
            assert cache.state(*key) == expected, (cache.node, key)


async def test_shields_apply_before_edges(cluster: Cluster, tmp_path: Path) -> None:
    applied: list[tuple[str, str]] = []
    for cache in cluster.caches.values():
        cache.events = applied  # one shared record, in the order caches applied purges
    config = str(tmp_path / "cdn.toml")

    for n in range(5):
        assert await cdn("purge", "tag", f"t{n}", "--wait", "--config", config) == 0

    for purge_id in {pid for _, pid in applied}:
        order = [node for node, pid in applied if pid == purge_id]
        assert len(order) == 4
        assert {n for n in order[:2]} == {"shield-1", "shield-2"}, order


async def test_wait_names_the_nodes_that_did_not_ack(
    cluster: Cluster, tmp_path: Path, capsys
) -> None:
    # A live registration with no agent behind it: it can never ack.
    await cluster.store.publish_report(make_report("ghost", role=Role.EDGE), ttl_s=30.0)
    cfg = make_config(
        tmp_path,
        cluster.config.control_plane,
        cluster.config.cluster,
        controlplane={"purge_wait_timeout": "300ms"},
    )
    assert cfg.controlplane.purge_wait_timeout_s == 0.3

    status = await cdn(
        "purge", "url", f"http://{HOST}/x", "--wait", "--config", str(tmp_path / "cdn.toml")
    )

    out = capsys.readouterr()
    assert status == 1
    assert "acked by 4/5" in out.out
    assert "no ack from: ghost" in out.err


async def test_purge_without_wait_is_applied_too(cluster: Cluster, tmp_path: Path) -> None:
    fill(cluster)

    assert (
        await cdn("purge", "url", f"http://{HOST}/a.css", "--config", str(tmp_path / "cdn.toml"))
        == 0
    )

    async def applied() -> bool:
        return all(c.state(HOST, "/a.css") == "absent" for c in cluster.caches.values())

    from .harness import eventually

    assert await eventually(applied)


async def test_bad_purge_input_exits_2_and_logs_nothing(
    cluster: Cluster, tmp_path: Path, capsys
) -> None:
    status = await cdn("purge", "url", "/relative", "--config", str(tmp_path / "cdn.toml"))

    assert status == 2
    assert "absolute http" in capsys.readouterr().err
    assert await cluster.store.read_purges("0-0") == []


async def test_unreachable_redis_fails_clearly(tmp_path: Path, cluster_name: str, capsys) -> None:
    from tests.conftest import free_port

    make_config(tmp_path, f"redis://127.0.0.1:{free_port()}/0", cluster_name)

    status = await cdn("purge", "tag", "x", "--wait", "--config", str(tmp_path / "cdn.toml"))

    assert status == 1
    assert "control plane unreachable" in capsys.readouterr().err


async def test_status_lists_nodes_and_matrix(cluster: Cluster, tmp_path: Path, capsys) -> None:
    cluster.caches["edge-1"].put(HOST, "/a")
    await cluster.agents["edge-2"].stop()  # deregisters: shown down

    async def reported() -> bool:
        snap = await cluster.store.snapshot()
        report = snap.nodes.get("edge-1")
        return report is not None and report.cache_objects == 1 and "edge-2" not in snap.nodes

    from .harness import eventually

    assert await eventually(reported)
    assert await cdn("status", "--config", str(tmp_path / "cdn.toml")) == 0

    out = capsys.readouterr().out.splitlines()
    edge1 = next(line for line in out if line.startswith("edge-1 "))
    edge2 = next(line for line in out if line.startswith("edge-2 "))
    assert edge1.split()[:4] == ["edge-1", "edge", "eu", "up"] and edge1.split()[-2:] == [
        "1",
        "100",
    ]
    assert edge2.split()[:4] == ["edge-2", "edge", "eu", "down"]
    assert any("latency" in line for line in out)
    header = out[out.index("latency (smoothed RTT, ms):") + 1]
    assert "node:shield-1" in header and "origin:site" in header
