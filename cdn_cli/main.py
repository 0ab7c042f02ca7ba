"""Entry point of the ``cdn`` console script.

Each command group lives in its own module exposing ``register(subparsers)``; the module
registers its sub-commands with ``set_defaults(run=...)``, where ``run(args) -> int`` is the exit
status. Modules are imported lazily by name so that one broken group cannot hide the others.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from cdn_core.errors import ConfigError

COMMAND_MODULES = (
    "cdn_cli.config_cmd",
    "cdn_cli.node_cmd",
    "cdn_cli.router_cmd",
    "cdn_cli.purge_cmd",
    "cdn_cli.status_cmd",
    "cdn_cli.route_cmd",
    "cdn_cli.lab_cmd",
    "cdn_cli.monitoring_cmd",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cdn", description="Run and operate an Overlay CDN (edges, shields, DNS router)."
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        status: int = args.run(args)
    except ConfigError as exc:
        print(f"cdn: config error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return status


if __name__ == "__main__":
    sys.exit(main())
