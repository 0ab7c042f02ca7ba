"""``cdn monitoring scrape CONFIG`` / ``cdn monitoring rules``: print the monitoring files.

The generators are :mod:`infra.monitoring`'s; this command reads the config and prints.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from cdn_cli.configfile import read_config


def register(subparsers: Any) -> None:
    monitoring = subparsers.add_parser(
        "monitoring", help="print the overlay's Prometheus scrape config or alerting rules"
    )
    actions = monitoring.add_subparsers(dest="action", metavar="ACTION", required=True)
    scrape = actions.add_parser("scrape", help="the Prometheus scrape config of a config file")
    scrape.add_argument("config", metavar="CONFIG", help="the overlay's TOML config")
    scrape.add_argument(
        "--rules", action="append", metavar="FILE", help="a rule file to list (default: rules.yml)"
    )
    scrape.set_defaults(run=run_scrape)
    rules = actions.add_parser("rules", help="the alerting rules (infra/monitoring/rules.yml)")
    rules.set_defaults(run=run_rules)


def run_scrape(args: argparse.Namespace) -> int:
    from infra.monitoring.scrape import render

    config = read_config(args.config)
    sys.stdout.write(render(config, rule_files=args.rules or ("rules.yml",)))
    return 0


def run_rules(args: argparse.Namespace) -> int:
    from infra.monitoring.rules import render

    sys.stdout.write(render())
    return 0
