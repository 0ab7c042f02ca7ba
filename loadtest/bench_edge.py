"""Cache-hit throughput and latency: our edge beside nginx, Varnish and Apache Traffic Server.

    python -m loadtest.bench_edge [--seconds 10] [--sizes 1KiB,16KiB,256KiB,1MiB] [--workers 1]

What it measures: for each object size, the requests per second and the p50/p99 latency of
cache *hits*, for our edge (``cdn edge --config F --node N``, a real process started through
the CLI) and for each peer installed here (Debian ``nginx-light``, ``varnish``,
``trafficserver``; :mod:`loadtest.peers` holds their configs). It prints one table per size, with
our edge's req/s over the best peer's and our p99 over that peer's p99, then the edge's peak
RSS beside its budget, ``[cache] memory_bytes`` × 1.1 + 64 MiB.

How: a tiny origin serves ``/obj/<size>`` (``Cache-Control: public, max-age=3600``), one object
per size. Every server starts with a private config in a scratch directory, in front of that
origin, and each object is fetched until the server's own marker (Cache-Status, X-Cache, Via)
says hit; a server that never hits fails the run. Then, round by round so that drift on a noisy
machine falls on every server alike, ``wrk -t1 -c64 --latency`` drives each server for
``--seconds``; each figure is the median of 3 rounds. The origin counts its requests, and a
request reaching it during a measured run fails the run too: every measured response is a hit.

Pinning: the servers run on CPU 0 (``taskset -c 0``; those not being measured sit idle there),
wrk, the origin and this script on CPU 1, so each server under test has one core (and is
configured for one: see :mod:`loadtest.peers`). ``--workers N`` passes N to the edge config
(``[edge] workers``; if the config rejects the key, that is printed and the edge runs one
process), to nginx ``worker_processes``, Traffic Server's thread limit and Varnish's thread
pools, and turns pinning off.

A peer that is not installed is skipped, with a note. Everything listens on, and sends to,
loopback only.
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from aiohttp import web

from cdn_core.units import parse_size
from infra.ports import free_port
from loadtest.peers import PEERS, BenchError, Launch, Peer, Site, on_cpu, running

HOST = "www.bench.test"
CONNECTIONS = 64
ROUNDS = 3
DEFAULT_SIZES = "1KiB,16KiB,256KiB,1MiB"
SERVER_CPU, LOAD_CPU = 0, 1
MIB = 1024**2
EDGE_MEMORY_BYTES = 256 * MIB
EDGE_NODE = "edge-bench"
HIT_TRIES = 10

EDGE_CONF = """
cluster = "bench"
control_plane = "memory"
secret_file = "cluster.key"
{edge_table}
[cache]
memory_bytes = {memory_bytes}
[dns]
zone = "bench.test"
listen = "127.0.0.1:{dns_port}"
[[origins]]
name = "bench"
hostnames = ["{host}"]
url = "http://127.0.0.1:{origin_port}"
shield_policy = "none"
[[nodes]]
name = "{node}"
role = "edge"
region = "local"
listen = "127.0.0.1:{port}"
admin = "127.0.0.1:{admin_port}"
"""


@dataclass(frozen=True, slots=True)
class WrkRun:
    rps: float
    p50_s: float
    p99_s: float
    socket_errors: int


@dataclass(frozen=True, slots=True)
class Summary:
    """One server at one size: the median of each figure over the rounds."""

    server: str
    rps: float
    p50_s: float
    p99_s: float


@dataclass(frozen=True, slots=True)
class Server:
    peer: Peer
    port: int
    pid: int


# The origin -------------------------------------------------------------------------------


def serve_origin(port: int) -> None:
    """Serve ``/obj/<size>`` (that many bytes, cacheable for an hour) and ``/_requests``."""
    served = 0

    async def obj(request: web.Request) -> web.Response:
        nonlocal served
        served += 1
        body = b"x" * int(request.match_info["size"])
        headers = {"Cache-Control": "public, max-age=3600", "Content-Type": "text/plain"}
        return web.Response(body=body, headers=headers)

    async def requests(request: web.Request) -> web.Response:
        return web.Response(text=str(served))

    app = web.Application()
    app.router.add_get("/obj/{size:[0-9]+}", obj)
    app.router.add_get("/_requests", requests)
    web.run_app(app, host="127.0.0.1", port=port, print=None)


def origin_launch(port: int) -> Launch:
    code = f"from loadtest.bench_edge import serve_origin; serve_origin({port})"
    return Launch([sys.executable, "-c", code])


def origin_requests(origin_port: int) -> int:
    status, _, body = fetch(origin_port, "/_requests")
    if status != 200:
        raise BenchError(f"the origin's /_requests answered {status}")
    return int(body)


# Our edge, as one more Peer ---------------------------------------------------------------


def write_edge_config(site: Site, workers: int) -> Path:
    path = site.dir / "cdn.toml"
    edge_table = f"[edge]\nworkers = {workers}\n" if workers > 1 else ""
    text = EDGE_CONF.format(
        edge_table=edge_table,
        memory_bytes=EDGE_MEMORY_BYTES,
        host=site.host,
        node=EDGE_NODE,
        origin_port=site.origin_port,
        port=site.port,
        admin_port=free_port(),
        dns_port=free_port(),
    )
    path.write_text(text)
    return path


def config_problem(path: Path) -> str | None:
    """What ``cdn config check`` objects to in the file, or None if it passes."""
    argv = [sys.executable, "-m", "cdn_cli.main", "config", "check", str(path)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    return None if done.returncode == 0 else (done.stderr or done.stdout).strip()


def configure_edge(site: Site) -> Launch:
    (site.dir / "cluster.key").write_text("bench-secret-0123456789abcdef\n")
    path = write_edge_config(site, site.workers)
    problem = config_problem(path)
    if problem is not None and site.workers > 1:
        print(f"edge: the config rejects [edge] workers = {site.workers} ({problem});")
        print("edge: running it as one process")
        path = write_edge_config(site, 1)
        problem = config_problem(path)
    if problem is not None:
        raise BenchError(f"the edge config does not check: {problem}")
    argv = [sys.executable, "-m", "cdn_cli.main", "edge", "--config", str(path)]
    return Launch([*argv, "--node", EDGE_NODE])


def edge_hit(cache_status: str) -> bool:
    """Some member of the Cache-Status list has the ``hit`` parameter."""
    return any(
        "hit" in (param.strip() for param in member.split(";")[1:])
        for member in cache_status.split(",")
    )


EDGE = Peer(
    "overlay edge", sys.executable, "(this repository)", configure_edge, "Cache-Status", edge_hit
)


# Processes --------------------------------------------------------------------------------


def start_server(
    stack: ExitStack, peer: Peer, workdir: Path, origin_port: int, workers: int, cpu: int | None
) -> Server:
    site = Site(workdir / peer.name.replace(" ", "-"), free_port(), origin_port, HOST, workers)
    site.dir.mkdir()
    launch = peer.configure(site)
    process = stack.enter_context(running(launch, site.port, site.dir / "server.log", cpu))
    return Server(peer, site.port, process.pid)


# Memory -----------------------------------------------------------------------------------


def tree_rss_bytes(pid: int) -> int:
    """VmRSS of a process and of its descendants (the edge's workers, once it has some)."""
    total, pending = 0, [pid]
    while pending:
        current = pending.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            children = Path(f"/proc/{current}/task/{current}/children").read_text()
        except OSError:
            continue
        match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
        total += int(match.group(1)) * 1024 if match else 0
        pending += [int(child) for child in children.split()]
    return total


class RssSampler:
    """The largest :func:`tree_rss_bytes` of ``pid`` while the block runs, every 0.2 s."""

    def __init__(self, pid: int, interval_s: float = 0.2) -> None:
        self.pid = pid
        self.interval_s = interval_s
        self.max_bytes = 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while True:
            self.max_bytes = max(self.max_bytes, tree_rss_bytes(self.pid))
            if self._done.wait(self.interval_s):
                return

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._done.set()
        self._thread.join()


# Requests: hit checks and wrk -------------------------------------------------------------


def fetch(port: int, path: str) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path, headers={"Host": HOST})
        response = connection.getresponse()
        body = response.read()
        headers = {name.lower(): value for name, value in response.getheaders()}
        return response.status, headers, body
    finally:
        connection.close()


