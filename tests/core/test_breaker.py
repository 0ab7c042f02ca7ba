"""The per-upstream circuit breaker (cdn_core.breaker): its table and its decisions."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from cdn_core.breaker import (
    TRANSITIONS,
    Admit,
    Breaker,
    BreakerEvent,
    BreakerOptions,
    BreakerState,
    Refuse,
    after_outcome,
    decide_admission,
    transition,
)
from cdn_core.errors import InvalidTransition

OPTIONS = BreakerOptions(failures=3, open_s=10.0)


def failing(times: int, *, now: float = 100.0, breaker: Breaker | None = None) -> Breaker:
    state = breaker or Breaker()
    for _ in range(times):
        state = after_outcome(state, failed=True, now=now, options=OPTIONS)
    return state


class TestClosed:
    def test_admits_and_counts_failures_below_the_limit(self) -> None:
        breaker = failing(2)
        assert breaker.state is BreakerState.CLOSED and breaker.failures == 2
        assert decide_admission(breaker, now=100.0, options=OPTIONS)[0] == Admit()

    def test_a_success_resets_the_count(self) -> None:
        breaker = after_outcome(failing(2), failed=False, now=100.0, options=OPTIONS)
        assert breaker == Breaker()

    def test_a_success_with_nothing_to_reset_returns_the_same_value(self) -> None:
        breaker = Breaker()
        assert after_outcome(breaker, failed=False, now=1.0, options=OPTIONS) is breaker

    def test_the_limit_opens_it_at_that_moment(self) -> None:
        breaker = failing(3, now=100.0)
        assert breaker.state is BreakerState.OPEN and breaker.opened_at == 100.0

    def test_zero_failures_never_opens(self) -> None:
        off = BreakerOptions(failures=0, open_s=10.0)
        breaker = Breaker()
        for _ in range(50):
            breaker = after_outcome(breaker, failed=True, now=1.0, options=off)
        assert breaker.state is BreakerState.CLOSED


class TestOpen:
    def test_refuses_until_open_s_has_passed(self) -> None:
        breaker = failing(3, now=100.0)
        admission, same = decide_admission(breaker, now=104.0, options=OPTIONS)
        assert admission == Refuse(retry_after_s=6.0)
        assert same is breaker

    def test_late_failures_do_not_move_the_opening(self) -> None:
        breaker = failing(2, now=107.0, breaker=failing(3, now=100.0))
        assert breaker.state is BreakerState.OPEN and breaker.opened_at == 100.0

    def test_a_late_success_closes_it(self) -> None:
        breaker = after_outcome(failing(3), failed=False, now=101.0, options=OPTIONS)
        assert breaker == Breaker()

    def test_after_open_s_one_trial_goes_out(self) -> None:
        admission, half = decide_admission(failing(3, now=100.0), now=110.0, options=OPTIONS)
        assert admission == Admit(trial=True)
        assert half.state is BreakerState.HALF_OPEN and half.opened_at == 110.0
        assert isinstance(decide_admission(half, now=111.0, options=OPTIONS)[0], Refuse)


class TestHalfOpen:
    def half_open(self) -> Breaker:
        return decide_admission(failing(3, now=100.0), now=110.0, options=OPTIONS)[1]

    def test_a_successful_trial_closes_it(self) -> None:
        closed = after_outcome(self.half_open(), failed=False, now=111.0, options=OPTIONS)
        assert closed == Breaker()

    def test_a_failed_trial_reopens_it_for_open_s(self) -> None:
        reopened = after_outcome(self.half_open(), failed=True, now=112.0, options=OPTIONS)
        assert reopened.state is BreakerState.OPEN and reopened.opened_at == 112.0
        assert decide_admission(reopened, now=121.0, options=OPTIONS)[0] == Refuse(
            retry_after_s=1.0
        )

    def test_a_trial_that_never_reports_is_replaced_after_open_s(self) -> None:
        admission, again = decide_admission(self.half_open(), now=120.0, options=OPTIONS)
        assert admission == Admit(trial=True)
        assert again.state is BreakerState.HALF_OPEN and again.opened_at == 120.0


class TestTable:
    def test_a_missing_transition_raises(self) -> None:
        with pytest.raises(InvalidTransition, match="closed.*cooled-down"):
            transition(BreakerState.CLOSED, BreakerEvent.COOLED_DOWN)

    def test_every_state_reaches_closed_on_success(self) -> None:
        for state in BreakerState:
            assert TRANSITIONS[(state, BreakerEvent.SUCCESS)] is BreakerState.CLOSED


@given(
    steps=st.lists(
        st.tuples(st.sampled_from(["admit", "ok", "fail"]), st.floats(0, 30)), max_size=40
    )
)
def test_any_sequence_stays_in_the_table_and_time_only_helps(
    steps: list[tuple[str, float]],
) -> None:
    """Whatever happens, the breaker is in a valid state, and an open breaker always lets a
    trial through once open_s has passed."""
    breaker, now = Breaker(), 0.0
    for action, elapsed in steps:
        now += elapsed
        if action == "admit":
            admission, breaker = decide_admission(breaker, now=now, options=OPTIONS)
            if isinstance(admission, Refuse):
                assert 0 < admission.retry_after_s <= OPTIONS.open_s
        else:
            breaker = after_outcome(breaker, failed=action == "fail", now=now, options=OPTIONS)
        assert breaker.state in BreakerState
        assert breaker.opened_at <= now
    if breaker.state is not BreakerState.CLOSED:
        later = breaker.opened_at + OPTIONS.open_s + 1e-6  # past it, whatever the rounding
        assert decide_admission(breaker, now=later, options=OPTIONS)[0] == Admit(trial=True)
