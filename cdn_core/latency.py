"""Latency and health of one probe target, estimated from probe samples.

Theory of operation. The prober measures one sample per target per interval: the round-trip
time of a probe, or a failure (refused, reset, timed out). :func:`update_estimate` folds a sample
into a :class:`LatencyEstimate`:

- RTT is smoothed as TCP does (RFC 6298 §2): ``SRTT`` and ``RTTVAR`` with gains 1/8 and 1/4;
  the first sample sets ``SRTT = R`` and ``RTTVAR = R / 2``.
- Loss is the share of failures among the last ``window`` samples (Varnish's probe window).
- Health moves asymmetrically (gdnsd): an up target goes down after ``down_after`` consecutive
  failures, a down target comes up after ``up_after`` consecutive successes, so a single lost
  probe does not flap it. A target never heard from starts down and its first success makes it
  up, so a fresh node is usable after one probe round.
- Silence counts as failure: :func:`expire` marks a target down once ``down_after`` intervals
  passed without any sample, so a stalled prober cannot keep a dead peer up.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from cdn_core.config import ProbeConfig
from cdn_core.registry import PeerEstimate

RTT_GAIN = 1 / 8  # RFC 6298 alpha
RTTVAR_GAIN = 1 / 4  # RFC 6298 beta


@dataclass(frozen=True, slots=True, kw_only=True)
class ProbeSample:
    """One probe: its RTT in ms, or ``None`` when it failed; ``at`` is monotonic seconds."""

    rtt_ms: float | None
    at: float

    @property
    def ok(self) -> bool:
        return self.rtt_ms is not None


@dataclass(frozen=True, slots=True, kw_only=True)
class LatencyEstimate:
    """The smoothed state of one target."""

    srtt_ms: float | None = None
    rttvar_ms: float = 0.0
    recent: tuple[bool, ...] = ()  # the last ``window`` outcomes, oldest first
    up: bool = False
    streak: int = 0  # consecutive samples that disagree with ``up``
    samples: int = 0
    last_sample_at: float | None = None

    @property
    def loss(self) -> float:
        return self.recent.count(False) / len(self.recent) if self.recent else 0.0


def update_estimate(
    prev: LatencyEstimate | None, sample: ProbeSample, *, policy: ProbeConfig
) -> LatencyEstimate:
    """Fold one probe sample into the estimate of its target.

    Args:
        prev: the estimate so far, or None for a target never probed.
        sample: the new probe result.
        policy: window and thresholds.

    Returns:
        The new estimate: RFC 6298 §2 smoothing, window loss, asymmetric up/down.
    """
    est = prev or LatencyEstimate()
    srtt, rttvar = est.srtt_ms, est.rttvar_ms
    if sample.rtt_ms is not None:
        if srtt is None:
            srtt, rttvar = sample.rtt_ms, sample.rtt_ms / 2
        else:
            rttvar = (1 - RTTVAR_GAIN) * rttvar + RTTVAR_GAIN * abs(srtt - sample.rtt_ms)
            srtt = (1 - RTT_GAIN) * srtt + RTT_GAIN * sample.rtt_ms
    up, streak = _health(est, sample.ok, policy)
    return LatencyEstimate(
        srtt_ms=srtt,
        rttvar_ms=rttvar,
        recent=(*est.recent, sample.ok)[-policy.window :],
        up=up,
        streak=streak,
        samples=est.samples + 1,
        last_sample_at=sample.at,
    )


def _health(est: LatencyEstimate, ok: bool, policy: ProbeConfig) -> tuple[bool, int]:
    if ok == est.up:
        return est.up, 0
    if ok and est.samples == 0:
        return True, 0  # first contact: up at once
    streak = est.streak + 1
    needed = policy.up_after if ok else policy.down_after
    return (ok, 0) if streak >= needed else (est.up, streak)


def expire(est: LatencyEstimate, *, now: float, policy: ProbeConfig) -> LatencyEstimate:
    """The estimate as of ``now``: down once ``down_after`` intervals passed with no sample.

    Args:
        est: the estimate.
        now: monotonic seconds.
        policy: interval and thresholds.

    Returns:
        ``est`` itself, or a copy marked down when it went silent.
    """
    silent_s = policy.down_after * policy.interval_s
    if est.up and est.last_sample_at is not None and now - est.last_sample_at >= silent_s:
        return replace(est, up=False, streak=0)
    return est


def to_peer_estimate(est: LatencyEstimate) -> PeerEstimate:
    """The estimate as the control plane carries it (``cdn_core.registry.PeerEstimate``)."""
    return PeerEstimate(
        rtt_ms=est.srtt_ms,
        rttvar_ms=est.rttvar_ms,
        loss=est.loss,
        up=est.up,
        samples=est.samples,
    )
