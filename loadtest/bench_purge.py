"""Purge-to-last-ack latency: 8 node agents (2 shields, 6 edges) on loopback, 200 purges.

Starts its own redis-server on a free loopback port, runs the agents in this process (each with
its own Redis connection pool), issues purges one at a time and measures, per purge, the time
from issuing it to the last node's acknowledgement (edges wait for shields: two hops). Prints
p50 / p99 against the aim (p50 < 50 ms, p99 < 250 ms) and Fastly's / Cloudflare's ~150 ms.

    .venv/bin/python -m loadtest.bench_purge [--purges 200] [--edges 6] [--shields 2]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import tempfile
from typing import Any

from cdn_core.config import load_config
from cdn_core.purge import PurgeRule
from cdn_core.registry import NodeStats
from controlplane.agent import NodeAgent
from controlplane.purge_log import new_rule, purge_and_wait
from controlplane.redis_server import start_redis_server, wait_for_port
from controlplane.redis_store import RedisControlStore
from infra.ports import free_port


class CountingCache:
    def __init__(self) -> None:
        self.applied = 0

    def purge(self, rule: PurgeRule, *, now: float) -> int:
        self.applied += 1
        return 0

    def drop_all(self) -> int:
        return 0


def _config(url: str, shields: int, edges: int, secret: str) -> Any:
    nodes = [
        {
            "name": f"{role}-{i}",
            "role": role,
            "region": "eu",
            "listen": f"127.0.{1 if role == 'edge' else 2}.{i}:{port}",
            "admin": f"127.0.0.1:{free_port()}",
        }
        for role, count, port in (("shield", shields, free_port()), ("edge", edges, free_port()))
        for i in range(1, count + 1)
    ]
    return load_config(
        {
            "cluster": "bench",
            "control_plane": url,
            "secret_file": secret,
            "dns": {"zone": "cdn.test", "listen": f"127.0.0.1:{free_port()}"},
            "origins": [
                {
                    "name": "o",
                    "hostnames": ["www.cdn.test"],
                    "url": f"http://127.0.0.1:{free_port()}",
                }
            ],
            "nodes": nodes,
            "controlplane": {"heartbeat_interval": "500ms", "node_ttl": "2s"},
        }
    )


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _run(url: str, args: argparse.Namespace, secret: str) -> list[float]:
    config = _config(url, args.shields, args.edges, secret)
    agents = [
        NodeAgent(
            config, n.name, RedisControlStore.from_url(url, "bench"), CountingCache(), NodeStats
        )
        for n in config.nodes
    ]
    store = RedisControlStore.from_url(url, "bench")
    try:
        for agent in agents:
            await agent.start()
        for _ in range(200):
            if len((await store.snapshot()).nodes) == len(agents):
                break
            await asyncio.sleep(0.05)
        latencies = []
        for n in range(args.purges):
            rule = new_rule("url", [f"http://www.cdn.test/obj/{n}"], soft=False)
            report = await purge_and_wait(store, rule, maxlen=100_000, timeout_s=5.0)
            if not report.complete:
                print(f"purge {n}: no ack from {sorted(report.missing)}")
            latencies.append(report.elapsed_ms)
        return latencies
    finally:
        for agent in agents:
            await agent.stop()
            await agent.store.close()
        await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--purges", type=int, default=200)
    parser.add_argument("--edges", type=int, default=6)
    parser.add_argument("--shields", type=int, default=2)
    args = parser.parse_args()
    workdir = tempfile.mkdtemp(prefix="bench-purge-")
    secret = f"{workdir}/cluster.key"
    with open(secret, "w") as file:
        file.write("bench-secret-0123456789")
    port = free_port()
    redis = start_redis_server(port, workdir)
    try:
        wait_for_port("127.0.0.1", port, 10.0)
        latencies = asyncio.run(_run(f"redis://127.0.0.1:{port}/0", args, secret))
    finally:
        redis.terminate()
        redis.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)
    p50, p99 = _percentile(latencies, 0.5), _percentile(latencies, 0.99)
    nodes = args.shields + args.edges
    print(f"{len(latencies)} purges, {nodes} nodes ({args.shields} shields, {args.edges} edges)")
    print(
        f"purge-to-last-ack  p50 {p50:.1f} ms  p99 {p99:.1f} ms  "
        f"mean {statistics.fmean(latencies):.1f} ms  max {max(latencies):.1f} ms"
    )
    print(
        f"vs aim: p50 {p50 / 50:.2f}x of 50 ms, p99 {p99 / 250:.2f}x of 250 ms; "
        f"p50 {150 / p50:.0f}x under the ~150 ms Fastly/Cloudflare claim"
    )


if __name__ == "__main__":
    main()
