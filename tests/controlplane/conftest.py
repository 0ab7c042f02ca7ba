"""Fixtures of the control-plane tests: both store implementations behind one parameter."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest

from cdn_core.config import Role
from cdn_core.registry import NodeReport, PeerEstimate
from controlplane.memory_store import MemoryControlStore
from controlplane.redis_store import RedisControlStore
from controlplane.store import ControlStore


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class StoreUnderTest:
    store: ControlStore
    kind: str
    # Lets ``ttl_s`` pass: advances the fake clock (memory) or waits for Redis to expire keys.
    let_pass: Callable[[float], Awaitable[None]]


@pytest.fixture(params=["redis", "memory"])
async def subject(request, redis_url: str, cluster_name: str) -> AsyncIterator[StoreUnderTest]:
    if request.param == "memory":
        clock = FakeClock()

        async def advance(seconds: float) -> None:
            clock.now += seconds

        yield StoreUnderTest(MemoryControlStore(cluster_name, clock=clock), "memory", advance)
        return
    store = RedisControlStore.from_url(redis_url, cluster_name)

    async def wait(seconds: float) -> None:
        await asyncio.sleep(seconds)

    try:
        yield StoreUnderTest(store, "redis", wait)
    finally:
        await store.close()


def make_report(name: str, *, role: Role = Role.EDGE, **extra: object) -> NodeReport:
    now = time.time()
    fields: dict[str, object] = {
        "node": name,
        "role": role,
        "region": "eu",
        "listen": "127.0.1.1:8080",
        "admin": "127.0.1.1:9080",
        "public_address": "127.0.1.1",
        "config_version": "v1",
        "started_at": now,
        "heartbeat_at": now,
        "estimates": {
            "node:shield-1": PeerEstimate(rtt_ms=1.5, rttvar_ms=0.5, loss=0.0, up=True, samples=3)
        },
    }
    fields.update(extra)
    return NodeReport(**fields)  # type: ignore[arg-type]
