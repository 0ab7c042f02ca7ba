"""ControlStore contract, purge-log half: log order, blocking reads, trimming, acks, positions."""

from __future__ import annotations

import asyncio

from cdn_core.purge import PurgeKind, make_rule
from controlplane.store import LOG_START, position_key

from .conftest import StoreUnderTest


def rule(n: int, *, soft: bool = False):
    return make_rule(PurgeKind.TAG, [f"tag-{n}"], soft=soft, id=f"p{n}")


async def test_appended_purges_read_back_in_order(subject: StoreUnderTest) -> None:
    store = subject.store
    first = await store.append_purge(rule(1), maxlen=1000, issued_at=1.0)
    second = await store.append_purge(rule(2, soft=True), maxlen=1000, issued_at=2.0)

    entries = await store.read_purges(LOG_START)

    assert [e.rule for e in entries] == [rule(1), rule(2, soft=True)]
    assert [e.position for e in entries] == [first.position, second.position]
    assert position_key(first.position) < position_key(second.position)
    assert await store.read_purges(first.position) == entries[1:]
    assert await store.read_purges(second.position) == []


async def test_blocking_read_wakes_on_append(subject: StoreUnderTest) -> None:
    store = subject.store
    reader = asyncio.create_task(store.read_purges(LOG_START, block_s=10.0))
    await asyncio.sleep(0.05)

    await store.append_purge(rule(1), maxlen=1000, issued_at=1.0)
    entries = await asyncio.wait_for(reader, 10)

    assert [e.rule.id for e in entries if e.rule] == ["p1"]


async def test_blocking_read_returns_empty_after_its_wait(subject: StoreUnderTest) -> None:
    assert await subject.store.read_purges(LOG_START, block_s=0.05) == []


async def test_trimming_is_detected_for_readers_left_behind(subject: StoreUnderTest) -> None:
    store = subject.store
    first = await store.append_purge(rule(0), maxlen=100, issued_at=0.0)
    assert not await store.trimmed_past(LOG_START)

    for n in range(1, 400):  # approximate trimming (MAXLEN ~) removes whole stream nodes
        await store.append_purge(rule(n), maxlen=100, issued_at=float(n))
    entries = await store.read_purges(LOG_START, count=1000)

    assert await store.trimmed_past(LOG_START)
    assert await store.trimmed_past(first.position)
    assert not await store.trimmed_past(entries[-1].position)
    assert len(entries) < 400


async def test_acks_and_positions(subject: StoreUnderTest) -> None:
    store = subject.store
    entry = await store.append_purge(rule(1), maxlen=1000, issued_at=1.0)

    await store.ack("edge-1", ["p1"], position=f"e/{entry.position}")
    await store.ack("edge-2", [], position="e/0-0")

    assert set(await store.acks("p1")) == {"edge-1"}
    assert await store.acks("unknown") == {}
    assert await store.load_position("edge-1") == f"e/{entry.position}"
    assert await store.load_position("edge-2") == "e/0-0"
    assert await store.load_position("edge-3") is None


async def test_wait_acks_returns_once_every_node_acked(subject: StoreUnderTest) -> None:
    store = subject.store
    await store.ack("shield-1", ["p1"], position="e/1-0")
    waiter = asyncio.create_task(
        store.wait_acks("p1", {"shield-1", "edge-1", "edge-2"}, timeout_s=10.0)
    )
    await asyncio.sleep(0.05)

    await store.ack("edge-1", ["p0", "p1"], position="e/1-0")
    await store.ack("edge-2", ["p1"], position="e/1-0")
    acked = await asyncio.wait_for(waiter, 10)

    assert set(acked) == {"shield-1", "edge-1", "edge-2"}


async def test_wait_acks_times_out_with_what_it_has(subject: StoreUnderTest) -> None:
    store = subject.store
    await store.ack("edge-1", ["p1"], position="e/1-0")

    acked = await store.wait_acks("p1", {"edge-1", "edge-2"}, timeout_s=0.1)

    assert set(acked) == {"edge-1"}


async def test_epoch_is_stable(subject: StoreUnderTest) -> None:
    assert await subject.store.epoch() == await subject.store.epoch()
