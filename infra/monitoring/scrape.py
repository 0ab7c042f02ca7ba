"""The Prometheus scrape config of an overlay, generated from its config file.

One job per role: ``cdn-edges`` and ``cdn-shields`` scrape every node's ``admin`` listener,
``cdn-router`` scrapes ``dns.admin`` (no job when the router has no admin listener). Each target
carries ``node``, ``role`` and (for nodes) ``region`` labels, so alerts and dashboards can
group by them; the cluster name is an external label. Targets are the advertised ``admin``
addresses, the ones an operator reaches (in the lab, the WAN relay fronts).

Pure: the config in, the document out. ``cdn monitoring scrape CONFIG`` prints it;
the committed ``prometheus.yml`` here is the one of ``infra/lab/default.toml``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cdn_core.config import Config, NodeConfig, Role
from infra.monitoring.yaml_text import dump

RULES_FILE = Path(__file__).resolve().parent / "rules.yml"
SCRAPE_INTERVAL = "15s"
ROUTER_NODE = "router"
JOB_OF_ROLE = {Role.EDGE: "cdn-edges", Role.SHIELD: "cdn-shields"}
ROUTER_JOB = "cdn-router"

_HEADER = (
    "# Prometheus scrape config of the overlay {cluster!r}, generated from its config file by\n"
    "# `cdn monitoring scrape`. Regenerate it rather than editing it by hand.\n"
)


def scrape_config(config: Config, *, rule_files: Sequence[str] = ("rules.yml",)) -> dict[str, Any]:
    """The scrape config document: global settings, rule files and one job per role."""
    jobs = [_node_job(JOB_OF_ROLE[role], config.nodes_with_role(role)) for role in Role]
    if config.dns.admin is not None:
        target = _target(str(config.dns.admin), node=ROUTER_NODE, role=ROUTER_NODE)
        jobs.append(_job(ROUTER_JOB, [target]))
    return {
        "global": {
            "scrape_interval": SCRAPE_INTERVAL,
            "evaluation_interval": SCRAPE_INTERVAL,
            "external_labels": {"cluster": config.cluster},
        },
        "rule_files": list(rule_files),
        "scrape_configs": [job for job in jobs if job["static_configs"]],
    }


def render(config: Config, *, rule_files: Sequence[str] = ("rules.yml",)) -> str:
    """:func:`scrape_config` as YAML text, with a header naming its origin."""
    return _HEADER.format(cluster=config.cluster) + dump(
        scrape_config(config, rule_files=rule_files)
    )


def _node_job(name: str, nodes: Sequence[NodeConfig]) -> dict[str, Any]:
    targets = [
        _target(str(n.admin), node=n.name, role=n.role.value, region=n.region) for n in nodes
    ]
    return _job(name, targets)


def _job(name: str, static_configs: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "job_name": name,
        "metrics_path": "/metrics",
        "scheme": "http",
        "static_configs": static_configs,
    }


def _target(address: str, **labels: str) -> dict[str, Any]:
    return {"targets": [address], "labels": labels}
