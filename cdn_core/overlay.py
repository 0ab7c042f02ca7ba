"""Path planning for cache misses: which shield, over which link, and what to try next.

Theory of operation. An edge that misses plans a :class:`Route` toward the origin: an ordered
tuple of candidate :class:`Path` values, the primary first and the failover alternatives after
it. A path is at most two overlay hops: an optional relay (a one-hop detour, as in RON) and a
shield; a path with no shield goes straight to the origin.

The inputs are the control plane's :class:`~cdn_core.registry.ClusterSnapshot` (liveness and
the probers' latency estimates), the origin's ``shield_policy`` and the ``[overlay]`` knobs:

- ``nearest`` ranks shields by RTT(edge→shield) + RTT(shield→origin). The previous choice is
  kept until another shield is better by both ``switch_margin_ms`` and ``switch_margin_ratio``
  of the previous cost (hysteresis), so that noise does not make misses flap between shields.
- ``hash`` ranks the configured shield pool by rendezvous hashing of the cache key, so that
  the shields' caches add up. A down shield keeps its rank but is skipped, so its keys return
  to it when it recovers.
- ``none`` goes direct.

A shield is down when it is absent from the snapshot or marked down locally by the edge after a
failed request. A link (an estimate) is unusable when it says ``up=False`` or has no RTT yet. The
link edge→shield may be replaced by edge→relay→shield when that is better by
``detour_margin_ms``; relays only use links whose loss is below ``degraded_loss``. A lossy link
costs more than its RTT (:data:`LOSS_PENALTY_MS` per unit of loss), since TCP pays a
retransmission timeout for each lost segment. With no usable shield the route is direct; the
direct path also ends every route as the last resort.
"""

from __future__ import annotations

import enum
import hashlib
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cdn_core.config import OverlayConfig, ShieldPolicy
from cdn_core.registry import (
    ClusterSnapshot,
    NodeReport,
    PeerEstimate,
    node_target,
    origin_target,
)

# RFC 6298 §2.1: the initial retransmission timeout is 1 s; a lost segment costs about that.
LOSS_PENALTY_MS = 1000.0


class PathReason(enum.Enum):
    """Why a path is where it is in the route (a metric label and a ``cdn status`` column)."""

    NEAREST = "nearest"  # lowest RTT(edge→shield) + RTT(shield→origin)
    HYSTERESIS = "hysteresis"  # the previous shield, kept: the best is not better by the margin
    UNMEASURED = "unmeasured"  # live shield without latency samples yet (ordered by name)
    HASH_OWNER = "hash-owner"  # the key's first shield on the hash ring
    HASH_NEXT = "hash-next"  # the key's owner is down; the next shield on the ring
    FAILOVER = "failover"  # an alternative, tried after the paths before it failed
    POLICY_DIRECT = "policy-direct"  # shield_policy = "none"
    NO_SHIELD = "no-shield"  # every shield is down (or none is configured): direct
    LAST_RESORT = "last-resort"  # direct, after every shield path failed


@dataclass(frozen=True, slots=True, kw_only=True)
class Path:
    """One way to the origin: ``via`` (a relay) then ``shield``, or direct when no shield."""

    reason: PathReason
    shield: str | None = None
    via: str | None = None
    cost_ms: float | None = None

    @property
    def hops(self) -> tuple[str, ...]:
        """The overlay nodes the request passes, in order (empty when direct)."""
        return tuple(n for n in (self.via, self.shield) if n is not None)

    @property
    def is_direct(self) -> bool:
        return self.shield is None

    @property
    def is_detour(self) -> bool:
        return self.via is not None


@dataclass(frozen=True, slots=True, kw_only=True)
class Route:
    """The plan for one (edge, origin[, key]): the primary path then the failover paths."""

    origin: str
    paths: tuple[Path, ...]

    @property
    def primary(self) -> Path:
        return self.paths[0]

    @property
    def shield(self) -> str | None:
        """The primary shield: pass it back as ``previous`` for hysteresis."""
        return self.primary.shield


