"""The edge driven by curl, and `cdn edge` started as a real process from a config file."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

import aiohttp

from tests.conftest import ROOT, free_port
from tests.edge.conftest import HOST, EdgeUnderTest, Origin

CURL = "/usr/bin/curl"


async def curl(*args: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        CURL,
        "--silent",
        "--show-error",
        "--include",
        "--max-time",
        "10",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await proc.communicate()
    assert proc.returncode == 0, stderr.decode()
    return stdout.decode("latin-1")


async def test_curl_sees_a_miss_then_a_hit(origin: Origin, edge: EdgeUnderTest) -> None:
    origin.static("/curl", b"from the origin", cache_control="max-age=60")
    url = f"{edge.url}/curl"
    first = await curl("-H", f"Host: {HOST}", url)
    second = await curl("-H", f"Host: {HOST}", url)
    assert first.startswith("HTTP/1.1 200")
    assert "fwd=uri-miss" in first
    assert "cache-status: edge-1; hit" in second.lower()
    assert "\r\nage: " in second.lower()
    assert second.endswith("from the origin")
    misdirected = await curl("-H", "Host: other.example", url)
    assert misdirected.startswith("HTTP/1.1 421")
    ranged = await curl("-H", f"Host: {HOST}", "-r", "5-7", url)
    assert ranged.startswith("HTTP/1.1 206")
    assert ranged.endswith("the")


CONFIG = """
cluster = "clitest"
control_plane = "memory"
secret_file = "cluster.key"

[dns]
zone = "cdn.test"
listen = "127.0.0.1:{dns_port}"

[[origins]]
name = "site"
hostnames = ["www.cdn.test"]
url = "{origin_url}"

[[nodes]]
name = "edge-1"
role = "edge"
region = "eu"
listen = "127.0.0.1:{listen_port}"
admin = "127.0.0.1:{admin_port}"

[cache]
memory_bytes = "128MiB"
max_object_bytes = "1MiB"
"""


async def test_cdn_edge_process_serves_hits(origin: Origin, tmp_path: Path) -> None:
    origin.static("/proc", b"served by a real process", cache_control="max-age=300")
    listen_port, admin_port = free_port(), free_port()
    config = tmp_path / "cdn.toml"
    config.write_text(
        CONFIG.format(
            dns_port=free_port(),
            origin_url=origin.url,
            listen_port=listen_port,
            admin_port=admin_port,
        )
    )
    (tmp_path / "cluster.key").write_bytes(b"a-test-secret-of-32-bytes-length")
    cdn = ROOT / ".venv" / "bin" / "cdn"
    command = [str(cdn)] if cdn.exists() else [sys.executable, "-m", "cdn_cli.main"]
    proc = await asyncio.create_subprocess_exec(
        *command,
        "edge",
        "--config",
        str(config),
        "--node",
        "edge-1",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=str(tmp_path),
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        async with aiohttp.ClientSession() as session:
            url = f"http://127.0.0.1:{listen_port}/proc"
            statuses = await _get_until_hit(session, url, proc)
            assert statuses[-1].startswith("edge-1; hit")
            async with session.get(f"http://127.0.0.1:{admin_port}/metrics") as metrics:
                assert 'cdn_requests_total{cache="hit",status="2xx"}' in await metrics.text()
        assert origin.hits["/proc"] == 1
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        output, _ = await asyncio.wait_for(proc.communicate(), 15)
    assert proc.returncode == 0, output.decode()
    assert "edge edge-1: serving http://127.0.0.1:" in output.decode()


async def _get_until_hit(
    session: aiohttp.ClientSession, url: str, proc: asyncio.subprocess.Process
) -> list[str]:
    """GET until the edge answers from cache (it first waits for its control-plane catch-up)."""
    statuses: list[str] = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and len(statuses) < 200:
        assert proc.returncode is None, "the edge process exited"
        try:
            async with session.get(url, headers={"Host": HOST}) as response:
                assert await response.read() == b"served by a real process"
                statuses.append(response.headers["Cache-Status"])
                if "hit" in statuses[-1].split("; "):
                    return statuses
        except aiohttp.ClientConnectionError:
            pass  # not listening yet
        await asyncio.sleep(0.05)
    raise AssertionError(f"no hit from the edge process: {statuses}")  # pragma: no cover