def warm(server: Server, size: int) -> str:
    """Fetch the object until ``server`` says it hit; return the header that says so."""
    peer, path = server.peer, f"/obj/{size}"
    marker = "(no response)"
    for _ in range(HIT_TRIES):
        status, headers, body = fetch(server.port, path)
        value = headers.get(peer.hit_header.lower(), "")
        marker = f"{status}, {len(body)} B, {peer.hit_header}: {value or '(absent)'}"
        if status == 200 and len(body) == size and peer.is_hit(value):
            return f"{peer.hit_header}: {value}"
        time.sleep(0.2)
    raise BenchError(f"{peer.name} does not cache {path}: after {HIT_TRIES} tries, {marker}")


def wrk_argv(port: int, path: str, seconds: int, cpu: int | None) -> list[str]:
    argv = ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{seconds}s", "--latency", "--timeout", "10s"]
    return [*on_cpu(cpu), *argv, "-H", f"Host: {HOST}", f"http://127.0.0.1:{port}{path}"]


_UNIT_S = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_latency(text: str, percentile: int) -> float:
    match = re.search(rf"^\s*{percentile}%\s+([0-9.]+)(us|ms|s|m|h)\s*$", text, re.MULTILINE)
    if match is None:
        raise BenchError(f"wrk printed no {percentile}% latency:\n{text}")
    return float(match.group(1)) * _UNIT_S[match.group(2)]