@dataclass(frozen=True, slots=True, kw_only=True)
class _Leg:
    """The best way from the edge to one shield, and its cost including shield→origin."""

    shield: str
    via: str | None
    cost_ms: float | None  # None: not measured


def link_cost_ms(estimate: PeerEstimate | None) -> float | None:
    """The cost of one link in ms: RTT plus a loss penalty; inf when down; None when unmeasured.

    Args:
        estimate: the prober's smoothed view of the link, or None when never probed.

    Returns:
        ``rtt_ms + loss * LOSS_PENALTY_MS``, ``math.inf`` for a down link, None without samples.
    """
    if estimate is None:
        return None
    if not estimate.up:
        return math.inf
    if estimate.rtt_ms is None:
        return None
    return estimate.rtt_ms + min(max(estimate.loss, 0.0), 1.0) * LOSS_PENALTY_MS


def plan_route(
    snapshot: ClusterSnapshot,
    *,
    edge: str,
    origin: str,
    policy: ShieldPolicy,
    shields: Sequence[str],
    overlay: OverlayConfig,
    key: str = "",
    previous: str | None = None,
    locally_down: Iterable[str] = (),
) -> Route:
    """Plan the paths a miss at ``edge`` takes toward ``origin`` (primary first).

    Args:
        snapshot: live nodes and their latency estimates (absent means down).
        edge: the planning node.
        origin: the origin's name (as in ``[[origins]]``).
        policy: the origin's ``shield_policy``.
        shields: the configured shield pool (the hash ring; order does not matter).
        overlay: the ``[overlay]`` knobs (margins and the loss threshold).
        key: the cache key (used by the ``hash`` policy).
        previous: the shield the last route chose, for the hysteresis of ``nearest``.
        locally_down: nodes this one saw fail; excluded as shields and as relays.

    Returns:
        A :class:`Route` whose paths end with a direct path.
    """
    if policy is ShieldPolicy.NONE:
        return Route(origin=origin, paths=(Path(reason=PathReason.POLICY_DIRECT),))
    excluded = frozenset(locally_down)
    pool = sorted(set(shields))
    live = [s for s in pool if snapshot.is_live(s) and s not in excluded and s != edge]
    legs = {s: _leg(snapshot, edge, s, origin, overlay, excluded) for s in live}
    usable = {s: leg for s, leg in legs.items() if leg is not None}
    if not usable:
        return Route(origin=origin, paths=(Path(reason=PathReason.NO_SHIELD),))
    if policy is ShieldPolicy.HASH:
        first = _hash_first(pool, usable, key)
    else:
        first = _nearest_first(usable, previous, overlay)
    if policy is ShieldPolicy.HASH:
        order = [usable[s] for s in hash_ring(pool, key) if s in usable]
    else:
        order = _by_cost(usable.values())
    rest = [_path(leg, PathReason.FAILOVER) for leg in order if leg is not first[0]]
    paths = (_path(first[0], first[1]), *rest, Path(reason=PathReason.LAST_RESORT))
    return Route(origin=origin, paths=paths)


def _path(leg: _Leg, reason: PathReason) -> Path:
    return Path(reason=reason, shield=leg.shield, via=leg.via, cost_ms=leg.cost_ms)


def _sort_key(leg: _Leg) -> tuple[int, float, str]:
    if leg.cost_ms is None or math.isinf(leg.cost_ms):
        return (1, 0.0, leg.shield)
    return (0, leg.cost_ms, leg.shield)


def _by_cost(legs: Iterable[_Leg]) -> list[_Leg]:
    return sorted(legs, key=_sort_key)


