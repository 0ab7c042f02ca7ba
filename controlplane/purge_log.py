"""Issuing purges and waiting for their acknowledgements: shared by ``cdn purge`` and the admin
API."""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from cdn_core.purge import PurgeKind, PurgeRule, make_rule
from controlplane.store import ControlStore, LogEntry


@dataclass(frozen=True, slots=True, kw_only=True)
class AckReport:
    """How a purge went: the live nodes when it was issued, which acked, how long it took."""

    purge_id: str
    live: frozenset[str]
    acked: frozenset[str]
    elapsed_ms: float

    @property
    def missing(self) -> frozenset[str]:
        return self.live - self.acked

    @property
    def complete(self) -> bool:
        return not self.missing


def new_rule(kind: PurgeKind | str, values: Sequence[str], *, soft: bool) -> PurgeRule:
    """A rule with a fresh unique id (raises PurgeError on bad input)."""
    return make_rule(kind, values, soft=soft, id=uuid.uuid4().hex)


async def issue_purge(store: ControlStore, rule: PurgeRule, *, maxlen: int) -> LogEntry:
    return await store.append_purge(rule, maxlen=maxlen, issued_at=time.time())


async def purge_and_wait(
    store: ControlStore, rule: PurgeRule, *, maxlen: int, timeout_s: float
) -> AckReport:
    """Append ``rule`` and wait until every node live at that moment acknowledged it."""
    started = time.monotonic()
    live = frozenset((await store.snapshot()).nodes)
    await issue_purge(store, rule, maxlen=maxlen)
    acked = await store.wait_acks(rule.id, live, timeout_s=timeout_s)
    return AckReport(
        purge_id=rule.id,
        live=live,
        acked=frozenset(acked) & live,
        elapsed_ms=(time.monotonic() - started) * 1000,
    )
