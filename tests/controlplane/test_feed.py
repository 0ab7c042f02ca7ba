"""The one snapshot feed of nodes and router: the last good snapshot survives an outage, the
outage is logged once, and the feed recovers by itself."""

from __future__ import annotations

import asyncio
import logging

import pytest

from cdn_core.config import Role, load_config
from cdn_core.registry import ClusterSnapshot
from cdn_core.testing import FakeClock, make_report
from controlplane.feed import SnapshotFeed, StaticSource, assumed_snapshot
from controlplane.store import StoreUnavailable

FEED = "controlplane.feed"


class Flaky:
    """A source that answers ``snapshot`` until told to fail with ``error`` (or to hang)."""

    def __init__(self, snapshot: ClusterSnapshot) -> None:
        self.snapshot_value = snapshot
        self.error: Exception | None = None
        self.hang = False
        self.reads = 0

    async def snapshot(self) -> ClusterSnapshot:
        self.reads += 1
        if self.hang:
            await asyncio.sleep(3600)
        if self.error is not None:
            raise self.error
        return self.snapshot_value


def snap(taken_at: float) -> ClusterSnapshot:
    return ClusterSnapshot(taken_at=taken_at, nodes={"e": make_report("e")})


def feed_of(source: Flaky, **kwargs: object) -> SnapshotFeed:
    return SnapshotFeed(
        source,
        initial=ClusterSnapshot(taken_at=0.0),
        interval_s=0.01,
        **kwargs,  # type: ignore[arg-type]
    )


async def test_an_outage_keeps_the_last_good_snapshot_and_the_feed_recovers() -> None:
    source = Flaky(snap(1.0))
    errors: list[None] = []
    seen: list[ClusterSnapshot] = []
    clock = FakeClock(now=50.0)
    feed = feed_of(
        source, on_error=lambda: errors.append(None), on_snapshot=seen.append, clock=clock
    )
    assert feed.refreshed == 0 and feed.current.taken_at == 0.0

    assert await feed.refresh()
    good = feed.current
    source.error = StoreUnavailable("redis is down")
    clock.advance(5)
    assert not await feed.refresh()
    assert not await feed.refresh()

    assert feed.current is good and feed.failures == 2 and len(errors) == 2
    assert feed.last_refresh == 50.0
    source.error, source.snapshot_value = None, snap(2.0)
    assert await feed.refresh()
    assert (feed.current.taken_at, feed.failures, feed.last_refresh) == (2.0, 0, 55.0)
    assert [s.taken_at for s in seen] == [1.0, 2.0]


async def test_an_outage_is_logged_once_when_it_starts_and_once_when_it_ends(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=FEED)
    source = Flaky(snap(1.0))
    feed = feed_of(source, name="edge-1: snapshots")
    source.error = StoreUnavailable("connection refused")
    for _ in range(5):
        await feed.refresh()
    source.error = None
    await feed.refresh()
    await feed.refresh()

    messages = [r.getMessage() for r in caplog.records if r.name == FEED]
    assert len(messages) == 2
    assert messages[0].startswith("edge-1: snapshots: cannot read the control plane")
    assert "connection refused" in messages[0]
    assert "answers again (after 5 failed reads)" in messages[1]


async def test_any_failure_counts_a_hung_read_times_out_and_a_bug_is_logged_with_its_trace(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=FEED)
    source = Flaky(snap(1.0))
    feed = feed_of(source, timeout_s=0.05)
    source.hang = True
    assert not await feed.refresh()
    source.hang, source.error = False, ValueError("garbage")
    assert not await feed.refresh()
    assert feed.failures == 2 and feed.current.taken_at == 0.0 and feed.last_refresh is None

    source.error = None
    await feed.refresh()
    source.error = ValueError("garbage")
    await feed.refresh()
    [*_, bug] = [r for r in caplog.records if r.name == FEED]
    assert bug.exc_info is not None and "reading the control plane failed" in bug.getMessage()


async def test_start_reads_before_returning_then_polls_until_stopped() -> None:
    source = Flaky(snap(1.0))
    feed = feed_of(source)
    await feed.start()
    assert source.reads == 1 and feed.refreshed == 1
    for _ in range(200):  # bounded: 10 ms apart
        if feed.refreshed >= 3:
            break
        await asyncio.sleep(0.01)
    await feed.stop()
    reads = source.reads
    assert feed.refreshed >= 3
    await asyncio.sleep(0.05)
    assert source.reads == reads
    await feed.stop()  # twice is harmless


async def test_static_source_and_the_assumed_snapshot() -> None:
    static = StaticSource(snap(3.0))
    assert (await static.snapshot()).taken_at == 3.0
    node = {"region": "r", "listen": "127.0.2.1:80", "admin": "127.0.2.1:81"}
    origin = {"name": "o", "hostnames": ["www.cdn.test"], "url": "http://127.0.0.1:1"}
    config = load_config(
        {
            "cluster": "c",
            "control_plane": "memory",
            "secret_file": "k",
            "dns": {"zone": "cdn.test", "listen": "127.0.0.1:5353"},
            "origins": [origin],
            "nodes": [
                {"name": "s", "role": "shield", **node},
                {
                    **node,
                    "name": "e",
                    "role": "edge",
                    "listen": "127.0.1.1:80",
                    "admin": "127.0.1.1:81",
                },
            ],
        }
    )
    assumed = assumed_snapshot(config, now=7.0)
    assert assumed.taken_at == 7.0 and list(assumed.nodes) == ["s"]
    assert assumed.nodes["s"].role is Role.SHIELD and assumed.nodes["s"].heartbeat_at == 7.0
