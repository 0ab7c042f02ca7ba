"""Where the router reads the cluster's live state from."""

from __future__ import annotations

import time
from typing import Protocol

from cdn_core.registry import ClusterSnapshot


class SnapshotSource(Protocol):
    """Anything that returns the current :class:`ClusterSnapshot` (the control-plane store)."""

    async def snapshot(self) -> ClusterSnapshot: ...


class StaticSource:
    """A snapshot held in memory and replaced by hand (no control plane)."""

    def __init__(self, snapshot: ClusterSnapshot | None = None) -> None:
        self.current = snapshot or ClusterSnapshot(taken_at=time.time())

    async def snapshot(self) -> ClusterSnapshot:
        return self.current