def _nearest_first(
    usable: dict[str, _Leg], previous: str | None, overlay: OverlayConfig
) -> tuple[_Leg, PathReason]:
    best = _by_cost(usable.values())[0]
    if best.cost_ms is None or math.isinf(best.cost_ms):
        return best, PathReason.UNMEASURED
    kept = usable.get(previous) if previous is not None else None
    if kept is None or kept is best or kept.cost_ms is None or math.isinf(kept.cost_ms):
        return best, PathReason.NEAREST
    if kept.via == best.shield:
        return best, PathReason.NEAREST  # the kept path passes through the best shield anyway
    margin = max(overlay.switch_margin_ms, overlay.switch_margin_ratio * kept.cost_ms)
    if best.cost_ms < kept.cost_ms - margin:
        return best, PathReason.NEAREST
    return kept, PathReason.HYSTERESIS


def _hash_first(pool: Sequence[str], usable: dict[str, _Leg], key: str) -> tuple[_Leg, PathReason]:
    ring = hash_ring(pool, key)
    shield = min(usable, key=ring.index)  # the usable shield ranked first (usable ⊆ pool)
    reason = PathReason.HASH_OWNER if shield == ring[0] else PathReason.HASH_NEXT
    return usable[shield], reason


def hash_ring(pool: Iterable[str], key: str) -> tuple[str, ...]:
    """The pool ranked for ``key`` by rendezvous (highest random weight) hashing.

    Each (shield, key) pair gets a score; the highest score owns the key. Removing a shield
    only moves the keys it owned, and they move back when it returns.

    Args:
        pool: the shield names.
        key: the cache key.

    Returns:
        Every shield of the pool, the key's owner first.
    """

    def score(shield: str) -> tuple[int, str]:
        digest = hashlib.blake2b(f"{shield}\x00{key}".encode(), digest_size=8).digest()
        return (-int.from_bytes(digest, "big"), shield)

    return tuple(sorted(set(pool), key=score))


def _leg(
    snapshot: ClusterSnapshot,
    edge: str,
    shield: str,
    origin: str,
    overlay: OverlayConfig,
    excluded: frozenset[str],
) -> _Leg | None:
    """The best way to ``shield`` (direct link or one-hop detour), or None if unreachable.

    An unmeasured direct link is tried as is: a detour is taken only when it is known to be
    better, by ``detour_margin_ms``, than a measured (or down) direct link.
    """
    report = snapshot.nodes.get(edge)
    direct = None if report is None else link_cost_ms(report.estimate(node_target(shield)))
    if report is None or direct is None:
        return _Leg(shield=shield, via=None, cost_ms=None)
    tail = link_cost_ms(snapshot.nodes[shield].estimate(origin_target(origin)))
    via, relay_cost = _best_relay(snapshot, report, edge, shield, overlay, excluded)
    if via is not None and relay_cost + overlay.detour_margin_ms < direct:
        return _Leg(shield=shield, via=via, cost_ms=_sum(relay_cost, tail))
    if math.isinf(direct):
        return None
    return _Leg(shield=shield, via=None, cost_ms=_sum(direct, tail))


def _sum(a: float, b: float | None) -> float | None:
    return None if b is None else a + b


def _best_relay(
    snapshot: ClusterSnapshot,
    report: NodeReport,
    edge: str,
    shield: str,
    overlay: OverlayConfig,
    excluded: frozenset[str],
) -> tuple[str | None, float]:
    """The relay with the cheapest edge→relay→shield (both links healthy), and its cost.

    ``report`` is the edge's own report (its estimates are the first links).
    """
    best: tuple[float, str] | None = None
    for name, relay in snapshot.nodes.items():
        if name in (edge, shield) or name in excluded:
            continue
        first = report.estimate(node_target(name))
        second = relay.estimate(node_target(shield))
        if not (_healthy(first, overlay) and _healthy(second, overlay)):
            continue
        cost = (link_cost_ms(first) or 0.0) + (link_cost_ms(second) or 0.0)
        if best is None or (cost, name) < best:
            best = (cost, name)
    return (None, math.inf) if best is None else (best[1], best[0])


def _healthy(estimate: PeerEstimate | None, overlay: OverlayConfig) -> bool:
    return (
        estimate is not None
        and estimate.up
        and estimate.rtt_ms is not None
        and estimate.loss < overlay.degraded_loss
    )
