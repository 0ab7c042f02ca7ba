"""The prober inside every node: RTT and loss toward everything the node may forward to.

Each interval it probes every target at once, with the data path's own protocol:

- overlay peers (edge → every shield, shield → every other shield): ``GET /probe`` on the
  peer's admin listener;
- origins: ``GET`` of the origin URL plus its ``probe_path`` (any answer below 500 is up);
- client networks (edges only): a TCP connect to the network's ``probe`` address, or an HTTP
  request when ``probe`` is a URL.

Probes leave from the node's ``source_address`` when one is set, like the data path does.

Samples go through :func:`cdn_core.latency.update_estimate`; :meth:`Prober.estimates` is what
the node agent publishes each heartbeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import aiohttp

from cdn_core.config import Config, HostPort, ProbeConfig, Role
from cdn_core.latency import (
    LatencyEstimate,
    ProbeSample,
    expire,
    to_peer_estimate,
    update_estimate,
)
from cdn_core.registry import PeerEstimate, network_target, node_target, origin_target
from controlplane.cancellation import cancel_and_wait, raise_if_cancelling

log = logging.getLogger(__name__)

PROBE_PATH = "/probe"


class ProbeKind(enum.Enum):
    HTTP = "http"
    TCP = "tcp"


@dataclass(frozen=True, slots=True, kw_only=True)
class ProbeTarget:
    name: str  # node:… / origin:… / net:… (cdn_core.registry)
    kind: ProbeKind
    url: str = ""
    address: HostPort | None = None


def probe_targets(config: Config, node_name: str) -> tuple[ProbeTarget, ...]:
    """What ``node_name`` probes, by its role (see the module docstring)."""
    me = config.node(node_name)
    targets = [
        ProbeTarget(name=node_target(peer.name), kind=ProbeKind.HTTP, url=_admin_url(peer.admin))
        for peer in config.nodes_with_role(Role.SHIELD)
        if peer.name != me.name
    ]
    targets += [
        ProbeTarget(name=origin_target(o.name), kind=ProbeKind.HTTP, url=o.url + o.probe_path)
        for o in config.origins
    ]
    if me.role is Role.EDGE:
        targets += [
            ProbeTarget(name=network_target(net.name), kind=ProbeKind.HTTP, url=net.probe_url)
            if net.probe_url
            else ProbeTarget(name=network_target(net.name), kind=ProbeKind.TCP, address=net.probe)
            for net in config.client_networks
        ]
    return tuple(targets)


def _admin_url(admin: HostPort) -> str:
    return f"http://{admin}{PROBE_PATH}"


class Prober:
    """Probes ``targets`` every ``policy.interval_s`` and keeps one estimate per target."""

    def __init__(
        self,
        targets: tuple[ProbeTarget, ...],
        *,
        policy: ProbeConfig,
        timeout_s: float,
        clock: Callable[[], float] = time.monotonic,
        source_address: str | None = None,
    ) -> None:
        self._targets = targets
        self._local_addr = None if source_address is None else (source_address, 0)
        self._policy = policy
        self._timeout_s = min(timeout_s, policy.interval_s)  # so a round never overlaps the next
        self._clock = clock
        self._estimates: dict[str, LatencyEstimate] = {}
        self._session: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def for_node(cls, config: Config, node_name: str) -> Prober:
        return cls(
            probe_targets(config, node_name),
            policy=config.probe,
            timeout_s=config.probe.timeout_s,
            source_address=config.node(node_name).source_address,
        )

    @property
    def targets(self) -> tuple[ProbeTarget, ...]:
        return self._targets

    def estimates(self) -> Mapping[str, PeerEstimate]:
        now = self._clock()
        return {
            name: to_peer_estimate(expire(est, now=now, policy=self._policy))
            for name, est in self._estimates.items()
        }

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="prober")

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _run(self) -> None:
        while True:
            started = time.monotonic()
            await self.probe_round()
            raise_if_cancelling()
            await asyncio.sleep(max(0.0, self._policy.interval_s - (time.monotonic() - started)))

    async def probe_round(self) -> None:
        """Probe every target once and fold the samples in."""
        rtts = await asyncio.gather(*(self._probe(t) for t in self._targets))
        now = self._clock()
        for target, rtt in zip(self._targets, rtts, strict=True):
            sample = ProbeSample(rtt_ms=rtt, at=now)
            prev = self._estimates.get(target.name)
            self._estimates[target.name] = update_estimate(prev, sample, policy=self._policy)

    async def _probe(self, target: ProbeTarget) -> float | None:
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self._timeout_s):
                if target.kind is ProbeKind.TCP:
                    ok = await self._tcp(target)
                else:
                    ok = await self._http(target)
        except (OSError, TimeoutError, aiohttp.ClientError) as exc:
            raise_if_cancelling()
            log.debug("probe of %s failed: %r", target.name, exc)
            return None
        return (time.perf_counter() - started) * 1000 if ok else None

    async def _tcp(self, target: ProbeTarget) -> bool:
        assert target.address is not None
        _, writer = await asyncio.open_connection(
            target.address.host, target.address.port, local_addr=self._local_addr
        )
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return True

    async def _http(self, target: ProbeTarget) -> bool:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(local_addr=self._local_addr),
                timeout=aiohttp.ClientTimeout(total=self._timeout_s),
                headers={"User-Agent": "cdn-prober"},
            )
        async with self._session.get(target.url, allow_redirects=False) as response:
            await response.read()
            return response.status < 500
