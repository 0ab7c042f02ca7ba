"""The admin listener (/metrics, /healthz), `cdn route explain` and `cdn router` end to end."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import dns.asyncquery
import dns.exception
import dns.message
import dns.rcode
import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry

from controlplane.connect import connect
from controlplane.feed import StaticSource
from router.app import make_admin_app
from router.server import DnsRouter
from tests.conftest import ROOT, free_port
from tests.router.conftest import default_reports, make_config, make_report, snapshot_of

pytestmark = pytest.mark.timeout(60)


async def test_metrics_and_healthz():
    config = make_config(free_port())
    registry = CollectorRegistry()
    router = DnsRouter(config, StaticSource(snapshot_of(*default_reports())), registry=registry)
    await router.start()
    client = TestClient(TestServer(make_admin_app(router, registry)))
    await client.start_server()
    try:
        port = config.dns.listen.port
        for name in ("www.cdn.test", "missing.cdn.test"):
            query = dns.message.make_query(name, "A")
            await dns.asyncquery.udp(query, "127.0.0.1", port=port, timeout=3)
        text = await (await client.get("/metrics")).text()
        assert 'cdn_router_queries_total{qtype="A",rcode="NOERROR"} 1.0' in text
        assert 'cdn_router_queries_total{qtype="A",rcode="NXDOMAIN"} 1.0' in text
        assert 'cdn_router_answers_total{edge="edge-a",network="local"} 1.0' in text
        assert 'cdn_router_decisions_total{reason="lowest_rtt"} 1.0' in text
        assert "cdn_router_decision_seconds_bucket" in text
        health = await (await client.get("/healthz")).json()
        assert health["status"] == "ok" and health["control_plane"] == "read"
    finally:
        await client.close()
        await router.close()


TOML = """
cluster = "{cluster}"
control_plane = "{redis_url}"
secret_file = "cluster.key"

[dns]
zone = "cdn.test"
listen = "127.0.0.1:{dns_port}"
admin = "127.0.0.1:{admin_port}"

[[origins]]
name = "site"
hostnames = ["www.cdn.test"]
url = "http://127.0.0.1:9000"

[[nodes]]
name = "edge-a"
role = "edge"
region = "eu"
listen = "127.0.1.1:8080"
admin = "127.0.1.1:9080"

[[nodes]]
name = "edge-b"
role = "edge"
region = "eu"
listen = "127.0.1.2:8080"
admin = "127.0.1.2:9080"

[[client_networks]]
name = "eu"
region = "eu"
prefixes = ["127.10.0.0/16"]
probe = "127.10.0.1:7000"
"""


@pytest.fixture
def config_file(tmp_path: Path, redis_url: str, cluster_name: str) -> Path:
    path = tmp_path / "cdn.toml"
    path.write_text(
        TOML.format(
            cluster=cluster_name,
            redis_url=redis_url,
            dns_port=free_port(),
            admin_port=free_port(),
        )
    )
    return path


async def run_cdn(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "cdn_cli.main",
        *args,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.mark.redis
async def test_route_explain(config_file, redis_url, cluster_name):
    store = connect(redis_url, cluster_name)
    try:
        await store.publish_report(make_report("edge-a", {"eu": 30.0}), 30)
        await store.publish_report(make_report("edge-b", {"eu": 9.5}, load_rps=5), 30)
    finally:
        await store.close()
    status, out, err = await run_cdn("route", "explain", "--config", str(config_file), "127.10.3.4")
    assert status == 0, err
    assert "network:  eu" in out
    assert "chosen:   edge-b" in out
    assert "reason:   lowest_rtt" in out
    assert "9.5" in out and "30.0" in out and "up" in out


async def test_route_explain_bad_address(config_file):
    status, _, err = await run_cdn("route", "explain", "--config", str(config_file), "nope")
    assert status == 2
    assert "not an IPv4 or IPv6 address" in err


@pytest.mark.redis
async def test_cdn_router_process_answers_and_stops(config_file):
    text = config_file.read_text()
    dns_port = int(text.split('listen = "127.0.0.1:')[1].split('"')[0])
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "cdn_cli.main",
        "router",
        "--config",
        str(config_file),
        "--policy",
        "round-robin",
        cwd=ROOT,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        query = dns.message.make_query("www.cdn.test", "A")
        response = None
        for _ in range(100):  # bounded: the process needs a moment to bind
            try:
                response = await dns.asyncquery.udp(query, "127.0.0.1", port=dns_port, timeout=0.2)
                break
            except dns.exception.Timeout:
                continue
        assert response is not None and response.rcode() == dns.rcode.NOERROR
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 20)
    assert proc.returncode == 0
