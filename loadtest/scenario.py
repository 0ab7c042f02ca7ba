"""The load test's setup and bookkeeping, without locust: which lab, which objects, the records.

The locustfile reads its settings from ``LOADTEST_*`` environment variables (so the experiment
driver can start ``locust`` as a plain subprocess), builds one :class:`Scenario`, gives every
simulated user a :class:`loadtest.client.RegionClient`, and at the end writes the report.
"""

from __future__ import annotations

import json
import os
import random
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cdn_cli.configfile import read_config
from cdn_core.config import Config, Role
from loadtest.client import EdgeResolver, RegionClient, user_source_ip
from loadtest.records import RequestRecord
from loadtest.report import LoadReport, build_report, origin_object_requests, summary_text
from loadtest.workload import DEFAULT_ALPHA, DEFAULT_ONE_HIT_SHARE, Workload, popular_order

HTTP_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """What a run is told through the environment (``LOADTEST_*``)."""

    config_path: Path
    out_dir: Path | None
    label: str = "run"
    alpha: float = DEFAULT_ALPHA
    one_hit_share: float = DEFAULT_ONE_HIT_SHARE
    max_object_bytes: int = 1024 * 1024
    wait_s: tuple[float, float] = (0.1, 0.5)
    seed: int = 1
    write_records: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        config = env.get("LOADTEST_CONFIG")
        run_dir = env.get("LOADTEST_RUN_DIR")
        if not config and not run_dir:
            raise ValueError("set LOADTEST_RUN_DIR (a `cdn lab --run-dir`) or LOADTEST_CONFIG")
        low, _, high = env.get("LOADTEST_WAIT", "0.1-0.5").partition("-")
        settings = cls(
            config_path=Path(config) if config else Path(str(run_dir)) / "cdn.toml",
            out_dir=Path(env["LOADTEST_OUT"]) if env.get("LOADTEST_OUT") else None,
            label=env.get("LOADTEST_LABEL", "run"),
            alpha=_number(env, "LOADTEST_ALPHA", DEFAULT_ALPHA),
            one_hit_share=_number(env, "LOADTEST_ONE_HIT", DEFAULT_ONE_HIT_SHARE),
            max_object_bytes=int(_number(env, "LOADTEST_MAX_BYTES", 1024 * 1024)),
            wait_s=(_float("LOADTEST_WAIT", low), _float("LOADTEST_WAIT", high or low)),
            seed=int(_number(env, "LOADTEST_SEED", 1)),
            write_records=env.get("LOADTEST_RECORDS", "") not in ("", "0"),
        )
        if not 0 <= settings.wait_s[0] <= settings.wait_s[1] <= 60:
            raise ValueError("LOADTEST_WAIT must be LOW-HIGH seconds, 0 <= LOW <= HIGH <= 60")
        return settings


def _float(name: str, raw: str) -> float:
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number (got {raw!r})") from None


def _number(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    return default if raw is None or raw == "" else _float(name, raw)


@dataclass(frozen=True, slots=True, kw_only=True)
class Network:
    name: str
    region: str
    prefix: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Target:
    """The overlay under load, read from its runtime config."""

    hostname: str
    dns_server: tuple[str, int]
    edge_port: int
    origin_url: str
    networks: tuple[Network, ...]

    @classmethod
    def from_config(cls, config: Config) -> Target:
        edges = [n for n in config.nodes if n.role is Role.EDGE]
        if not edges or not config.origins or not config.client_networks:
            raise ValueError("the config needs an edge, an origin and a client network")
        networks = tuple(
            Network(name=n.name, region=n.region, prefix=str(n.prefixes[0]))
            for n in config.client_networks
        )
        return cls(
            hostname=config.origins[0].hostnames[0],
            dns_server=(config.dns.listen.host, config.dns.listen.port),
            edge_port=edges[0].listen.port,
            origin_url=config.origins[0].url.rstrip("/"),
            networks=networks,
        )


def fetch_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT_S) as response:
        return json.loads(response.read())


