"""The headline experiment: the same load on fresh labs, latency-aware routing against
round-robin, tiered caching against direct-to-origin; or, with ``--chaos``, a kill mid-run.

    python -m loadtest.experiment --topology infra/lab/default.toml --users 30 --duration 60s \\
        --out loadtest/results/

Each run starts ``cdn lab`` in a fresh temporary run directory, waits for its ``lab.json``, lets
the routers' probes settle (``--warmup``), runs ``locust`` headless with ``loadtest/locustfile.py``,
and stops the lab with SIGTERM. Runs: ``latency`` (the lab's defaults; it is also the *tiered*
run), ``round-robin`` (``--policy round-robin``) and ``direct`` (``--shield-policy none``). It
prints per-region p50 TTFB side by side with the ratio, then origin offload side by side, and
writes ``experiment.json``, ``experiment.txt`` and each run's report under ``--out``.

With ``--chaos`` it makes one run instead, and halfway through kills (SIGKILL) the edge that the
first client network is routed to and a shield (in that edge's region when there is one), then
reports the errors (the goal is zero) and the time until traffic settled.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cdn_cli.configfile import read_config
from cdn_core.config import Config, Role
from cdn_core.units import parse_duration
from loadtest.chaos import ChaosOutcome, chaos_outcome, timeline
from loadtest.client import EdgeResolver, ResolveError, user_source_ip
from loadtest.records import RequestRecord
from loadtest.report import LoadReport, offload_comparison, summary_text, ttfb_comparison

REPO = Path(__file__).resolve().parent.parent
LOCUSTFILE = REPO / "loadtest" / "locustfile.py"
LAB_READY_TIMEOUT_S = 120.0
LAB_STOP_TIMEOUT_S = 40.0
MAX_DURATION_S = 3600.0
MAX_USERS = 2000


@dataclass(frozen=True, slots=True, kw_only=True)
class RunSpec:
    label: str
    lab_args: tuple[str, ...]


LATENCY = RunSpec(label="latency", lab_args=())
ROUND_ROBIN = RunSpec(label="round-robin", lab_args=("--policy", "round-robin"))
DIRECT = RunSpec(label="direct", lab_args=("--shield-policy", "none"))
CHAOS = RunSpec(label="chaos", lab_args=())


@dataclass(frozen=True, slots=True, kw_only=True)
class Options:
    topology: Path
    users: int
    duration_s: float
    warmup_s: float
    out: Path
    chaos: bool


def parse_args(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(prog="python -m loadtest.experiment", description=__doc__)
    parser.add_argument("--topology", type=Path, default=REPO / "infra" / "lab" / "default.toml")
    parser.add_argument("--users", type=int, default=30)
    parser.add_argument("--duration", default="60s", help="each run's load time (default 60s)")
    parser.add_argument("--warmup", default="10s", help="wait after the lab is up (default 10s)")
    parser.add_argument("--out", type=Path, default=REPO / "loadtest" / "results")
    parser.add_argument("--chaos", action="store_true", help="kill an edge and a shield mid-run")
    args = parser.parse_args(argv)
    try:
        duration_s = parse_duration(args.duration)
        warmup_s = parse_duration(args.warmup)
    except ValueError as exc:
        parser.error(f"--duration/--warmup: {exc}")
    if not 1 <= duration_s <= MAX_DURATION_S:
        parser.error(f"--duration must be between 1s and {MAX_DURATION_S:.0f}s")
    if warmup_s > 300:
        parser.error("--warmup must be at most 300s")
    if not 1 <= args.users <= MAX_USERS:
        parser.error(f"--users must be between 1 and {MAX_USERS}")
    if not args.topology.is_file():
        parser.error(f"--topology: no such file {args.topology}")
    return Options(
        topology=args.topology,
        users=args.users,
        duration_s=duration_s,
        warmup_s=warmup_s,
        out=args.out,
        chaos=args.chaos,
    )


# --- the lab as a subprocess ----------------------------------------------------------------


@dataclass(slots=True)
class RunningLab:
    process: subprocess.Popen[bytes]
    run_dir: Path
    state: dict[str, Any]
    log_path: Path

    @property
    def config_path(self) -> Path:
        return self.run_dir / "cdn.toml"

    def child_pids(self) -> dict[str, int]:
        children = self.state.get("children", {})
        return {str(k): int(v) for k, v in children.items()}


@contextlib.contextmanager
def running_lab(topology: Path, spec: RunSpec, work_dir: Path) -> Iterator[RunningLab]:
    """Start ``cdn lab`` for ``spec``; on exit stop it with SIGTERM and check nothing is left."""
    run_dir = work_dir / f"lab-{spec.label}"
    log_path = work_dir / f"lab-{spec.label}.log"
    command = [
        sys.executable, "-m", "cdn_cli.main", "lab",
        "--topology", str(topology), "--run-dir", str(run_dir), *spec.lab_args,
    ]  # fmt: skip
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    lab: RunningLab | None = None
    try:
        state = _wait_for_state(process, run_dir, log_path)
        lab = RunningLab(process=process, run_dir=run_dir, state=state, log_path=log_path)
        yield lab
    finally:
        leftovers = stop_lab(process, lab.child_pids() if lab is not None else {})
        if leftovers:
            print(f"warning: killed leftover lab processes {leftovers}", file=sys.stderr)


def _wait_for_state(
    process: subprocess.Popen[bytes], run_dir: Path, log_path: Path
) -> dict[str, Any]:
    deadline = time.monotonic() + LAB_READY_TIMEOUT_S
    state_path = run_dir / "lab.json"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log_path.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"cdn lab exited with status {process.returncode}:\n{tail}")
        with contextlib.suppress(OSError, ValueError):
            state: dict[str, Any] = json.loads(state_path.read_text())
            return state
        time.sleep(0.5)
    raise TimeoutError(f"cdn lab wrote no {state_path} within {LAB_READY_TIMEOUT_S:.0f}s")


def stop_lab(
    process: subprocess.Popen[bytes],
    children: dict[str, int],
    *,
    timeout_s: float = LAB_STOP_TIMEOUT_S,
) -> list[str]:
    """SIGTERM the lab, wait, then kill what is left; returns the names that had to be killed."""
    leftovers: list[str] = []
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        leftovers.append("cdn lab")
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # the session this driver started
        process.wait(timeout=10)
    for name, pid in children.items():
        if _alive(pid):
            leftovers.append(name)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    return leftovers


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped by its parent) is not alive for our purpose.
    with contextlib.suppress(OSError):
        status = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return status != "Z"
    return True


# --- locust ---------------------------------------------------------------------------------


def run_locust(
    lab: RunningLab, options: Options, label: str, out_dir: Path, *, records: bool
) -> subprocess.CompletedProcess[bytes]:
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "LOADTEST_RUN_DIR": str(lab.run_dir),
        "LOADTEST_OUT": str(out_dir),
        "LOADTEST_LABEL": label,
        "LOADTEST_RECORDS": "1" if records else "0",
    }
    users = str(options.users)
    command = [
        sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless",
        "-u", users, "-r", users, "-t", f"{int(options.duration_s)}s",
        "--stop-timeout", "15", "--only-summary", "--loglevel", "WARNING",
    ]  # fmt: skip
    timeout_s = options.duration_s + 120
    with (out_dir / "locust.log").open("wb") as log:
        return subprocess.run(
            command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, timeout=timeout_s
        )


def load_report(out_dir: Path) -> dict[str, Any]:
    path = out_dir / "report.json"
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise RuntimeError(
            f"locust wrote no report ({exc}); see {out_dir / 'locust.log'}"
        ) from None
    return data


def one_run(
    spec: RunSpec, options: Options, work_dir: Path, *, chaos: bool = False
) -> tuple[LoadReport, dict[str, Any]]:
    out_dir = options.out / "runs" / spec.label
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in ("report.json", "summary.txt", "records.jsonl"):
        (out_dir / stale).unlink(missing_ok=True)
    extra: dict[str, Any] = {}
    print(f"== {spec.label}: starting cdn lab {' '.join(spec.lab_args)}", flush=True)
    with running_lab(options.topology, spec, work_dir) as lab:
        time.sleep(options.warmup_s)
        killer = ChaosKiller(lab, options.duration_s / 2) if chaos else None
        if killer is not None:
            killer.start()
        print(f"== {spec.label}: {options.users} users for {options.duration_s:.0f}s", flush=True)
        result = run_locust(lab, options, spec.label, out_dir, records=chaos)
        if killer is not None:
            killer.join(timeout=5)
            extra = killer.result()
    report = LoadReport.from_json(load_report(out_dir))
    if result.returncode not in (0, 1):  # locust exits 1 when any request failed
        print(f"warning: locust exited with {result.returncode}", file=sys.stderr)
    print(summary_text(report), flush=True)
    return report, extra


# --- chaos ----------------------------------------------------------------------------------


def victims(config: Config, edge_address: str | None) -> tuple[str, str | None]:
    """The edge serving ``edge_address`` (else the first edge) and a shield, preferably one in
    the same region, to kill."""
    edges = [n for n in config.nodes if n.role is Role.EDGE]
    shields = [n for n in config.nodes if n.role is Role.SHIELD]
    if not edges:
        raise ValueError("the config has no edge to kill")
    edge = next((n for n in edges if edge_address in (n.listen.host, n.public_address)), edges[0])
    same_region = [s for s in shields if s.region == edge.region]
    candidates = same_region or shields
    return edge.name, candidates[0].name if candidates else None


class ChaosKiller(threading.Thread):
    """After ``delay_s``, SIGKILL the first network's edge and a shield; remember when."""

    def __init__(self, lab: RunningLab, delay_s: float) -> None:
        super().__init__(name="chaos", daemon=True)
        self.lab = lab
        self.delay_s = delay_s
        self.killed: list[str] = []
        self.kill_at: float | None = None
        self.error: str | None = None

    def run(self) -> None:
        time.sleep(self.delay_s)
        try:
            config = read_config(str(self.lab.config_path))
            network = config.client_networks[0]
            resolver = EdgeResolver(
                server=(config.dns.listen.host, config.dns.listen.port),
                hostname=config.origins[0].hostnames[0],
                client_ip=user_source_ip(str(network.prefixes[0]), 0),
            )
            try:
                address: str | None = resolver.addresses()[0]
            except ResolveError:
                address = None
            names = [n for n in victims(config, address) if n is not None]
            pids = self.lab.child_pids()
            self.kill_at = time.time()
            for name in names:
                os.kill(pids[name], signal.SIGKILL)
                self.killed.append(name)
            print(f"== chaos: killed {', '.join(self.killed)}", flush=True)
        except Exception as exc:  # reported, never raised in a thread
            self.error = f"{type(exc).__name__}: {exc}"

    def result(self) -> dict[str, Any]:
        return {"killed": self.killed, "kill_at": self.kill_at, "error": self.error}


