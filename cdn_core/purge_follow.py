"""The purge-log follower's decisions: where to start, when to drop everything, what to apply.

Theory of operation. Every node follows the cluster's purge log (``controlplane.agent`` does
the I/O and executes these decisions; nothing here reads a clock or talks to the store).

- **Positions.** A :class:`LogPosition` is ``(epoch, entry id)``: the entry id (a Redis stream
  id, ``"<ms>-<seq>"``, :data:`LOG_START` before the first entry) means something only in the
  log of that epoch. A node keeps its position twice (control plane and state file);
  :func:`later` picks the one to resume from.
- **Catching up** (on start and after every control-plane outage): :func:`resume_position`
  says where reading starts, the agent asks the store whether entries after it were trimmed,
  and :func:`decide_catch_up` answers :class:`CatchUp`: the start, and why the whole cache
  must be dropped first (:class:`DropReason`): the log followed was lost (a new epoch) or
  trimmed past the position, so purges were missed that can no longer be read.
- **Reading.** :func:`decide_read` turns what a read returned into :class:`Apply` (entries
  to apply, the position to persist and the purge ids to acknowledge), :class:`CaughtUp` (an
  empty read while catching up: the node may serve from cache) or :class:`Idle` (nothing new).
- **Ordering.** Shields apply a purge no later than edges: an edge's :class:`Apply` names the
  batch's last purge in ``wait_for``; :func:`decide_shield_wait` picks the live shields that
  must acknowledge it (at most ``shield_ack_wait_s``). Shields apply in log order, so that ack
  covers the whole batch; a shield that is not live catches up before it serves from cache.
- **Outages.** :meth:`Follower.interrupted` makes the next read a catch-up again; readiness,
  once reached, is kept (the data plane keeps serving while the control plane is away).
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from cdn_core.config import Role
from cdn_core.purge import PurgeRule
from cdn_core.registry import ClusterSnapshot

LOG_START = "0-0"


def entry_order(entry: str) -> tuple[int, int]:
    """A stream entry id (``"<ms>-<seq>"``) as a sortable pair.

    Raises:
        ValueError: the id is malformed.
    """
    ms, _, seq = entry.partition("-")
    return int(ms), int(seq or 0)


@dataclass(frozen=True, slots=True)
class LogPosition:
    """Where a node is in the purge log: ``entry`` of the log of ``epoch``."""

    epoch: str
    entry: str

    def __str__(self) -> str:
        return f"{self.epoch}/{self.entry}"

    @classmethod
    def parse(cls, text: str | None) -> LogPosition | None:
        """A position from its ``"epoch/entry-id"`` form; None when absent or malformed."""
        if not text:
            return None
        epoch, sep, entry = text.partition("/")
        try:
            entry_order(entry)
        except ValueError:
            return None
        return cls(epoch, entry) if sep and epoch else None


def later(a: LogPosition | None, b: LogPosition | None, *, epoch: str) -> LogPosition | None:
    """The later of two saved positions, preferring one in the current ``epoch``.

    Args:
        a: one saved copy (or None).
        b: the other saved copy (or None).
        epoch: the epoch of the log the store holds now.

    Returns:
        The position to resume from, None when neither copy exists.
    """
    candidates = [p for p in (a, b) if p is not None]
    current = [p for p in candidates if p.epoch == epoch]
    pool = current or candidates
    return max(pool, key=lambda p: entry_order(p.entry), default=None)


class LogRecord(Protocol):
    """What the decisions read of one log entry: its id, and its rule (None: unparseable)."""

    @property
    def position(self) -> str: ...

    @property
    def rule(self) -> PurgeRule | None: ...


E = TypeVar("E", bound=LogRecord)


@dataclass(frozen=True, slots=True, kw_only=True)
class Follower:
    """The follower's state: who it is, where it is in the log, whether it caught up.

    ``position`` is None before the first catch-up; ``synced`` is False until a catch-up
    finished since the last start or outage; ``ready`` (serve from cache) is True from the
    first finished catch-up on and survives outages.
    """

    role: Role
    shield_ack_wait_s: float
    position: LogPosition | None = None
    synced: bool = False
    ready: bool = False

    def at(self, position: LogPosition) -> Follower:
        return dataclasses.replace(self, position=position)

    def caught_up(self) -> Follower:
        return dataclasses.replace(self, synced=True, ready=True)

    def interrupted(self) -> Follower:
        return dataclasses.replace(self, synced=False)


class DropReason(enum.Enum):
    """Why a catch-up drops the whole cache: purges were missed that cannot be read back."""

    LOG_LOST = "log-lost"  # the saved position is in another epoch: that log is gone
    LOG_TRIMMED = "log-trimmed"  # entries after the position were trimmed before being read


@dataclass(frozen=True, slots=True, kw_only=True)
class CatchUp:
    """Drop the whole cache if ``drop`` names a reason, then read the log after ``start``."""

    start: LogPosition
    drop: tuple[DropReason, ...] = ()


def resume_position(saved: LogPosition | None, *, epoch: str) -> LogPosition:
    """Where a catch-up reads from: ``saved`` if it is in the current log, else its start.

    Args:
        saved: the position the node saved (see :func:`later`), None if it has none.
        epoch: the epoch of the log the store holds now.

    Returns:
        The position to read after (and to ask the store about trimming).
    """
    if saved is not None and saved.epoch == epoch:
        return saved
    return LogPosition(epoch, LOG_START)


def decide_catch_up(saved: LogPosition | None, *, epoch: str, trimmed: bool) -> CatchUp:
    """Where a catch-up starts, and whether the cache must be dropped first.

    Args:
        saved: the position the node saved, None if it has none (a new node).
        epoch: the epoch of the log the store holds now.
        trimmed: whether the store trimmed entries after :func:`resume_position`.

    Returns:
        The :class:`CatchUp` to execute.
    """
    drop: list[DropReason] = []
    if saved is not None and saved.epoch != epoch:
        drop.append(DropReason.LOG_LOST)
    if trimmed:
        drop.append(DropReason.LOG_TRIMMED)
    return CatchUp(start=resume_position(saved, epoch=epoch), drop=tuple(drop))


@dataclass(frozen=True, slots=True, kw_only=True)
class Apply(Generic[E]):
    """Apply ``entries`` in order, then persist ``position`` and acknowledge ``purge_ids``.

    An entry without a rule (unparseable) drops the whole cache: nothing it removed can be
    told apart. When ``wait_for`` names a purge (edges only), first wait until the live shields
    acknowledged it (:func:`decide_shield_wait`).
    """

    entries: tuple[E, ...]
    position: LogPosition
    purge_ids: tuple[str, ...]
    wait_for: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CaughtUp:
    """A catch-up read nothing more: the follower is synced and may serve from cache."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Idle:
    """A read while synced returned nothing new."""


