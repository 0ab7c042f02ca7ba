"""The control-plane agent inside every node: heartbeat, prober, purge-log follower.

Theory of operation.

- **Heartbeat.** Every ``heartbeat_interval_s`` the agent publishes a :class:`NodeReport`
  (identity, the data plane's :class:`NodeStats`, the prober's estimates) with a TTL of
  ``node_ttl_s``; a node that stops heartbeating is down for every reader once the TTL lapses.
- **Purge follower.** On start (and after every control-plane outage) the agent *catches up*:
  it loads its log position (the later of its state file and its Redis copy), drops the whole
  cache if the log it followed was lost (new epoch) or trimmed past its position, then applies
  every entry after its position. Only then is :attr:`NodeAgent.ready_to_serve_from_cache`
  True; until then the edge bypasses its cache. Afterwards it blocks on the log and applies new
  entries at once: apply, persist the position, acknowledge. Every one of these choices (and
  the ordering below) is a pure decision of :mod:`cdn_core.purge_follow`; the agent does the
  I/O and executes them.
- **Ordering.** Shields apply a purge no later than edges: before applying a batch, an edge
  waits (at most ``shield_ack_wait_s``) until every live shield acknowledged its last entry.
  Shields apply in log order, so that ack covers the whole batch. A shield that is not live is
  not waited for: when it comes back it catches up before it serves from cache.
- **Outages.** Control-plane errors are logged and retried with backoff; they never reach the
  data plane, which keeps serving (readiness, once reached, is kept).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Callable, Mapping
from typing import assert_never

from cdn_core.config import Config
from cdn_core.purge import PurgeTarget
from cdn_core.purge_follow import (
    Apply,
    CaughtUp,
    DropReason,
    Follower,
    Idle,
    LogPosition,
    ReadDecision,
    decide_catch_up,
    decide_read,
    decide_shield_wait,
    later,
    resume_position,
)
from cdn_core.registry import NodeReport, NodeStats, PeerEstimate
from controlplane.cancellation import cancel_and_wait, raise_if_cancelling
from controlplane.position import PositionFile
from controlplane.prober import Prober
from controlplane.store import ControlStore, LogEntry, StoreUnavailable

log = logging.getLogger(__name__)

READ_BATCH = 500
READ_BLOCK_S = 1.0
MIN_BACKOFF_S = 0.05
MAX_BACKOFF_S = 2.0

_DROP_WHY = {
    DropReason.LOG_LOST: "the purge log was lost",
    DropReason.LOG_TRIMMED: "the purge log was trimmed past us",
}


def config_version(config: Config) -> str:
    """A short fingerprint of the configuration, so that readers can spot mixed versions."""
    return hashlib.sha256(repr(config).encode()).hexdigest()[:12]


class NodeAgent:
    """Connects one node to the control plane (see the module docstring)."""

    def __init__(
        self,
        config: Config,
        node_name: str,
        store: ControlStore,
        target: PurgeTarget,
        stats: Callable[[], NodeStats],
        *,
        state_dir: str | None = None,
        prober: Prober | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.node = config.node(node_name)
        self.store = store
        self._target = target
        self._stats = stats
        self._clock = clock
        self.prober = prober or Prober.for_node(config, node_name)
        state_dir = state_dir or config.controlplane.state_dir
        self._file = PositionFile(state_dir, config.cluster, node_name) if state_dir else None
        self._version = config_version(config)
        self._started_at = clock()
        self._follower = Follower(
            role=self.node.role, shield_ack_wait_s=config.controlplane.shield_ack_wait_s
        )
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def ready_to_serve_from_cache(self) -> bool:
        """False until the agent applied every purge it missed (the edge bypasses its cache)."""
        return self._follower.ready

    @property
    def position(self) -> LogPosition | None:
        return self._follower.position

    def estimates(self) -> Mapping[str, PeerEstimate]:
        return self.prober.estimates()

    async def start(self) -> None:
        if self._tasks:
            return
        await self.prober.start()
        self._tasks = [
            asyncio.create_task(self._heartbeat_loop(), name=f"heartbeat:{self.node.name}"),
            asyncio.create_task(self._follow_loop(), name=f"purge-follower:{self.node.name}"),
        ]

    async def stop(self) -> None:
        tasks, self._tasks = self._tasks, []
        await cancel_and_wait(*tasks)
        await self.prober.stop()
        if tasks:
            with contextlib.suppress(StoreUnavailable, TimeoutError):
                async with asyncio.timeout(1.0):
                    await self.store.remove_report(self.node.name)

    # -- heartbeat -----------------------------------------------------------------------------

    def report(self) -> NodeReport:
        try:
            stats = self._stats()
        except Exception:  # the data plane's figures must never stop the heartbeat
            log.exception("node stats failed; reporting zeros")
            stats = NodeStats()
        node = self.node
        return NodeReport(
            node=node.name,
            role=node.role,
            region=node.region,
            listen=str(node.listen),
            admin=str(node.admin),
            public_address=node.public_address,
            config_version=self._version,
            started_at=self._started_at,
            heartbeat_at=self._clock(),
            cache_objects=stats.cache_objects,
            cache_bytes=stats.cache_bytes,
            load_rps=stats.load_rps,
            capacity_rps=node.capacity_rps,
            estimates=dict(self.prober.estimates()),
            routes=dict(stats.routes),
        )

    async def _heartbeat_loop(self) -> None:
        cp = self.config.controlplane
        while True:
            try:
                await self.store.publish_report(self.report(), ttl_s=cp.node_ttl_s)
            except StoreUnavailable as exc:
                raise_if_cancelling()
                log.warning("%s: heartbeat failed: %s", self.node.name, exc)
            raise_if_cancelling()
            await asyncio.sleep(cp.heartbeat_interval_s)

    # -- purge follower (the decisions are cdn_core.purge_follow's) -----------------------------

    async def _follow_loop(self) -> None:
        backoff_s = MIN_BACKOFF_S
        while True:
            try:
                if not self._follower.synced:
                    await self._catch_up()
                await self._read(block_s=READ_BLOCK_S)
                backoff_s = MIN_BACKOFF_S
                raise_if_cancelling()
            except StoreUnavailable as exc:
                raise_if_cancelling()
                self._follower = self._follower.interrupted()
                log.warning("%s: purge log unavailable (retrying): %s", self.node.name, exc)
                await asyncio.sleep(backoff_s)
                backoff_s = min(backoff_s * 2, MAX_BACKOFF_S)
            except Exception:  # never let the follower die: a dead follower misses purges
                raise_if_cancelling()
                self._follower = self._follower.interrupted()
                log.exception("%s: purge follower failed (retrying)", self.node.name)
                await asyncio.sleep(backoff_s)
                backoff_s = min(backoff_s * 2, MAX_BACKOFF_S)

    async def _catch_up(self) -> None:
        epoch = await self.store.epoch()
        saved = await self._saved_position(epoch)
        trimmed = await self.store.trimmed_past(resume_position(saved, epoch=epoch).entry)
        plan = decide_catch_up(saved, epoch=epoch, trimmed=trimmed)
        for reason in plan.drop:
            log.warning("%s: %s; dropping the cache", self.node.name, _DROP_WHY[reason])
        if plan.drop:
            self._target.drop_all()
        self._follower = self._follower.at(plan.start)
        for _ in range(1_000_000):  # bounded: the log holds at most purge_log_maxlen entries
            if isinstance(await self._read(), CaughtUp):
                break

    async def _saved_position(self, epoch: str) -> LogPosition | None:
        in_store = LogPosition.parse(await self.store.load_position(self.node.name))
        in_file = self._file.load() if self._file else None
        return later(in_store, in_file, epoch=epoch)

    async def _read(self, *, block_s: float | None = None) -> ReadDecision[LogEntry]:
        position = self._follower.position
        assert position is not None  # set by _catch_up, which runs first
        entries = await self.store.read_purges(position.entry, count=READ_BATCH, block_s=block_s)
        decision = decide_read(self._follower, entries)
        match decision:
            case Apply():
                await self._apply(decision)
            case CaughtUp():
                self._follower = self._follower.caught_up()
            case Idle():
                pass
            case unreachable:
                assert_never(unreachable)
        return decision

    async def _apply(self, batch: Apply[LogEntry]) -> None:
        if batch.wait_for is not None:
            await self._wait_for_shields(batch.wait_for)
        now = self._clock()
        for entry in batch.entries:
            self._apply_one(entry, now=now)
        if self._file:
            self._file.save(batch.position)
        await self.store.ack(self.node.name, batch.purge_ids, position=str(batch.position))
        self._follower = self._follower.at(batch.position)

    def _apply_one(self, entry: LogEntry, *, now: float) -> None:
        try:
            if entry.rule is None:
                self._target.drop_all()
            else:
                self._target.purge(entry.rule, now=now)
        except Exception:  # a cache that cannot apply a purge must not keep the object
            log.exception("%s: applying %s failed; dropping the cache", self.node.name, entry)
            self._target.drop_all()

    async def _wait_for_shields(self, purge_id: str) -> None:
        snapshot = await self.store.snapshot()
        wait = decide_shield_wait(purge_id, snapshot, timeout_s=self._follower.shield_ack_wait_s)
        if wait is None:
            return
        acked = await self.store.wait_acks(wait.purge_id, wait.shields, timeout_s=wait.timeout_s)
        if missing := wait.shields - acked.keys():
            log.warning("%s: shields %s did not ack %s in time", self.node.name, missing, purge_id)
