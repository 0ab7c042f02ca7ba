"""The control-plane store in this process's memory: same behaviour as the Redis one.

For single-process use (an overlay run inside one process, the lab without a Redis server).
Nothing survives the process. Blocking reads wait on futures that every change wakes, so purge
delivery is as immediate as with Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field

from cdn_core.purge import PurgeRule
from cdn_core.registry import ClusterSnapshot, NodeReport
from controlplane.store import LOG_START, LogEntry, position_key

_SHARED: dict[str, MemoryControlStore] = {}


def shared_memory_store(cluster: str) -> MemoryControlStore:
    """The one in-memory store of ``cluster`` in this process."""
    store = _SHARED.get(cluster)
    if store is None:
        store = _SHARED[cluster] = MemoryControlStore(cluster)
    return store


@dataclass(slots=True)
class _Registration:
    report: NodeReport
    expires_at: float


@dataclass(slots=True)
class _State:
    registrations: dict[str, _Registration] = field(default_factory=dict)
    log: list[LogEntry] = field(default_factory=list)
    next_id: int = 1
    max_deleted: str = LOG_START
    acks: dict[str, dict[str, float]] = field(default_factory=dict)
    positions: dict[str, str] = field(default_factory=dict)


class MemoryControlStore:
    """:class:`~controlplane.store.ControlStore` in memory; ``clock`` measures TTLs."""

    def __init__(self, cluster: str, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._cluster = cluster
        self._clock = clock
        self._state = _State()
        self._epoch = uuid.uuid4().hex
        self._waiters: list[asyncio.Future[None]] = []

    @property
    def cluster(self) -> str:
        return self._cluster

    async def close(self) -> None:
        return None

    def _changed(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def _wait_change(self, timeout_s: float) -> None:
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):  # not wait_for: it can lose a cancellation
                await waiter

    # -- registry ------------------------------------------------------------------------------

    async def publish_report(self, report: NodeReport, ttl_s: float) -> None:
        expires_at = self._clock() + ttl_s
        self._state.registrations[report.node] = _Registration(report, expires_at)

    async def remove_report(self, node: str) -> None:
        self._state.registrations.pop(node, None)

    async def snapshot(self) -> ClusterSnapshot:
        now = self._clock()
        live = {
            name: reg.report
            for name, reg in sorted(self._state.registrations.items())
            if reg.expires_at > now
        }
        return ClusterSnapshot(taken_at=time.time(), nodes=live)

    # -- purge log -----------------------------------------------------------------------------

    async def epoch(self) -> str:
        return self._epoch

    async def append_purge(self, rule: PurgeRule, *, maxlen: int, issued_at: float) -> LogEntry:
        state = self._state
        entry = LogEntry(position=f"{state.next_id}-0", rule=rule, issued_at=issued_at)
        state.next_id += 1
        state.log.append(entry)
        if len(state.log) > maxlen:
            trimmed = state.log[: len(state.log) - maxlen]
            del state.log[: len(trimmed)]
            state.max_deleted = trimmed[-1].position
        self._changed()
        return entry

    async def read_purges(
        self, after: str, *, count: int = 500, block_s: float | None = None
    ) -> list[LogEntry]:
        entries = self._after(after, count)
        if not entries and block_s is not None:
            await self._wait_change(block_s)
            entries = self._after(after, count)
        return entries

    def _after(self, after: str, count: int) -> list[LogEntry]:
        key = position_key(after)
        return [e for e in self._state.log if position_key(e.position) > key][:count]

    async def trimmed_past(self, after: str) -> bool:
        return position_key(self._state.max_deleted) > position_key(after)

    # -- acknowledgements ----------------------------------------------------------------------

    async def ack(self, node: str, purge_ids: Sequence[str], *, position: str) -> None:
        now = time.time()
        for purge_id in purge_ids:
            self._state.acks.setdefault(purge_id, {})[node] = now
        self._state.positions[node] = position
        self._changed()

    async def acks(self, purge_id: str) -> dict[str, float]:
        return dict(self._state.acks.get(purge_id, {}))

    async def wait_acks(
        self, purge_id: str, nodes: Collection[str], *, timeout_s: float
    ) -> dict[str, float]:
        deadline = time.monotonic() + timeout_s
        acked = await self.acks(purge_id)
        while not set(nodes) <= acked.keys():
            left_s = deadline - time.monotonic()
            if left_s <= 0:
                break
            await self._wait_change(left_s)
            acked = await self.acks(purge_id)
        return acked

    async def load_position(self, node: str) -> str | None:
        return self._state.positions.get(node)
