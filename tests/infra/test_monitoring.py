"""The generated Prometheus files: scrape targets, committed copies, and real metric names."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from cdn_core.config import Config, Role, load_config
from edge.metrics import EdgeMetrics, Outcome, UpstreamResult
from infra.monitoring.rules import NODE_RULES, ROUTER_RULES, rules_document
from infra.monitoring.scrape import ROUTER_JOB, render, scrape_config
from infra.monitoring.yaml_text import Data, dump, scalar
from overlay.path import OverlayMetrics
from router.metrics import RouterMetrics

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "infra" / "monitoring"
LAB = ROOT / "infra" / "lab"


def lab_config(name: str = "default.toml") -> Config:
    with open(LAB / name, "rb") as file:
        return load_config(tomllib.load(file), base_dir=str(LAB))


def targets(document: dict[str, Any]) -> list[tuple[str, str, dict[str, str]]]:
    return [
        (job["job_name"], target, static["labels"])
        for job in document["scrape_configs"]
        for static in job["static_configs"]
        for target in static["targets"]
    ]


@pytest.mark.parametrize("name", ["default.toml", "small.toml", "large.toml"])
def test_every_node_and_the_router_are_scraped_exactly_once(name: str) -> None:
    config = lab_config(name)

    found = targets(scrape_config(config))

    by_node = {labels["node"]: (job, target, labels) for job, target, labels in found}
    assert len(by_node) == len(found) == len(config.nodes) + 1
    for node in config.nodes:
        job, target, labels = by_node[node.name]
        assert job == f"cdn-{node.role.value}s"
        assert target == str(node.admin)
        assert labels == {"node": node.name, "role": node.role.value, "region": node.region}
    assert by_node["router"] == (
        ROUTER_JOB,
        str(config.dns.admin),
        {"node": "router", "role": "router"},
    )


def test_one_job_per_role_and_the_cluster_as_external_label() -> None:
    document = scrape_config(lab_config(), rule_files=("/x/rules.yml",))

    jobs = [job["job_name"] for job in document["scrape_configs"]]
    assert jobs == ["cdn-edges", "cdn-shields", "cdn-router"]
    assert document["global"]["external_labels"] == {"cluster": "lab"}
    assert document["rule_files"] == ["/x/rules.yml"]


def test_no_router_job_without_dns_admin_and_no_empty_job() -> None:
    with open(LAB / "default.toml", "rb") as file:
        data = tomllib.load(file)
    del data["dns"]["admin"]
    data["nodes"] = [n for n in data["nodes"] if n["role"] == Role.EDGE.value]

    document = scrape_config(load_config(data, base_dir=str(LAB)))

    assert [job["job_name"] for job in document["scrape_configs"]] == ["cdn-edges"]


def test_committed_prometheus_yml_is_the_generated_one_for_the_default_lab() -> None:
    committed = (MONITORING / "prometheus.yml").read_text()

    assert committed == render(lab_config())


def test_committed_rules_yml_is_the_generated_one() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "cdn_cli.main", "monitoring", "rules"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )

    assert (MONITORING / "rules.yml").read_text() == result.stdout


def test_cli_prints_the_scrape_config_and_rejects_a_bad_config(tmp_path: Path) -> None:
    good = subprocess.run(
        [sys.executable, "-m", "cdn_cli.main", "monitoring", "scrape", str(LAB / "default.toml")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    bad_file = tmp_path / "bad.toml"
    bad_file.write_text('cluster = "x"\nbogus = 1\n')
    bad = subprocess.run(
        [sys.executable, "-m", "cdn_cli.main", "monitoring", "scrape", str(bad_file)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert good.returncode == 0 and good.stdout == render(lab_config())
    assert bad.returncode == 2 and "error:" in bad.stderr and bad.stdout == ""


# -- the rules use names and label values the code really exports ------------------------------


def exported_series() -> dict[str, set[str]]:
    """Sample name -> label names, from the real metric classes of nodes and router."""
    registry = CollectorRegistry()
    edge = EdgeMetrics(registry)
    edge.answered(Outcome.HIT, 200, 10)
    edge.upstream(UpstreamResult.OK, 0.01)
    overlay = OverlayMetrics(registry)
    overlay.routes.labels(reason="x", detour=False).inc()
    overlay.failovers.labels(cause="x").inc()
    router = RouterMetrics(registry, edges=["e"], networks=["n"])
    router.reply(1, 0)
    router.drop("rate_limited")
    router.count_route(("lowest_rtt", "n", ("e",)))
    series: dict[str, set[str]] = {"up": {"job", "instance"}}
    for family in registry.collect():
        for sample in family.samples:
            series.setdefault(sample.name, set()).update(sample.labels)
    return series


CLOSED_LABEL_VALUES = {
    "cache": {o.value for o in Outcome},
    "result": {r.value for r in UpstreamResult},
    "status": {"1xx", "2xx", "3xx", "4xx", "5xx", "other"},
    "rcode": {"NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "BADVERS"},
    "job": {"cdn-edges", "cdn-shields", "cdn-router"},
    "cause": {"rate_limited", "error", "unreadable"},
}
SELECTOR = re.compile(r"\b([a-z_]+)(\{[^}]*\})?(?=\[|\)|\s|$)")
MATCHER = re.compile(r'(\w+)\s*(=~|!=|=)\s*"([^"]*)"')
PROMQL_WORDS = {"sum", "by", "rate", "increase", "histogram_quantile", "and", "le", "node", "role"}


@pytest.mark.parametrize("rule", [*NODE_RULES, *ROUTER_RULES], ids=lambda r: r.alert)
def test_rule_uses_exported_metrics_and_known_label_values(rule: Any) -> None:
    from cdn_core.routing import Reason

    series = exported_series()
    values = {**CLOSED_LABEL_VALUES, "reason": {r.value for r in Reason}}
    used = [(m.group(1), m.group(2) or "") for m in SELECTOR.finditer(rule.expr)]
    metrics = [(name, sel) for name, sel in used if name not in PROMQL_WORDS]

    assert metrics, rule.expr
    for name, selector in metrics:
        assert name in series, f"{rule.alert}: {name} is not exported"
        for label, op, value in MATCHER.findall(selector):
            assert label in series[name] | {"job", "node", "role", "region"}, (name, label)
            options = value.split("|") if op == "=~" else [value]
            assert set(options) <= values[label], (rule.alert, label, value)


def test_rule_file_shape() -> None:
    document = rules_document()

    names = [r["alert"] for g in document["groups"] for r in g["rules"]]
    assert len(names) == len(set(names)) >= 8
    for group in document["groups"]:
        for rule in group["rules"]:
            assert set(rule) == {"alert", "expr", "for", "labels", "annotations"}
            assert rule["labels"]["severity"] in {"warning", "critical"}
            assert re.fullmatch(r"[0-9]+[smh]", rule["for"])


# -- the YAML emitter ---------------------------------------------------------------------------


def test_yaml_emitter_writes_block_style_and_quotes_what_needs_it() -> None:
    data: dict[str, Data] = {
        "a": "plain/text",
        "b": ["15s", "yes", "it's", 3, 1.5, True],
        "c": {"d": [], "e": {}, "f": [{"g": "x", "h": ["1.2.3.4:80"]}]},
        "é": "line\nbreak",
    }

    assert dump(data) == (
        "a: plain/text\n"
        "b:\n"
        "  - '15s'\n"
        "  - 'yes'\n"
        "  - 'it''s'\n"
        "  - 3\n"
        "  - 1.5\n"
        "  - true\n"
        "c:\n"
        "  d: []\n"
        "  e: {}\n"
        "  f:\n"
        "    - g: x\n"
        "      h:\n"
        "        - '1.2.3.4:80'\n"
        '"\\u00e9": "line\\nbreak"\n'
    )


@pytest.mark.parametrize("value", [None, b"x", object()])
def test_yaml_emitter_refuses_what_it_cannot_write(value: object) -> None:
    with pytest.raises(TypeError, match="cannot write"):
        scalar(value)
