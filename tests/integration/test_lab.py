"""`cdn lab` end to end: a small topology through the CLI, DNS, a fetch, a purge, a WAN change,
and a teardown that leaves no process behind."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import dns.asyncquery
import dns.edns
import dns.message
import dns.rdatatype
import pytest

from cdn_cli.configfile import read_config

ROOT = Path(__file__).resolve().parents[2]
TOPOLOGY = ROOT / "infra" / "lab" / "small.toml"
READY_S = 90.0

pytestmark = pytest.mark.timeout(240)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie of ours is not alive
        with open(f"/proc/{pid}/stat") as file:
            return file.read().split()[2] != "Z"
    except OSError:
        return False


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Path, list[str]]]:
    run_dir = tmp_path / "run"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cdn_cli.main",
            "lab",
            "--topology",
            str(TOPOLOGY),
            "--run-dir",
            str(run_dir),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=ROOT,
    )
    lines: list[str] = []
    deadline = time.monotonic() + READY_S
    try:
        assert process.stdout is not None
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line.rstrip())
            if "Ctrl-C stops the lab" in line:
                break
        assert any("is up" in line for line in lines), "\n".join(lines)
        yield process, run_dir, lines
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _cdn(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cdn_cli.main", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
    )


async def _resolve(config_path: Path, subnet: str) -> str:
    config = read_config(str(config_path))
    ecs = dns.edns.ECSOption.from_text(subnet)
    query = dns.message.make_query(
        config.origins[0].hostnames[0], dns.rdatatype.A, use_edns=0, options=[ecs]
    )
    response = await dns.asyncquery.udp(
        query, config.dns.listen.host, port=config.dns.listen.port, timeout=5
    )
    return str(response.answer[0][0])


async def _get(edge: str, port: int, path: str, source: str) -> tuple[int, str, bytes]:
    connector = aiohttp.TCPConnector(local_addr=(source, 0))
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.get(f"http://{edge}:{port}{path}", headers={"Host": "www.cdn.test"}) as response,
    ):
        body = await response.read()
        # One Cache-Status field line per tier (shield, then edge): RFC 9211 §2 joins them.
        return response.status, ", ".join(response.headers.getall("Cache-Status", [])), body


def test_lab_resolves_fetches_purges_and_tears_down(lab) -> None:
    process, run_dir, lines = lab
    state = json.loads((run_dir / "lab.json").read_text())
    config_path = Path(state["config"])
    pids = list(state["children"].values())
    assert all(_alive(pid) for pid in pids)
    text = "\n".join(lines)
    assert "dig @" in text and "curl " in text and "cdn purge url" in text

    edge = asyncio.run(_resolve(config_path, "127.11.0.0/24"))
    assert edge == "127.0.21.1"  # eu users get the eu edge
    status, cache_status, body = asyncio.run(_get(edge, 8080, "/obj/3", "127.11.0.9"))
    assert status == 200 and body
    status, cache_status, _ = asyncio.run(_get(edge, 8080, "/obj/3", "127.11.0.9"))
    assert "hit" in cache_status.split(",")[-1]

    purge = _cdn(
        "purge", "url", "http://www.cdn.test/obj/3", "--wait", "--config", str(config_path)
    )
    assert purge.returncode == 0, purge.stdout + purge.stderr
    _, cache_status, _ = asyncio.run(_get(edge, 8080, "/obj/3", "127.11.0.9"))
    assert "hit" not in cache_status.split(",")[-1]

    wan = _cdn("lab", "wan", "set", "eu", "us", "--rtt", "120ms", "--run-dir", str(run_dir))
    assert wan.returncode == 0, wan.stderr
    bad = _cdn("lab", "wan", "set", "eu", "mars", "--rtt", "1ms", "--run-dir", str(run_dir))
    assert bad.returncode != 0

    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in pids if _alive(pid)]
    assert not (run_dir / "lab.json").exists()
