"""The locustfile, run by the real ``locust`` command against a stand-in overlay on loopback.

The stand-in: the demo origin plays both the edge and the origin (so every user request is an
origin request), and a tiny DNS responder plays the router. No lab is needed.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import sys
from pathlib import Path

from aiohttp import web

from infra.demo_origin import build_demo_origin
from loadtest.report import LoadReport
from tests.conftest import free_port
from tests.loadtest.dns_stub import HOST, Router, start_router

REPO = Path(__file__).resolve().parents[2]
CONFIG = """
cluster = "stand-in"
control_plane = "memory"
secret_file = "cluster.key"
[dns]
zone = "cdn.test"
listen = "127.0.0.1:{dns_port}"
ttl_s = 1
[[origins]]
name = "site"
hostnames = ["{host}"]
url = "http://127.0.0.1:{port}"
shield_policy = "none"
[[nodes]]
name = "edge-1"
role = "edge"
region = "eu"
listen = "127.0.0.1:{port}"
admin = "127.0.0.1:{admin_port}"
[[client_networks]]
name = "eu-users"
region = "eu"
prefixes = ["127.10.0.0/16"]
probe = "127.10.0.1:7000"
[[client_networks]]
name = "us-users"
region = "us"
prefixes = ["127.20.0.0/16"]
probe = "127.20.0.1:7000"
"""


async def test_a_headless_run_writes_the_report(tmp_path):
    remotes: list[str | None] = []

    @web.middleware
    async def remember(request, handler):
        if request.path.startswith("/obj/"):
            remotes.append(request.remote)
        return await handler(request)

    app = build_demo_origin(objects=50)
    app.middlewares.insert(0, remember)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    router = Router(addresses=["127.0.0.1"], ttl=1)
    transport, dns_port = await start_router(router)
    config = tmp_path / "cdn.toml"
    config.write_text(
        CONFIG.format(dns_port=dns_port, host=HOST, port=port, admin_port=free_port())
    )
    out = tmp_path / "out"
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "LOADTEST_CONFIG": str(config),
        "LOADTEST_OUT": str(out),
        "LOADTEST_LABEL": "stand-in",
        "LOADTEST_WAIT": "0.01-0.05",
        "LOADTEST_RECORDS": "1",
    }
    command = [sys.executable, "-m", "locust", "-f", str(REPO / "loadtest" / "locustfile.py")]
    command += ["--headless", "-u", "4", "-r", "4", "-t", "3s", "--stop-timeout", "5"]
    process = await asyncio.create_subprocess_exec(
        *command,
        env=env,
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), timeout=60)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        transport.close()
        await runner.cleanup()
    assert process.returncode == 0, output.decode(errors="replace")[-3000:]
    data = json.loads((out / "report.json").read_text())
    report = LoadReport.from_json(data)
    assert report.overall.requests > 0 and report.overall.errors == 0
    assert [r.region for r in report.regions] == ["eu", "us"]
    # No cache in front of this origin: every user request reached it. Locust may stop a user
    # in the middle of its last request (seen even with --stop-timeout), so up to one request
    # per user reaches the origin without a record.
    assert report.origin_requests == len(remotes)
    assert report.overall.requests <= len(remotes) <= report.overall.requests + 4
    assert report.overall.hit_ratio == 0.0
    assert report.overall.ttfb_p50_ms is not None
    assert "stand-in" in (out / "summary.txt").read_text()
    records = (out / "records.jsonl").read_text().splitlines()
    assert len(records) == report.overall.requests
    # Each user sent from its own address inside its network's prefix; DNS went with ECS.
    prefixes = [ipaddress.ip_network("127.10.0.0/16"), ipaddress.ip_network("127.20.0.0/16")]
    assert all(any(ipaddress.ip_address(r) in p for p in prefixes) for r in remotes if r)
    assert len(set(remotes)) == 4
    assert {ecs for _, ecs in router.queries} <= {"127.10.1.0/24", "127.20.1.0/24"}
    assert len(router.queries) >= 4  # TTL 1 s over a 3 s run: users asked again
