"""Overlay nodes as real processes started through the CLI (``python -m cdn_cli.main``).

Each node runs from its own directory holding the shared config and the cluster key (and, with
TLS, its own certificate), as on separate machines. :class:`Cluster` starts the processes, waits
for their admin ``/healthz``, and kills every one of them on exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from cdn_core.registry import node_target, origin_target
from controlplane.connect import connect
from tests.conftest import ROOT, free_port
from tests.shield.conftest import HOST, SECRET

PYTHON = ROOT / ".venv" / "bin" / "python"
START_ATTEMPTS = 300  # x 0.1 s (plus requests): generous, a 2-core machine may be busy
HEALTH_TIMEOUT_S = 1.0
STOP_ATTEMPTS = 200  # x 0.1 s


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeSpec:
    name: str
    role: str
    listen: str
    admin: str
    source_address: str | None = None


def node_specs(*, shields: int, edges: int, source_addresses: bool = True) -> list[NodeSpec]:
    """Shields on 127.0.2.N and edges on 127.0.1.N (one data port for every edge)."""
    edge_port = free_port("127.0.1.1")
    specs = [
        NodeSpec(
            name=f"shield-{i}",
            role="shield",
            listen=f"127.0.2.{i}:{free_port(f'127.0.2.{i}')}",
            admin=f"127.0.2.{i}:{free_port(f'127.0.2.{i}')}",
            source_address=f"127.0.2.{i}" if source_addresses else None,
        )
        for i in range(1, shields + 1)
    ]
    specs += [
        NodeSpec(
            name=f"edge-{i}",
            role="edge",
            listen=f"127.0.1.{i}:{edge_port}",
            admin=f"127.0.1.{i}:{free_port(f'127.0.1.{i}')}",
            source_address=f"127.0.1.{i}" if source_addresses else None,
        )
        for i in range(1, edges + 1)
    ]
    return specs


def config_text(
    *, cluster: str, control_plane: str, origin_url: str, nodes: list[NodeSpec], extra: str = ""
) -> str:
    """The overlay's TOML: short probe and heartbeat intervals so that tests converge fast."""
    lines = [
        f'cluster = "{cluster}"',
        f'control_plane = "{control_plane}"',
        'secret_file = "cluster.key"',
        "",
        "[dns]",
        'zone = "cdn.test"',
        f'listen = "127.0.0.1:{free_port()}"',
        "",
        "[probe]",
        'interval = "200ms"',
        'timeout = "1s"',
        "up_after = 1",
        "",
        "[proxy]",
        'connect_timeout = "1s"',
        'first_byte_timeout = "3s"',
        "",
        "[controlplane]",
        'heartbeat_interval = "200ms"',
        'node_ttl = "2s"',
        "",
        "[[origins]]",
        'name = "site"',
        f'hostnames = ["{HOST}"]',
        f'url = "{origin_url}"',
    ]
    for node in nodes:
        lines += [
            "",
            "[[nodes]]",
            f'name = "{node.name}"',
            f'role = "{node.role}"',
            'region = "r"',
            f'listen = "{node.listen}"',
            f'admin = "{node.admin}"',
        ]
        if node.source_address:
            lines.append(f'source_address = "{node.source_address}"')
    return "\n".join(lines) + "\n" + extra


@dataclass
class Cluster:
    """The node processes of one test; :meth:`kill_all` leaves none behind."""

    base: Path
    config: str
    specs: dict[str, NodeSpec]
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def node_dir(self, name: str) -> Path:
        path = self.base / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def start(self, name: str) -> None:
        spec = self.specs[name]
        workdir = self.node_dir(name)
        (workdir / "cdn.toml").write_text(self.config)
        (workdir / "cluster.key").write_bytes(SECRET)
        log = (workdir / "node.log").open("wb")
        with log:
            self.procs[name] = subprocess.Popen(
                [str(PYTHON), "-m", "cdn_cli.main", spec.role]
                + ["--config", str(workdir / "cdn.toml"), "--node", name],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=str(workdir),
                env={**os.environ, "PYTHONPATH": str(ROOT)},
            )

    async def wait_healthy(self, session: aiohttp.ClientSession, name: str) -> None:
        url = f"http://{self.specs[name].admin}/healthz"
        timeout = aiohttp.ClientTimeout(total=HEALTH_TIMEOUT_S)
        for _ in range(START_ATTEMPTS):
            if self.procs[name].poll() is not None:
                raise AssertionError(f"{name} exited early:\n{self.log(name)}")
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with session.get(url, timeout=timeout) as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.1)
        raise AssertionError(f"{name} never became healthy:\n{self.log(name)}")

    async def wait_converged(self, control_plane: str, cluster: str) -> None:
        """Until the control plane shows every edge's link to every shield up, and every
        shield's link to the origin up: from then on the edges route through the shields."""
        store = connect(control_plane, cluster)
        edges = [s.name for s in self.specs.values() if s.role == "edge"]
        shields = [s.name for s in self.specs.values() if s.role == "shield"]
        wanted = [(e, node_target(s)) for e in edges for s in shields]
        wanted += [(s, origin_target("site")) for s in shields]
        try:
            for _ in range(START_ATTEMPTS):
                nodes = (await store.snapshot()).nodes
                estimates = [nodes[n].estimate(t) if n in nodes else None for n, t in wanted]
                if all(e is not None and e.up for e in estimates):
                    return
                await asyncio.sleep(0.1)
        finally:
            await store.close()
        raise AssertionError(f"the overlay never converged: {wanted} -> {estimates}")

    def log(self, name: str) -> str:
        path = self.base / name / "node.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    async def kill(self, name: str) -> None:
        await self._signal_and_wait(name, signal.SIGKILL)

    async def stop(self, name: str) -> int:
        """SIGTERM, then the exit code (SIGKILL when it does not exit in time)."""
        return await self._signal_and_wait(name, signal.SIGTERM)

    async def _signal_and_wait(self, name: str, sig: int) -> int:
        # Polls without blocking the event loop: the test's origin lives in it.
        proc = self.procs[name]
        if proc.poll() is None:
            proc.send_signal(sig)
        for _ in range(STOP_ATTEMPTS):
            code = proc.poll()
            if code is not None:
                return code
            await asyncio.sleep(0.1)
        proc.kill()
        return proc.wait(timeout=10)

    async def kill_all(self) -> None:
        for name in self.procs:
            with contextlib.suppress(Exception):
                await self.stop(name)


@contextlib.asynccontextmanager
async def cluster(base: Path, config: str, specs: list[NodeSpec]) -> AsyncIterator[Cluster]:
    running = Cluster(base=base, config=config, specs={s.name: s for s in specs})
    try:
        yield running
    finally:
        await running.kill_all()


def members(cache_status: str) -> list[str]:
    """The node names of a joined ``Cache-Status`` field, upstream first."""
    return [m.strip().split(";")[0] for m in cache_status.split(",") if m.strip()]