def read_records(path: Path) -> list[RequestRecord]:
    with path.open() as file:
        return [RequestRecord.from_json(json.loads(line)) for line in file if line.strip()]


# --- the experiment -------------------------------------------------------------------------


def headline(options: Options, work_dir: Path) -> tuple[str, dict[str, Any]]:
    latency, _ = one_run(LATENCY, options, work_dir)
    round_robin, _ = one_run(ROUND_ROBIN, options, work_dir)
    direct, _ = one_run(DIRECT, options, work_dir)
    text = "\n\n".join(
        [
            "Latency-aware routing against round-robin (ratio = round-robin / latency):",
            ttfb_comparison(latency, round_robin),
            "Tiered (the latency run, shields on) against direct-to-origin (no shields):",
            offload_comparison(dataclasses.replace(latency, label="tiered"), direct),
        ]
    )
    runs = {r.label: r.to_json() for r in (latency, round_robin, direct)}
    return text, {"runs": runs}


def chaos(options: Options, work_dir: Path) -> tuple[str, dict[str, Any]]:
    report, kill = one_run(CHAOS, options, work_dir, chaos=True)
    if kill.get("kill_at") is None:
        raise RuntimeError(f"the chaos kill did not happen: {kill.get('error')}")
    records = read_records(options.out / "runs" / CHAOS.label / "records.jsonl")
    outcome: ChaosOutcome = chaos_outcome(records, kill_at=kill["kill_at"], killed=kill["killed"])
    start = min((r.started_at for r in records), default=kill["kill_at"])
    data = {
        "run": report.to_json(),
        "chaos": {
            **outcome.to_json(),
            "kill_after_s": round(kill["kill_at"] - start, 3),
            "timeline": timeline(records, start=start),
        },
    }
    return outcome.summary(), data


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    options.out.mkdir(parents=True, exist_ok=True)
    command = "python -m loadtest.experiment " + " ".join(sys.argv[1:] if argv is None else argv)
    with tempfile.TemporaryDirectory(prefix="cdn-experiment-") as work:
        try:
            scenario = chaos if options.chaos else headline
            text, data = scenario(options, Path(work))
        except (RuntimeError, TimeoutError, subprocess.TimeoutExpired) as exc:
            print(f"experiment failed: {exc}", file=sys.stderr)
            return 1
    name = "chaos" if options.chaos else "experiment"
    header = f"$ {command}\n(topology {options.topology.name}, {options.users} users, "
    header += f"{options.duration_s:.0f}s per run, warm-up {options.warmup_s:.0f}s)\n\n"
    (options.out / f"{name}.txt").write_text(header + text + "\n")
    (options.out / f"{name}.json").write_text(
        json.dumps({"command": command, **data}, indent=2) + "\n"
    )
    print("\n" + header + text, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
