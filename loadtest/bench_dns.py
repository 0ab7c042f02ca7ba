"""Benchmark: dnsperf against our router and against PowerDNS serving the same zone.

Both servers run on loopback in the same run; the script prints each one's queries per second
and the ratio. Needs the Debian packages ``dnsperf``, ``pdns-server`` and ``pdns-backend-bind``.

    .venv/bin/python -m loadtest.bench_dns [--seconds 10] [--clients 4]

The router runs as ``cdn router`` with the in-memory control plane (no edge reports, so every
answer is the configured-edges fallback; the answer path is the same precomputed one).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from infra.ports import free_port

ROOT = Path(__file__).resolve().parent.parent
ZONE = "cdn.test"
EDGES = ("127.0.1.1", "127.0.1.2")


def router_config(port: int) -> str:
    nodes = "".join(
        f'[[nodes]]\nname = "edge-{i}"\nrole = "edge"\nregion = "eu"\n'
        f'listen = "{ip}:8080"\nadmin = "{ip}:9080"\n\n'
        for i, ip in enumerate(EDGES)
    )
    return (
        f'cluster = "bench"\ncontrol_plane = "memory"\nsecret_file = "cluster.key"\n\n'
        f'[dns]\nzone = "{ZONE}"\nlisten = "127.0.0.1:{port}"\nanswers = 1\n'
        f"rate_limit_qps = 10000000\nrate_limit_burst = 10000000\n\n"
        f'[[origins]]\nname = "site"\nhostnames = ["www.{ZONE}"]\n'
        f'url = "http://127.0.0.1:9000"\n\n{nodes}'
        f'[[client_networks]]\nname = "local"\nregion = "eu"\n'
        f'prefixes = ["127.0.0.0/8"]\nprobe = "127.0.0.1:7000"\n'
    )


def bind_zone() -> str:
    return (
        f"$ORIGIN {ZONE}.\n$TTL 20\n"
        f"@ IN SOA ns.{ZONE}. hostmaster.{ZONE}. 1 3600 600 86400 20\n"
        f"@ IN NS ns.{ZONE}.\nns IN A 127.0.0.1\nwww IN A {EDGES[0]}\n"
    )


def start_router(workdir: Path, port: int) -> subprocess.Popen[bytes]:
    config = workdir / "cdn.toml"
    config.write_text(router_config(port))
    return subprocess.Popen(
        [sys.executable, "-m", "cdn_cli.main", "router", "--config", str(config)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def start_pdns(workdir: Path, port: int) -> subprocess.Popen[bytes]:
    binary = shutil.which("pdns_server") or "/usr/sbin/pdns_server"
    (workdir / "zone.db").write_text(bind_zone())
    named = workdir / "named.conf"
    named.write_text(f'zone "{ZONE}" {{ file "{workdir / "zone.db"}"; type master; }};\n')
    return subprocess.Popen(
        [
            binary,
            "--no-config",
            "--daemon=no",
            "--guardian=no",
            "--disable-syslog",
            "--write-pid=no",
            f"--socket-dir={workdir}",
            "--local-address=127.0.0.1",
            f"--local-port={port}",
            "--launch=bind",
            f"--bind-config={named}",
            "--loglevel=3",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def wait_answering(port: int, timeout_s: float = 20.0) -> None:
    query = (
        bytes.fromhex("abcd01000001000000000000") + b"\x03www\x03cdn\x04test\x00\x00\x01\x00\x01"
    )
    deadline = time.monotonic() + timeout_s
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.2)
        while time.monotonic() < deadline:
            sock.sendto(query, ("127.0.0.1", port))
            try:
                if sock.recv(512)[:2] == b"\xab\xcd":
                    return
            except TimeoutError:
                continue
    raise RuntimeError(f"nothing answers DNS on 127.0.0.1:{port}")


def dnsperf(port: int, queries: Path, seconds: int, clients: int) -> float:
    out = subprocess.run(
        ["dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d", str(queries)]
        + ["-l", str(seconds), "-c", str(clients), "-T", "1", "-q", "500"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    match = re.search(r"Queries per second:\s+([0-9.]+)", out)
    lost = re.search(r"Queries lost:\s+(\d+)", out)
    if match is None:
        raise RuntimeError(f"unexpected dnsperf output:\n{out}")
    print(f"    (lost {lost.group(1) if lost else '?'} queries)")
    return float(match.group(1))


def run(seconds: int, clients: int) -> int:
    for tool in ("dnsperf", "pdns_server"):
        if shutil.which(tool) is None and not os.path.exists(f"/usr/sbin/{tool}"):
            print(f"missing {tool}: apt-get install dnsperf pdns-server pdns-backend-bind")
            return 2
    with tempfile.TemporaryDirectory(prefix="bench-dns-") as tmp:
        workdir = Path(tmp)
        queries = workdir / "queries.txt"
        queries.write_text(f"www.{ZONE} A\n")
        results = {}
        for name, start in (("router", start_router), ("powerdns", start_pdns)):
            port = free_port()
            proc = start(workdir, port)
            try:
                wait_answering(port)
                print(f"{name}: dnsperf {seconds}s, {clients} client(s) on 127.0.0.1:{port}")
                results[name] = dnsperf(port, queries, seconds, clients)
            finally:
                proc.terminate()
                proc.wait(timeout=10)
    print(f"router    {results['router']:>10.0f} qps")
    print(f"powerdns  {results['powerdns']:>10.0f} qps")
    print(f"ratio router/powerdns = {results['router'] / results['powerdns']:.2f}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()
    return run(args.seconds, args.clients)


if __name__ == "__main__":
    sys.exit(main())