def parse_wrk(text: str) -> WrkRun:
    """The figures of one ``wrk --latency`` run; a non-2xx/3xx response is an error."""
    rate = re.search(r"Requests/sec:\s*([0-9.]+)", text)
    if rate is None or "Non-2xx" in text:
        raise BenchError(f"wrk failed or saw errors:\n{text}")
    errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text
    )
    return WrkRun(
        rps=float(rate.group(1)),
        p50_s=parse_latency(text, 50),
        p99_s=parse_latency(text, 99),
        socket_errors=sum(int(n) for n in errors.groups()) if errors else 0,
    )


def run_wrk(server: Server, size: int, seconds: int, cpu: int | None, origin_port: int) -> WrkRun:
    before = origin_requests(origin_port)
    argv = wrk_argv(server.port, f"/obj/{size}", seconds, cpu)
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60, check=False)
    if done.returncode != 0:
        raise BenchError(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.strip()}")
    missed = origin_requests(origin_port) - before
    if missed:
        raise BenchError(
            f"the origin got {missed} requests while wrk drove {server.peer.name} at /obj/{size}:"
            " not every measured response was a cache hit"
        )
    run = parse_wrk(done.stdout)
    if run.socket_errors:
        print(f"  note: {server.peer.name} {size} B: {run.socket_errors} wrk socket errors")
    return run


def summarise(server: str, runs: Sequence[WrkRun]) -> Summary:
    return Summary(
        server=server,
        rps=statistics.median(r.rps for r in runs),
        p50_s=statistics.median(r.p50_s for r in runs),
        p99_s=statistics.median(r.p99_s for r in runs),
    )


def measure_size(
    servers: Sequence[Server], size: int, seconds: int, cpu: int | None, origin_port: int
) -> list[Summary]:
    runs: dict[str, list[WrkRun]] = {s.peer.name: [] for s in servers}
    for round_no in range(1, ROUNDS + 1):
        for server in servers:
            run = run_wrk(server, size, seconds, cpu, origin_port)
            runs[server.peer.name].append(run)
            print(
                f"  {human_size(size)} round {round_no}/{ROUNDS} {server.peer.name}: "
                f"{run.rps:.0f} req/s",
                file=sys.stderr,
            )
    return [summarise(name, server_runs) for name, server_runs in runs.items()]


# Report -----------------------------------------------------------------------------------


def human_size(size: int) -> str:
    for unit, factor in (("MiB", MIB), ("KiB", 1024)):
        if size >= factor and size % factor == 0:
            return f"{size // factor} {unit}"
    return f"{size} B"


def human_latency(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f}us"
    if seconds < 1.0:
        return f"{seconds * 1e3:.2f}ms"
    return f"{seconds:.2f}s"


def size_table(size: int, rows: Sequence[Summary]) -> list[str]:
    """The table for one size; the first row is our edge, the rest are peers."""
    lines = [f"{human_size(size)} hits", f"  {'server':<14} {'req/s':>9} {'p50':>9} {'p99':>9}"]
    lines += [
        f"  {r.server:<14} {r.rps:>9.0f} {human_latency(r.p50_s):>9} {human_latency(r.p99_s):>9}"
        for r in rows
    ]
    edge, peers = rows[0], rows[1:]
    if peers:
        best = max(peers, key=lambda r: r.rps)
        lines.append(
            f"  edge / best peer ({best.server}): req/s {edge.rps / best.rps:.2f},"
            f" p99 {edge.p99_s / best.p99_s:.2f}"
        )
    else:
        lines.append("  no peer installed to compare with")
    return lines


