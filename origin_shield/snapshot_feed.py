"""The latest cluster snapshot, refreshed from the control plane in the background.

The path planner needs the live nodes and their latency estimates at every miss, without a
round trip to Redis: :class:`SnapshotFeed` polls :meth:`ControlStore.snapshot` every interval and
keeps the last good one, so the data plane keeps routing on the last known state while the
control plane is unreachable. Before the first snapshot arrives every configured shield is
assumed live (unmeasured), so a fresh edge tries shields first and fails over from there.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Protocol

from cdn_core.config import Config, Role
from cdn_core.registry import ClusterSnapshot, NodeReport
from controlplane.cancellation import cancel_and_wait, raise_if_cancelling
from controlplane.store import StoreUnavailable

log = logging.getLogger(__name__)


class SnapshotSource(Protocol):
    async def snapshot(self) -> ClusterSnapshot: ...


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
    """Holds :attr:`current`; :meth:`start` refreshes it every ``interval_s``."""

    def __init__(self, source: SnapshotSource, config: Config, *, interval_s: float) -> None:
        self._source = source
        self._interval_s = interval_s
        self.current = assumed_snapshot(config, now=time.time())
        self.refreshed = 0
        self._task: asyncio.Task[None] | None = None

    async def refresh(self) -> bool:
        """Fetch one snapshot; keep the previous one when the control plane fails."""
        try:
            self.current = await self._source.snapshot()
        except StoreUnavailable as exc:
            raise_if_cancelling()
            log.warning("control plane unreachable, routing on the last snapshot: %s", exc)
            return False
        self.refreshed += 1
        return True

    async def start(self) -> None:
        if self._task is None:
            await self.refresh()
            self._task = asyncio.create_task(self._run(), name="snapshot-feed")

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            await self.refresh()
            raise_if_cancelling()
