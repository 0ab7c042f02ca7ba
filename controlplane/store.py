"""The control-plane port: what nodes, the CLI and the router need from the shared store.

Two implementations share one behaviour (and one contract test suite):
:class:`~controlplane.redis_store.RedisControlStore` for real clusters and
:class:`~controlplane.memory_store.MemoryControlStore` for single-process use (and the lab when
no Redis server is available). This module knows neither: composition roots open one with
:func:`controlplane.connect.connect` and hand it to whoever needs it.

Purge log positions are Redis stream entry ids (``"<ms>-<seq>"``); ``"0-0"`` is "before the
first entry". Every failure to reach the store surfaces as :class:`StoreUnavailable`.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Protocol

from cdn_core.errors import CdnError
from cdn_core.purge import PurgeRule
from cdn_core.registry import ClusterSnapshot, NodeReport

LOG_START = "0-0"


class StoreUnavailable(CdnError):
    """The control-plane store cannot be reached (or answered garbage)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class LogEntry:
    """One purge of the log, at ``position``, issued at ``issued_at`` (wall clock).

    ``rule`` is None for an entry that cannot be parsed: a reader cannot tell what it removed,
    so it drops its whole cache (it cannot prove anything fresh).
    """

    position: str
    rule: PurgeRule | None
    issued_at: float


class ControlStore(Protocol):
    """The shared state of one cluster: registry, purge log, acknowledgements, positions."""

    @property
    def cluster(self) -> str: ...

    async def publish_report(self, report: NodeReport, ttl_s: float) -> None:
        """Register (or refresh) ``report.node``; it is down once ``ttl_s`` pass without one."""
        ...

    async def remove_report(self, node: str) -> None:
        """Deregister ``node`` at once (a clean shutdown)."""
        ...

    async def snapshot(self) -> ClusterSnapshot:
        """The live nodes (whose registration has not expired) and their latest reports."""
        ...

    async def epoch(self) -> str:
        """The id of this store's purge log; a new id means the log (and positions) were lost."""
        ...

    async def append_purge(self, rule: PurgeRule, *, maxlen: int, issued_at: float) -> LogEntry:
        """Append ``rule`` to the purge log, trimming it to about ``maxlen`` entries."""
        ...

    async def read_purges(
        self, after: str, *, count: int = 500, block_s: float | None = None
    ) -> list[LogEntry]:
        """Up to ``count`` entries after ``after``; with ``block_s``, wait that long for one."""
        ...

    async def trimmed_past(self, after: str) -> bool:
        """Whether entries after ``after`` were trimmed away (so a reader missed some)."""
        ...

    async def ack(self, node: str, purge_ids: Sequence[str], *, position: str) -> None:
        """Record that ``node`` applied ``purge_ids`` and persist its log ``position``."""
        ...

    async def acks(self, purge_id: str) -> dict[str, float]:
        """Which nodes acknowledged ``purge_id``, and when (wall clock)."""
        ...

    async def wait_acks(
        self, purge_id: str, nodes: Collection[str], *, timeout_s: float
    ) -> dict[str, float]:
        """Wait until every one of ``nodes`` acked ``purge_id`` or ``timeout_s`` passed."""
        ...

    async def load_position(self, node: str) -> str | None:
        """The position ``node`` last persisted with :meth:`ack`, if any."""
        ...

    async def close(self) -> None: ...


def position_key(position: str) -> tuple[int, int]:
    """A stream entry id as a sortable pair; raises ValueError on a malformed one."""
    ms, _, seq = position.partition("-")
    return int(ms), int(seq or 0)
