"""A circuit breaker per upstream: stop waiting on an origin that has stopped answering.

Theory of operation. Every exchange with one upstream ends in success or failure (a timeout or
a refused connection: the upstream did not answer at all). ``failures`` consecutive failures
open the breaker: for ``open_s`` seconds no request is sent, and the node answers at once from
what it has (a stale object that ``stale-if-error`` allows) or with 503, instead of every
request waiting out the first-byte timeout. When ``open_s`` has passed, the breaker is half
open: one trial request goes through, and its outcome closes the breaker again or reopens it
for another ``open_s`` (a trial that never reports is presumed lost after ``open_s``).
Requests that were already in flight when it opened report their outcome too; a success of
any of them closes it.

The state is a value (:class:`Breaker`); :func:`decide_admission` and :func:`after_outcome`
return the next one, so the adapter (``edge.breaker``) only stores it and does the I/O. The
clock is the caller's (monotonic seconds). States change only along :data:`TRANSITIONS`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace

from cdn_core.errors import InvalidTransition


class BreakerState(enum.Enum):
    CLOSED = "closed"  # requests go through; consecutive failures are counted
    OPEN = "open"  # no request goes through until the breaker cools down
    HALF_OPEN = "half-open"  # one trial request is in flight


class BreakerEvent(enum.Enum):
    SUCCESS = "success"
    FAILURE = "failure"  # one more failure, below the limit
    LIMIT_REACHED = "limit-reached"  # the failure that reaches the limit
    COOLED_DOWN = "cooled-down"  # open for open_s: let a trial through


TRANSITIONS: dict[tuple[BreakerState, BreakerEvent], BreakerState] = {
    (BreakerState.CLOSED, BreakerEvent.SUCCESS): BreakerState.CLOSED,
    (BreakerState.CLOSED, BreakerEvent.FAILURE): BreakerState.CLOSED,
    (BreakerState.CLOSED, BreakerEvent.LIMIT_REACHED): BreakerState.OPEN,
    (BreakerState.OPEN, BreakerEvent.COOLED_DOWN): BreakerState.HALF_OPEN,
    (BreakerState.OPEN, BreakerEvent.SUCCESS): BreakerState.CLOSED,  # a late in-flight answer
    (BreakerState.OPEN, BreakerEvent.FAILURE): BreakerState.OPEN,
    (BreakerState.OPEN, BreakerEvent.LIMIT_REACHED): BreakerState.OPEN,
    (BreakerState.HALF_OPEN, BreakerEvent.COOLED_DOWN): BreakerState.HALF_OPEN,  # trial lost
    (BreakerState.HALF_OPEN, BreakerEvent.SUCCESS): BreakerState.CLOSED,
    (BreakerState.HALF_OPEN, BreakerEvent.FAILURE): BreakerState.OPEN,
    (BreakerState.HALF_OPEN, BreakerEvent.LIMIT_REACHED): BreakerState.OPEN,
}


@dataclass(frozen=True, slots=True, kw_only=True)
class BreakerOptions:
    failures: int  # consecutive failures that open the breaker (0: never opens)
    open_s: float  # how long it stays open before a trial


@dataclass(frozen=True, slots=True, kw_only=True)
class Breaker:
    state: BreakerState = BreakerState.CLOSED
    failures: int = 0  # consecutive failures so far
    opened_at: float = 0.0  # when it opened, or when its trial went out


@dataclass(frozen=True, slots=True, kw_only=True)
class Admit:
    trial: bool = False  # the one request of a half-open breaker


@dataclass(frozen=True, slots=True, kw_only=True)
class Refuse:
    retry_after_s: float  # until the breaker lets a trial through


Admission = Admit | Refuse


def transition(state: BreakerState, event: BreakerEvent) -> BreakerState:
    """The next state, from :data:`TRANSITIONS`; :class:`InvalidTransition` if there is none."""
    try:
        return TRANSITIONS[(state, event)]
    except KeyError:
        raise InvalidTransition(state, event) from None


def decide_admission(
    breaker: Breaker, *, now: float, options: BreakerOptions
) -> tuple[Admission, Breaker]:
    """May a request go to this upstream now? And the breaker after the decision.

    Args:
        breaker: the upstream's breaker.
        now: monotonic seconds.
        options: the limits of ``[proxy]``.

    Returns:
        :class:`Admit` (with ``trial`` set for the half-open trial) or :class:`Refuse`, and the
        breaker to keep.
    """
    if breaker.state is BreakerState.CLOSED:
        return Admit(), breaker
    # Open: wait out open_s. Half open: the trial is out; one that has not reported within
    # open_s (its exchange died without an outcome) is presumed lost, and another goes out.
    waited = now - breaker.opened_at
    if waited < options.open_s:
        return Refuse(retry_after_s=options.open_s - waited), breaker
    state = transition(breaker.state, BreakerEvent.COOLED_DOWN)
    return Admit(trial=True), replace(breaker, state=state, opened_at=now)


def after_outcome(
    breaker: Breaker, *, failed: bool, now: float, options: BreakerOptions
) -> Breaker:
    """The breaker after one exchange ended: ``failed`` for a timeout or refused connection.

    Args:
        breaker: the upstream's breaker.
        failed: whether the upstream failed to answer.
        now: monotonic seconds (when the breaker opens, it opens now).
        options: the limits of ``[proxy]``.

    Returns:
        The breaker to keep.
    """
    if not failed:
        if breaker.state is BreakerState.CLOSED and breaker.failures == 0:
            return breaker  # the common case: nothing changes
        return Breaker(state=transition(breaker.state, BreakerEvent.SUCCESS))
    failures = breaker.failures + 1
    limit = options.failures > 0 and failures >= options.failures
    event = BreakerEvent.LIMIT_REACHED if limit else BreakerEvent.FAILURE
    state = transition(breaker.state, event)
    if state is BreakerState.OPEN and breaker.state is not BreakerState.OPEN:
        return Breaker(state=state, failures=failures, opened_at=now)
    return replace(breaker, state=state, failures=failures)