def rss_line(max_bytes: int) -> str:
    budget = int(EDGE_MEMORY_BYTES * 1.1) + 64 * MIB
    verdict = "within budget" if max_bytes <= budget else "OVER budget"
    return (
        f"edge RSS: max {max_bytes / MIB:.1f} MiB over the run; budget {budget / MIB:.1f} MiB"
        f" (memory_bytes {EDGE_MEMORY_BYTES / MIB:.0f} MiB x 1.1 + 64 MiB): {verdict}"
    )


# Main -------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10, help="length of each wrk run")
    parser.add_argument(
        "--sizes", default=DEFAULT_SIZES, help=f"object sizes, comma-separated ({DEFAULT_SIZES})"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="workers (edge, nginx) or threads (Varnish, Traffic Server); >1 turns pinning off",
    )
    args = parser.parse_args(argv)
    args.sizes = [parse_size(s) for s in args.sizes.split(",")]
    if args.workers < 1 or args.seconds < 1 or 0 in args.sizes:
        parser.error("--workers, --seconds and every size must be positive")
    return args


def pinning(workers: int) -> tuple[int | None, int | None]:
    """(server CPU, load CPU), or (None, None) when the processes float."""
    if workers > 1:
        print(f"pinning off: --workers {workers}")
        return None, None
    if not {SERVER_CPU, LOAD_CPU} <= os.sched_getaffinity(0) or shutil.which("taskset") is None:
        print(f"pinning off: needs taskset and CPUs {SERVER_CPU} and {LOAD_CPU}")
        return None, None
    os.sched_setaffinity(0, {LOAD_CPU})  # this script and the origin stay off the servers' CPU
    return SERVER_CPU, LOAD_CPU


def installed_peers() -> list[Peer]:
    for peer in PEERS:
        if not peer.installed():
            print(f"{peer.name}: skipped, no {peer.binary} here (apt-get install {peer.package})")
    return [peer for peer in PEERS if peer.installed()]


def start_servers(
    stack: ExitStack, workdir: Path, origin_port: int, workers: int, cpu: int | None
) -> list[Server]:
    """Our edge first, then each installed peer, all in front of the origin at ``origin_port``."""
    return [
        start_server(stack, peer, workdir, origin_port, workers, cpu)
        for peer in (EDGE, *installed_peers())
    ]


def warm_all(servers: Sequence[Server], sizes: Sequence[int]) -> None:
    for server in servers:
        markers = [warm(server, size) for size in sizes]
        print(f"{server.peer.name}: every object hits, e.g. {markers[0]}")


def setup_line(seconds: int, server_cpu: int | None, load_cpu: int | None) -> str:
    where = (
        "unpinned" if load_cpu is None else f"servers on CPU {server_cpu}, wrk on CPU {load_cpu}"
    )
    return f"{CONNECTIONS} connections, median of {ROUNDS} runs of {seconds} s each; {where}"


def run(args: argparse.Namespace) -> None:
    server_cpu, load_cpu = pinning(args.workers)
    with tempfile.TemporaryDirectory(prefix="cdn-bench-") as tmp, ExitStack() as stack:
        workdir, origin_port = Path(tmp), free_port()
        origin = origin_launch(origin_port)
        stack.enter_context(running(origin, origin_port, workdir / "origin.log", None))
        servers = start_servers(stack, workdir, origin_port, args.workers, server_cpu)
        rss = stack.enter_context(RssSampler(servers[0].pid))
        warm_all(servers, args.sizes)
        print(setup_line(args.seconds, server_cpu, load_cpu))
        for size in args.sizes:
            rows = measure_size(servers, size, args.seconds, load_cpu, origin_port)
            print("\n".join(["", *size_table(size, rows)]), flush=True)
    print("\n" + rss_line(rss.max_bytes))


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("wrk") is None:
        print("bench_edge: wrk is not installed (apt-get install wrk)")
        return 2
    try:
        run(args)
    except BenchError as exc:
        print(f"bench_edge: FAILED: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