ReadDecision = Apply[E] | CaughtUp | Idle


def decide_read(follower: Follower, entries: Sequence[E]) -> ReadDecision[E]:
    """What to do with the entries a read after ``follower.position`` returned.

    Args:
        follower: the follower's state; its position must be set (a catch-up started).
        entries: the entries the store returned, in log order (possibly none).

    Returns:
        :class:`Apply` for entries; otherwise :class:`CaughtUp` while catching up, else
        :class:`Idle`.
    """
    if follower.position is None:
        raise ValueError("a read needs a position: catch up first")
    if not entries:
        return Idle() if follower.synced else CaughtUp()
    rules = [e.rule for e in entries if e.rule is not None]
    waits = follower.role is Role.EDGE and follower.shield_ack_wait_s > 0 and bool(rules)
    return Apply(
        entries=tuple(entries),
        position=LogPosition(follower.position.epoch, entries[-1].position),
        purge_ids=tuple(r.id for r in rules),
        wait_for=rules[-1].id if waits else None,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class WaitForShields:
    """Wait until every one of ``shields`` acknowledged ``purge_id``, at most ``timeout_s``."""

    purge_id: str
    shields: frozenset[str]
    timeout_s: float


def decide_shield_wait(
    purge_id: str, snapshot: ClusterSnapshot, *, timeout_s: float
) -> WaitForShields | None:
    """Which shields an edge waits for before applying a batch ending with ``purge_id``.

    Args:
        purge_id: the id of the batch's last purge (:attr:`Apply.wait_for`).
        snapshot: the live nodes: only live shields are waited for.
        timeout_s: ``[controlplane] shield_ack_wait_s``.

    Returns:
        The wait, or None when no shield is live.
    """
    shields = frozenset(n for n, r in snapshot.nodes.items() if r.role is Role.SHIELD)
    if not shields:
        return None
    return WaitForShields(purge_id=purge_id, shields=shields, timeout_s=timeout_s)
