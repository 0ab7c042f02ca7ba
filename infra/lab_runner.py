"""``cdn lab``: run a whole overlay on this machine, behind an emulated WAN.

The runner owns every process it starts (redis-server, the demo origin, nodes, the router) and
the WAN relays and probe responders it hosts itself. It stops all of them on Ctrl-C, SIGTERM or
when it fails to come up; each child also gets SIGTERM if the runner dies (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import logging
import os
import secrets
import signal
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import aiohttp
import dns.asyncquery
import dns.edns
import dns.exception
import dns.message
import tomli_w

from cdn_core.config import Config, HostPort, IPNetwork, Role, RoutingPolicy
from cdn_core.registry import ClusterSnapshot, network_target
from controlplane.connect import read_snapshot
from controlplane.redis_server import redis_binary, start_redis_server, wait_for_port
from controlplane.store import StoreUnavailable
from infra.lab_plan import LabPlan, plan_lab
from infra.lab_wan import LabWan
from infra.monitoring.scrape import RULES_FILE, render as render_scrape_config
from infra.ports import free_port

log = logging.getLogger(__name__)

READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass(slots=True, kw_only=True)
class LabOptions:
    topology: Path
    run_dir: Path
    policy: str | None = None
    shield_policy: str | None = None


@dataclass(slots=True)
class Child:
    name: str
    process: subprocess.Popen[bytes]
    log_file: IO[bytes]


@dataclass(slots=True)
class Lab:
    """A running lab: its plan, its children and its WAN."""

    options: LabOptions
    plan: LabPlan
    config_path: Path
    wan: LabWan
    children: list[Child] = field(default_factory=list)
    started_at: float = field(default_factory=time.monotonic)

    @property
    def config(self) -> Config:
        return self.plan.config


def _load_topology(options: LabOptions) -> dict[str, Any]:
    with open(options.topology, "rb") as file:
        document = tomllib.load(file)
    if options.policy is not None:
        document.setdefault("dns", {})["policy"] = options.policy
    if options.shield_policy is not None:
        for origin in document.get("origins", []):
            origin["shield_policy"] = options.shield_policy
    return document


def _start_redis(run_dir: Path) -> tuple[str, subprocess.Popen[bytes] | None]:
    if redis_binary() is None:
        return "memory", None
    port = free_port("127.0.0.1")
    process = start_redis_server(port, run_dir, preexec_fn=_die_with_parent)
    wait_for_port("127.0.0.1", port, 10.0)
    return f"redis://127.0.0.1:{port}/0", process


def prepare(options: LabOptions) -> tuple[LabPlan, Path, subprocess.Popen[bytes] | None]:
    """Start the control plane, write the secret and the runtime config; return the plan."""
    options.run_dir.mkdir(parents=True, exist_ok=True)
    (options.run_dir / "logs").mkdir(exist_ok=True)
    secret = options.run_dir / "cluster.key"
    secret.write_text(secrets.token_hex(32) + "\n")
    secret.chmod(0o600)
    topology = _load_topology(options)
    control_plane, redis = _start_redis(options.run_dir)
    plan = plan_lab(
        topology,
        base_dir=str(options.topology.parent.resolve()),
        control_plane=control_plane,
        secret_file=str(secret.resolve()),
        allocate_port=free_port,
    )
    config_path = options.run_dir / "cdn.toml"
    with open(config_path, "wb") as file:
        tomli_w.dump(plan.document, file)
    prometheus = render_scrape_config(plan.config, rule_files=(str(RULES_FILE),))
    (options.run_dir / "prometheus.yml").write_text(prometheus)
    return plan, config_path, redis


def _spawn(lab: Lab, name: str, argv: list[str]) -> None:
    log_file = open(lab.options.run_dir / "logs" / f"{name}.log", "ab")  # noqa: SIM115
    process = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        preexec_fn=_die_with_parent,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    lab.children.append(Child(name, process, log_file))


def _start_processes(lab: Lab) -> None:
    cdn = [sys.executable, "-m", "cdn_cli.main"]
    config = str(lab.config_path)
    origin = lab.plan.origin_backend
    _spawn(lab, "origin", [sys.executable, "-m", "infra.demo_origin", "--listen", str(origin)])
    for node in lab.config.nodes:
        _spawn(lab, node.name, [*cdn, node.role.value, "--config", config, "--node", node.name])
    _spawn(lab, "router", [*cdn, "router", "--config", config])


async def _http_ok(session: aiohttp.ClientSession, address: HostPort, path: str) -> bool:
    try:
        async with session.get(f"http://{address}{path}") as response:
            return response.status < 500
    except (TimeoutError, aiohttp.ClientError, OSError):
        return False


async def _dns_ok(address: HostPort, zone: str) -> bool:
    query = dns.message.make_query(zone, "SOA")
    try:
        await dns.asyncquery.udp(query, address.host, port=address.port, timeout=0.5)
    except (OSError, dns.exception.DNSException):
        return False
    return True


async def _wait_ready(lab: Lab) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    pending: dict[str, tuple[HostPort, str]] = {
        node.name: (node.admin_listen_bind, "/healthz") for node in lab.config.nodes
    }
    pending["origin"] = (lab.plan.origin_backend, "/healthz")
    timeout = aiohttp.ClientTimeout(total=1.0)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        while time.monotonic() < deadline:
            _raise_if_a_child_died(lab)
            for name, (address, path) in list(pending.items()):
                if await _http_ok(session, address, path):
                    del pending[name]
            if (
                not pending
                and await _dns_ok(lab.config.dns.listen, lab.config.dns.zone)
                and await _routing_converged(lab.config)
            ):
                return
            await asyncio.sleep(0.2)
    waiting = ", ".join(sorted(pending)) or "the router's first latency-based answers"
    raise TimeoutError(f"the lab was not ready within {READY_TIMEOUT_S:.0f}s (waiting: {waiting})")


def measured_everywhere(config: Config, snapshot: ClusterSnapshot) -> bool:
    """True once every edge reports an up RTT estimate toward every client network."""
    for edge in config.nodes_with_role(Role.EDGE):
        report = snapshot.nodes.get(edge.name)
        if report is None:
            return False
        for network in config.client_networks:
            estimate = report.estimate(network_target(network.name))
            if estimate is None or not estimate.up or estimate.rtt_ms is None:
                return False
    return True


async def _routing_converged(config: Config) -> bool:
    """Ready means users get latency-based answers: the probes have measured every client
    network and the router answers each network with an edge of its own region."""
    if config.control_plane == "memory":
        return True  # nothing is shared between the processes; nothing to wait for
    try:
        snapshot = await read_snapshot(config.control_plane, config.cluster)
    except StoreUnavailable:
        return False
    if not measured_everywhere(config, snapshot):
        return False
    if config.dns.policy is not RoutingPolicy.LATENCY:
        return True
    for network in config.client_networks:
        local = {
            n.public_address
            for n in config.nodes_with_role(Role.EDGE)
            if n.region == network.region
        }
        if local and await _first_answer(config, network.prefixes[0]) not in local:
            return False
    return True


async def _first_answer(config: Config, prefix: IPNetwork) -> str | None:
    subnet = f"{prefix.network_address}/{min(prefix.prefixlen + 8, prefix.max_prefixlen)}"
    query = dns.message.make_query(
        config.origins[0].hostnames[0],
        "A" if prefix.version == 4 else "AAAA",
        use_edns=0,
        options=[dns.edns.ECSOption.from_text(subnet)],
    )
    try:
        response = await dns.asyncquery.udp(
            query, config.dns.listen.host, port=config.dns.listen.port, timeout=0.5
        )
    except (OSError, dns.exception.DNSException):
        return None
    for rrset in response.answer:
        for rdata in rrset:
            return str(rdata)
    return None


def _raise_if_a_child_died(lab: Lab) -> None:
    for child in lab.children:
        code = child.process.poll()
        if code is not None:
            log_path = lab.options.run_dir / "logs" / f"{child.name}.log"
            raise RuntimeError(f"{child.name} exited with status {code}; see {log_path}")


def stop_children(children: list[Child]) -> None:
    for child in children:
        if child.process.poll() is None:
            child.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    for child in children:
        remaining = max(0.1, deadline - time.monotonic())
        try:
            child.process.wait(timeout=remaining)
        except subprocess.TimeoutExpired:
            child.process.kill()
            child.process.wait(timeout=5)
        child.log_file.close()


def write_state(lab: Lab) -> None:
    state = {
        "pid": os.getpid(),
        "config": str(lab.config_path.resolve()),
        "wan_control": lab.wan.control_url,
        "children": {c.name: c.process.pid for c in lab.children},
    }
    (lab.options.run_dir / "lab.json").write_text(json.dumps(state, indent=2) + "\n")


def read_state(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "lab.json"
    try:
        state: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise RuntimeError(f"no running lab found in {run_dir} ({exc})") from None
    return state


async def run_lab(options: LabOptions, *, on_ready: Any = None) -> int:
    """Bring the lab up, print the guide, and run until a signal or ``stop`` is set."""
    plan, config_path, redis = prepare(options)
    wan = LabWan(plan)
    lab = Lab(options=options, plan=plan, config_path=config_path, wan=wan)
    if redis is not None:
        lab.children.append(Child("redis", redis, open(os.devnull, "wb")))  # noqa: SIM115
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await wan.start()
        _start_processes(lab)
        await _wait_ready(lab)
        write_state(lab)
        if on_ready is not None:
            on_ready(lab)
        await _run_until_stopped(lab, stop)
        return 0
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        stop_children(lab.children)
        await wan.stop()
        with contextlib.suppress(OSError):
            (options.run_dir / "lab.json").unlink()


async def _run_until_stopped(lab: Lab, stop: asyncio.Event) -> None:
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(1.0):
                await stop.wait()
        for child in lab.children:
            if child.process.poll() is not None and child.name != "redis":
                log.warning("%s exited with status %s", child.name, child.process.returncode)