def catalogue_ids(catalogue: Any, max_object_bytes: int) -> list[int]:
    """The ids in the origin's ``/catalogue`` no larger than ``max_object_bytes``."""
    if not isinstance(catalogue, dict) or not isinstance(catalogue.get("objects"), list):
        raise ValueError("not the demo origin's /catalogue (no objects list)")
    ids = [int(o["id"]) for o in catalogue["objects"] if int(o["size_bytes"]) <= max_object_bytes]
    if not ids:
        raise ValueError(f"no catalogue object is at most {max_object_bytes} bytes")
    return ids


@dataclass(slots=True)
class Scenario:
    """One run: the target, the popularity order, the users' records and the origin counters."""

    settings: Settings
    target: Target
    ids: list[int]
    records: list[RequestRecord] = field(default_factory=list)
    users: int = 0
    started_at: float = 0.0
    origin_before: int | None = None

    @classmethod
    def start(cls, settings: Settings) -> Scenario:
        target = Target.from_config(read_config(str(settings.config_path)))
        catalogue = fetch_json(f"{target.origin_url}/catalogue")
        ids = popular_order(catalogue_ids(catalogue, settings.max_object_bytes), seed=settings.seed)
        scenario = cls(settings=settings, target=target, ids=ids)
        scenario.origin_before = scenario.origin_count()
        scenario.started_at = time.time()
        return scenario

    def origin_count(self) -> int | None:
        try:
            return origin_object_requests(fetch_json(f"{self.target.origin_url}/stats"))
        except (OSError, ValueError):
            return None

    def new_user(self) -> tuple[RegionClient, Workload]:
        """The next user: networks in turn, one distinct source address per user."""
        index = self.users
        self.users += 1
        networks = self.target.networks
        network = networks[index % len(networks)]
        source_ip = user_source_ip(network.prefix, index // len(networks))
        resolver = EdgeResolver(
            server=self.target.dns_server, hostname=self.target.hostname, client_ip=source_ip
        )
        client = RegionClient(
            region=network.region,
            source_ip=source_ip,
            resolver=resolver,
            hostname=self.target.hostname,
            port=self.target.edge_port,
        )
        rng = random.Random(f"{self.settings.seed}:{index}")
        workload = Workload(
            self.ids,
            rng=rng,
            token=f"{int(self.started_at)}-{index}",
            alpha=self.settings.alpha,
            one_hit_share=self.settings.one_hit_share,
        )
        return client, workload

    def finish(self) -> LoadReport:
        """Build the report and, when an output directory is set, write it."""
        after = self.origin_count()
        origin = None
        if after is not None and self.origin_before is not None:
            origin = after - self.origin_before
        report = build_report(
            self.records,
            label=self.settings.label,
            duration_s=time.time() - self.started_at,
            origin_requests=origin,
        )
        if self.settings.out_dir is not None:
            self.write(report, self.settings.out_dir)
        return report

    def write(self, report: LoadReport, out_dir: Path) -> None:
        out_dir.mkdir(parents=True, exist_ok=True)
        data = {**report.to_json(), "settings": _settings_json(self.settings)}
        (out_dir / "report.json").write_text(json.dumps(data, indent=2) + "\n")
        (out_dir / "summary.txt").write_text(summary_text(report) + "\n")
        if self.settings.write_records:
            with (out_dir / "records.jsonl").open("w") as file:
                for record in self.records:
                    file.write(json.dumps(record.to_json()) + "\n")


def _settings_json(settings: Settings) -> dict[str, Any]:
    return {
        "config": str(settings.config_path),
        "alpha": settings.alpha,
        "one_hit_share": settings.one_hit_share,
        "max_object_bytes": settings.max_object_bytes,
        "wait_s": list(settings.wait_s),
        "seed": settings.seed,
    }


def settings_from_environment() -> Settings:
    return Settings.from_env(os.environ)
