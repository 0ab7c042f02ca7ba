"""cdn_core.latency: RFC 6298 §2 smoothing, window loss, asymmetric up/down, silence."""

from __future__ import annotations

from hypothesis import given, strategies as st

from cdn_core.config import ProbeConfig
from cdn_core.latency import (
    LatencyEstimate,
    ProbeSample,
    expire,
    to_peer_estimate,
    update_estimate,
)

POLICY = ProbeConfig(interval_s=1.0, window=4, down_after=3, up_after=2)


def feed(outcomes: list[float | None], est: LatencyEstimate | None = None) -> LatencyEstimate:
    start = est.last_sample_at if est and est.last_sample_at is not None else 0.0
    for i, rtt in enumerate(outcomes, start=1):
        est = update_estimate(est, ProbeSample(rtt_ms=rtt, at=start + i), policy=POLICY)
    assert est is not None
    return est


class TestSmoothing:
    def test_first_sample_sets_srtt_and_half_rttvar(self) -> None:
        est = feed([10.0])
        assert (est.srtt_ms, est.rttvar_ms) == (10.0, 5.0)

    def test_later_samples_use_rfc6298_gains(self) -> None:
        est = feed([10.0, 18.0])
        assert est.rttvar_ms == 0.75 * 5.0 + 0.25 * 8.0
        assert est.srtt_ms == 0.875 * 10.0 + 0.125 * 18.0

    def test_failures_leave_the_rtt_alone(self) -> None:
        est = feed([10.0, None])
        assert est.srtt_ms == 10.0
        assert est.samples == 2


class TestLoss:
    def test_loss_is_the_failure_share_of_the_window(self) -> None:
        assert feed([1.0, None, 1.0, None]).loss == 0.5

    def test_old_samples_leave_the_window(self) -> None:
        assert feed([None, None, 1.0, 1.0, 1.0, 1.0]).loss == 0.0

    def test_no_samples_no_loss(self) -> None:
        assert LatencyEstimate().loss == 0.0


class TestHealth:
    def test_unknown_target_is_down_until_its_first_success(self) -> None:
        assert not LatencyEstimate().up
        assert not feed([None]).up
        assert feed([1.0]).up

    def test_down_only_after_down_after_consecutive_failures(self) -> None:
        est = feed([1.0, None, None])
        assert est.up
        assert not feed([None], est).up

    def test_a_success_resets_the_failure_streak(self) -> None:
        assert feed([1.0, None, None, 1.0, None, None]).up

    def test_up_again_only_after_up_after_successes(self) -> None:
        down = feed([1.0, None, None, None])
        assert not feed([1.0], down).up
        assert feed([1.0, 1.0], down).up

    def test_failed_first_contact_then_success_needs_up_after(self) -> None:
        assert not feed([None, 1.0]).up
        assert feed([None, 1.0, 1.0]).up


class TestSilence:
    def test_silent_target_is_down_after_down_after_intervals(self) -> None:
        est = feed([1.0, 1.0])  # last sample at t=2
        assert expire(est, now=4.5, policy=POLICY).up
        assert not expire(est, now=5.0, policy=POLICY).up

    def test_expire_leaves_down_and_unknown_targets_alone(self) -> None:
        assert expire(LatencyEstimate(), now=100.0, policy=POLICY) == LatencyEstimate()


def test_peer_estimate_carries_the_figures() -> None:
    peer = to_peer_estimate(feed([4.0, None]))
    assert (peer.rtt_ms, peer.rttvar_ms, peer.loss, peer.up, peer.samples) == (
        4.0,
        2.0,
        0.5,
        True,
        2,
    )


@given(st.lists(st.one_of(st.none(), st.floats(0.01, 5000.0)), min_size=1, max_size=60))
def test_invariants(outcomes: list[float | None]) -> None:
    est = feed(outcomes)
    assert 0.0 <= est.loss <= 1.0
    assert len(est.recent) <= POLICY.window
    assert est.samples == len(outcomes)
    assert est.streak < max(POLICY.up_after, POLICY.down_after)
    tail = outcomes[-POLICY.down_after :]
    if len(tail) == POLICY.down_after and all(r is None for r in tail):
        assert not est.up  # never up after down_after straight failures
    rtts = [r for r in outcomes if r is not None]
    if rtts:
        assert est.srtt_ms is not None and min(rtts) - 1e-6 <= est.srtt_ms <= max(rtts) + 1e-6
