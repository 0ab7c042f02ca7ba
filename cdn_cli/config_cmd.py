"""``cdn config check F``: validate a config file and summarise it."""

from __future__ import annotations

import argparse
from typing import Any

from cdn_cli.configfile import read_config, read_secret


def register(subparsers: Any) -> None:
    config = subparsers.add_parser("config", help="check or show a config file")
    actions = config.add_subparsers(dest="action", metavar="ACTION", required=True)
    check = actions.add_parser("check", help="validate a config file; exit 2 naming the bad key")
    check.add_argument("file", metavar="FILE")
    check.set_defaults(run=run_check)


def run_check(args: argparse.Namespace) -> int:
    config = read_config(args.file)
    read_secret(config)
    edges = sum(1 for n in config.nodes if n.role.value == "edge")
    print(
        f"{args.file}: ok (cluster {config.cluster!r}: {len(config.origins)} origin(s), "
        f"{edges} edge(s), {len(config.nodes) - edges} shield(s), "
        f"{len(config.client_networks)} client network(s))"
    )
    return 0
