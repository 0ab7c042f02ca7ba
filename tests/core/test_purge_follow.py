"""The purge-log follower's decisions (cdn_core.purge_follow): one table row per situation.

DESIGN.md: no purge is lost (a node that missed purges it cannot read back drops its cache) and
shields are purged no later than edges (an edge waits for the live shields' acks).
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from cdn_core.config import Role
from cdn_core.purge import PurgeKind, PurgeRule
from cdn_core.purge_follow import (
    LOG_START,
    Apply,
    CatchUp,
    CaughtUp,
    DropReason,
    Follower,
    Idle,
    LogPosition,
    WaitForShields,
    decide_catch_up,
    decide_read,
    decide_shield_wait,
    entry_order,
    later,
    resume_position,
)
from cdn_core.registry import ClusterSnapshot
from cdn_core.testing import make_report

LOST, TRIMMED = DropReason.LOG_LOST, DropReason.LOG_TRIMMED


@dataclass(frozen=True, slots=True)
class Record:
    """A log entry as the store returns one (what :class:`LogRecord` describes)."""

    position: str
    rule: PurgeRule | None


def rule(purge_id: str) -> PurgeRule:
    return PurgeRule(id=purge_id, kind=PurgeKind.TAG, values=(purge_id,))


def pos(text: str) -> LogPosition:
    epoch, _, entry = text.partition("/")
    return LogPosition(epoch, entry)


def follower(role: Role = Role.EDGE, *, wait_s: float = 2.0, synced: bool = False) -> Follower:
    return Follower(role=role, shield_ack_wait_s=wait_s, position=pos("e1/5-0"), synced=synced)


# -- catching up: where to start, and whether to drop the cache first ----------------------

CATCH_UP = [
    # (situation, saved position, store epoch, trimmed after the start, decision)
    ("new node, whole log there", None, "e1", False, CatchUp(start=pos("e1/0-0"))),
    ("new node, log trimmed", None, "e1", True, CatchUp(start=pos("e1/0-0"), drop=(TRIMMED,))),
    ("restart, position in this log", pos("e1/7-0"), "e1", False, CatchUp(start=pos("e1/7-0"))),
    (
        "restart, trimmed past the position",
        pos("e1/7-0"),
        "e1",
        True,
        CatchUp(start=pos("e1/7-0"), drop=(TRIMMED,)),
    ),
    (
        "the log was lost (new epoch)",
        pos("e0/7-0"),
        "e1",
        False,
        CatchUp(start=pos("e1/0-0"), drop=(LOST,)),
    ),
    (
        "the log was lost, and the new one trimmed",
        pos("e0/7-0"),
        "e1",
        True,
        CatchUp(start=pos("e1/0-0"), drop=(LOST, TRIMMED)),
    ),
]


@pytest.mark.parametrize(
    ("saved", "epoch", "trimmed", "expected"),
    [row[1:] for row in CATCH_UP],
    ids=[row[0] for row in CATCH_UP],
)
def test_catch_up(saved, epoch, trimmed, expected) -> None:
    assert decide_catch_up(saved, epoch=epoch, trimmed=trimmed) == expected
    assert resume_position(saved, epoch=epoch) == expected.start


# -- reading: apply, caught up, or nothing new ----------------------------------------------

READS = [
    # (situation, follower, entries read, decision)
    ("catching up, log read to its end", follower(), [], CaughtUp()),
    ("following, nothing new", follower(synced=True), [], Idle()),
    (
        "edge: waits for the shields' ack of the batch's last purge",
        follower(),
        [Record("6-0", rule("a")), Record("7-0", rule("b"))],
        Apply(
            entries=(Record("6-0", rule("a")), Record("7-0", rule("b"))),
            position=pos("e1/7-0"),
            purge_ids=("a", "b"),
            wait_for="b",
        ),
    ),
    (
        "edge, following: the same",
        follower(synced=True),
        [Record("6-0", rule("a"))],
        Apply(
            entries=(Record("6-0", rule("a")),),
            position=pos("e1/6-0"),
            purge_ids=("a",),
            wait_for="a",
        ),
    ),
    (
        "edge: the last parseable purge is waited for, unparseable ones are not acked",
        follower(),
        [Record("6-0", rule("a")), Record("7-0", None)],
        Apply(
            entries=(Record("6-0", rule("a")), Record("7-0", None)),
            position=pos("e1/7-0"),
            purge_ids=("a",),
            wait_for="a",
        ),
    ),
    (
        "edge: only unparseable entries, nothing to wait for",
        follower(),
        [Record("6-0", None)],
        Apply(entries=(Record("6-0", None),), position=pos("e1/6-0"), purge_ids=()),
    ),
    (
        "edge with shield_ack_wait = 0: no wait",
        follower(wait_s=0.0),
        [Record("6-0", rule("a"))],
        Apply(entries=(Record("6-0", rule("a")),), position=pos("e1/6-0"), purge_ids=("a",)),
    ),
    (
        "shield: applies without waiting",
        follower(Role.SHIELD),
        [Record("6-0", rule("a"))],
        Apply(entries=(Record("6-0", rule("a")),), position=pos("e1/6-0"), purge_ids=("a",)),
    ),
]


@pytest.mark.parametrize(
    ("state", "entries", "expected"), [row[1:] for row in READS], ids=[row[0] for row in READS]
)
def test_read(state, entries, expected) -> None:
    assert decide_read(state, entries) == expected


def test_a_read_before_any_catch_up_is_refused() -> None:
    with pytest.raises(ValueError, match="catch up first"):
        decide_read(Follower(role=Role.EDGE, shield_ack_wait_s=1.0), [])


# -- edges wait for the live shields --------------------------------------------------------


def snapshot(*nodes: tuple[str, Role]) -> ClusterSnapshot:
    return ClusterSnapshot(
        taken_at=0.0, nodes={name: make_report(name, role=role) for name, role in nodes}
    )


SHIELD_WAITS = [
    # (situation, live nodes, decision)
    ("no shield is live: no wait", snapshot(("edge-1", Role.EDGE)), None),
    (
        "every live shield, no edge",
        snapshot(("edge-1", Role.EDGE), ("shield-1", Role.SHIELD), ("shield-2", Role.SHIELD)),
        WaitForShields(purge_id="p", shields=frozenset({"shield-1", "shield-2"}), timeout_s=2.0),
    ),
]


@pytest.mark.parametrize(
    ("live", "expected"), [row[1:] for row in SHIELD_WAITS], ids=[row[0] for row in SHIELD_WAITS]
)
def test_shield_wait(live, expected) -> None:
    assert decide_shield_wait("p", live, timeout_s=2.0) == expected


# -- the follower's state -------------------------------------------------------------------


class TestFollower:
    def test_caught_up_is_synced_and_ready(self) -> None:
        state = follower().caught_up()
        assert state.synced and state.ready

    def test_an_outage_makes_it_catch_up_again_but_keeps_readiness(self) -> None:
        state = follower().caught_up().interrupted()
        assert not state.synced and state.ready
        assert state.position == pos("e1/5-0")

    def test_at_moves_the_position_only(self) -> None:
        assert follower(synced=True).at(pos("e1/9-0")) == Follower(
            role=Role.EDGE, shield_ack_wait_s=2.0, position=pos("e1/9-0"), synced=True
        )


# -- positions ------------------------------------------------------------------------------


class TestLogPosition:
    def test_round_trips_through_text(self) -> None:
        assert str(pos("e1/17-3")) == "e1/17-3"
        assert LogPosition.parse("e1/17-3") == pos("e1/17-3")

    @pytest.mark.parametrize("text", [None, "", "e1", "/1-0", "e1/x-0", "e1/1-y"])
    def test_malformed_or_absent_is_none(self, text) -> None:
        assert LogPosition.parse(text) is None

    def test_entries_order_numerically(self) -> None:
        assert entry_order("10-0") > entry_order("9-5")
        assert entry_order("7") == (7, 0)
        assert entry_order(LOG_START) == (0, 0)


LATER = [
    # (situation, one copy, the other, store epoch, chosen)
    ("no copy", None, None, "e1", None),
    ("only one copy", pos("e1/3-0"), None, "e1", pos("e1/3-0")),
    ("the later entry wins", pos("e1/3-0"), pos("e1/10-0"), "e1", pos("e1/10-0")),
    (
        "the current epoch wins over a later old one",
        pos("e0/9-0"),
        pos("e1/2-0"),
        "e1",
        pos("e1/2-0"),
    ),
    ("both old: the later (the log was lost)", pos("e0/9-0"), pos("e0/2-0"), "e1", pos("e0/9-0")),
]


@pytest.mark.parametrize(
    ("a", "b", "epoch", "expected"), [row[1:] for row in LATER], ids=[row[0] for row in LATER]
)
def test_later(a, b, epoch, expected) -> None:
    assert later(a, b, epoch=epoch) == expected
    assert later(b, a, epoch=epoch) == expected
