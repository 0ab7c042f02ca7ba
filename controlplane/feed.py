"""The latest cluster snapshot, refreshed from the control plane in the background.

Whoever decides per request routes on a snapshot without a round trip to Redis: an edge's path
planner at every miss, the DNS router when it builds its routing table. :class:`SnapshotFeed`
reads :meth:`SnapshotSource.snapshot` every ``interval_s`` (each read bounded by
``timeout_s``) and keeps :attr:`SnapshotFeed.current`, the last good snapshot; ``on_snapshot``
hears each one as it arrives. When the control plane cannot be read, ``current`` stays what it
was, so the data plane keeps routing on the last known state: the outage is logged once when it
starts and once when it ends, and every failed read is counted (``on_error``). Liveness keeps
its meaning meanwhile: a node is in a snapshot only while its registration lives (``node_ttl``).

Before the first read ``current`` is ``initial``: for nodes :func:`assumed_snapshot` (every
configured shield live and unmeasured, so a fresh edge tries shields first and fails over from
there), for the router an empty snapshot.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Protocol

from cdn_core.config import Config, Role
from cdn_core.registry import ClusterSnapshot, NodeReport
from controlplane.cancellation import cancel_and_wait, raise_if_cancelling
from controlplane.store import StoreUnavailable

log = logging.getLogger(__name__)

READ_TIMEOUT_S = 2.0


class SnapshotSource(Protocol):
    """Anything that returns the current :class:`ClusterSnapshot` (the control-plane store)."""

    async def snapshot(self) -> ClusterSnapshot: ...


class StaticSource:
    """A snapshot held in memory and replaced by hand (no control plane)."""

    def __init__(self, snapshot: ClusterSnapshot | None = None) -> None:
        self.current = snapshot or ClusterSnapshot(taken_at=time.time())

    async def snapshot(self) -> ClusterSnapshot:
        return self.current


def assumed_snapshot(config: Config, *, now: float) -> ClusterSnapshot:
    """Every configured shield, live and unmeasured: the plan before the control plane answers."""
    reports = {
        node.name: NodeReport(
            node=node.name,
            role=node.role,
            region=node.region,
            listen=str(node.listen),
            admin=str(node.admin),
            public_address=node.public_address,
            config_version="",
            started_at=now,
            heartbeat_at=now,
        )
        for node in config.nodes_with_role(Role.SHIELD)
    }
    return ClusterSnapshot(taken_at=now, nodes=reports)


class SnapshotFeed:
    """Holds :attr:`current`; :meth:`start` reads it once, then every ``interval_s``."""

    def __init__(
        self,
        source: SnapshotSource,
        *,
        initial: ClusterSnapshot,
        interval_s: float,
        timeout_s: float = READ_TIMEOUT_S,
        on_snapshot: Callable[[ClusterSnapshot], None] | None = None,
        on_error: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        name: str = "snapshot-feed",
    ) -> None:
        self.current = initial
        self.refreshed = 0
        self.failures = 0  # failed reads since the last good one (0: the control plane answers)
        self.last_refresh: float | None = None  # ``clock()`` at the last good read
        self._source = source
        self._interval_s = interval_s
        self._timeout_s = timeout_s
        self._on_snapshot = on_snapshot
        self._on_error = on_error
        self._clock = clock
        self._name = name
        self._task: asyncio.Task[None] | None = None

    async def refresh(self) -> bool:
        """Read one snapshot; on any failure keep the previous one and return False."""
        try:
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation that
            # races with completion, and then stop() would wait for this read forever.
            async with asyncio.timeout(self._timeout_s):
                snapshot = await self._source.snapshot()
        except Exception as exc:  # any store failure: keep routing on the last snapshot
            raise_if_cancelling()
            self._failed(exc)
            return False
        if self.failures:
            log.info(
                "%s: the control plane answers again (after %d failed reads)",
                self._name,
                self.failures,
            )
            self.failures = 0
        self.current = snapshot
        self.refreshed += 1
        self.last_refresh = self._clock()
        if self._on_snapshot is not None:
            self._on_snapshot(snapshot)
        return True

    def _failed(self, exc: Exception) -> None:
        self.failures += 1
        if self._on_error is not None:
            self._on_error()
        if self.failures > 1:
            return  # logged when the outage began
        if isinstance(exc, StoreUnavailable | TimeoutError):
            log.warning(
                "%s: cannot read the control plane, routing on the last snapshot: %s",
                self._name,
                str(exc) or type(exc).__name__,
            )
        else:
            log.exception(
                "%s: reading the control plane failed; routing on the last snapshot", self._name
            )

    async def start(self) -> None:
        if self._task is None:
            await self.refresh()
            self._task = asyncio.create_task(self._run(), name=self._name)

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            await self.refresh()
            raise_if_cancelling()
