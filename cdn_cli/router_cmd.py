"""``cdn router --config F [--policy latency|round-robin]``: run the DNS router."""

from __future__ import annotations

import argparse
import asyncio
import logging
from typing import Any

from cdn_cli.configfile import add_config_option, read_config
from cdn_core.config import Config, RoutingPolicy


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("router", help="run the authoritative DNS router")
    add_config_option(parser)
    parser.add_argument(
        "--policy",
        choices=[p.value for p in RoutingPolicy],
        default=None,
        help="override dns.policy: latency (default) or round-robin (the baseline)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    config = read_config(args.config)
    policy = RoutingPolicy(args.policy) if args.policy else None
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        import uvloop

        uvloop.run(serve(config, policy))
    except ImportError:
        asyncio.run(serve(config, policy))
    return 0


async def serve(config: Config, policy: RoutingPolicy | None) -> None:
    """The router on its own control-plane client, until SIGINT/SIGTERM."""
    from controlplane.connect import connect
    from router.app import run_router

    control = connect(config.control_plane, config.cluster)
    try:
        await run_router(config, control, policy=policy)
    finally:
        await control.close()
