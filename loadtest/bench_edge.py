"""Cache-hit requests per second: our edge beside nginx ``proxy_cache``, same machine, same run.

    python -m loadtest.bench_edge [--seconds 10] [--connections 50] [--size 1024]

Starts a tiny origin, ``cdn edge`` (a real process, through the CLI) and nginx with a
``proxy_cache`` in front of the same origin, warms one 1 KiB object in both, then drives each with
``wrk`` (Debian packages ``nginx-light`` and ``wrk``) and prints both rates and their ratio.
nginx runs one worker and the edge one process, so both get one core. Loopback only.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from aiohttp import web

from infra.ports import free_port

HOST = "www.bench.test"
# As root, nginx workers would drop to nobody and lose access to the temp cache directory.
NGINX_USER = "user root root;\n" if os.geteuid() == 0 else ""

NGINX_CONF = """
{user}worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    proxy_cache_path {dir}/cache levels=1:2 keys_zone=bench:10m max_size=256m;
    client_body_temp_path {dir}/body; proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fcgi; uwsgi_temp_path {dir}/uwsgi; scgi_temp_path {dir}/scgi;
    upstream origin {{ server 127.0.0.1:{origin_port}; keepalive 32; }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_cache bench;
            add_header Cache-Status $upstream_cache_status;
        }}
    }}
}}
"""

EDGE_CONF = """
cluster = "bench"
control_plane = "memory"
secret_file = "cluster.key"
[dns]
zone = "bench.test"
listen = "127.0.0.1:{dns_port}"
[[origins]]
name = "bench"
hostnames = ["{host}"]
url = "http://127.0.0.1:{origin_port}"
shield_policy = "none"
[[nodes]]
name = "edge-bench"
role = "edge"
region = "local"
listen = "127.0.0.1:{port}"
admin = "127.0.0.1:{admin_port}"
"""


def wait_for(port: int, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


def origin_process(port: int, size: int) -> subprocess.Popen[bytes]:
    code = f"import sys; from loadtest.bench_edge import serve_origin; serve_origin({port}, {size})"
    return subprocess.Popen([sys.executable, "-c", code])


def serve_origin(port: int, size: int) -> None:
    body = b"x" * size

    async def handle(request: web.Request) -> web.Response:
        return web.Response(
            body=body,
            headers={"Cache-Control": "public, max-age=3600", "Content-Type": "text/plain"},
        )

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    web.run_app(app, host="127.0.0.1", port=port, print=None)


@contextmanager
def running(argv: list[str], port: int, **kwargs: object) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(argv, **kwargs)  # type: ignore[call-overload]
    try:
        wait_for(port)
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def curl_status(port: int) -> str:
    out = subprocess.run(
        [
            "curl",
            "-s",
            "-o",
            "/dev/null",
            "-D",
            "-",
            "-H",
            f"Host: {HOST}",
            f"http://127.0.0.1:{port}/object",
        ],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    ).stdout
    match = re.search(r"(?im)^cache-status:\s*(.+)$", out)
    return match.group(1).strip() if match else "(none)"


def wrk(port: int, seconds: int, connections: int) -> float:
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{seconds}s",
            "-H",
            f"Host: {HOST}",
            f"http://127.0.0.1:{port}/object",
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 30,
        check=True,
    ).stdout
    match = re.search(r"Requests/sec:\s*([0-9.]+)", out)
    if match is None or re.search(r"Non-2xx", out):
        raise RuntimeError(f"wrk failed or saw errors:\n{out}")
    return float(match.group(1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--size", type=int, default=1024)
    args = parser.parse_args()
    for tool in ("nginx", "wrk", "curl"):
        if shutil.which(tool) is None:
            print(f"bench_edge: {tool} is not installed (apt-get install nginx-light wrk curl)")
            return 2
    with tempfile.TemporaryDirectory(prefix="cdn-bench-") as tmp:
        workdir = Path(tmp)
        origin_port, edge_port, nginx_port = free_port(), free_port(), free_port()
        (workdir / "cluster.key").write_text("bench-secret-0123456789abcdef\n")
        (workdir / "cdn.toml").write_text(
            EDGE_CONF.format(
                host=HOST,
                origin_port=origin_port,
                port=edge_port,
                admin_port=free_port(),
                dns_port=free_port(),
            )
        )
        (workdir / "nginx.conf").write_text(
            NGINX_CONF.format(
                user=NGINX_USER, dir=workdir, origin_port=origin_port, port=nginx_port
            )
        )
        edge = [
            sys.executable,
            "-m",
            "cdn_cli.main",
            "edge",
            "--config",
            str(workdir / "cdn.toml"),
            "--node",
            "edge-bench",
        ]
        nginx = ["nginx", "-c", str(workdir / "nginx.conf"), "-p", str(workdir)]
        proc = origin_process(origin_port, args.size)
        try:
            wait_for(origin_port)
            with running(edge, edge_port, stdout=subprocess.DEVNULL), running(nginx, nginx_port):
                for port in (edge_port, nginx_port):
                    curl_status(port)
                print(f"edge  Cache-Status: {curl_status(edge_port)}")
                print(f"nginx Cache-Status: {curl_status(nginx_port)}")
                edge_rps = wrk(edge_port, args.seconds, args.connections)
                nginx_rps = wrk(nginx_port, args.seconds, args.connections)
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    print(f"cache-hit {args.size} B, {args.connections} connections, {args.seconds}s each")
    print(f"  overlay edge : {edge_rps:10.0f} req/s")
    print(f"  nginx        : {nginx_rps:10.0f} req/s")
    print(f"  ratio edge/nginx = {edge_rps / nginx_rps:.2f}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
