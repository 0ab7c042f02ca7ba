"""``cdn edge --config F --node N`` and ``cdn shield --config F --node N``: run one node.

Both run the same caching engine (``edge.app``) on uvloop; the role only changes what the node
does on a miss and whom it accepts. The node runs until SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from typing import Any

import uvloop

from cdn_cli.configfile import add_config_option, read_config, read_secret
from cdn_core.config import Config, Role
from cdn_core.errors import ConfigError


def register(subparsers: Any) -> None:
    for role in Role:
        parser = subparsers.add_parser(
            role.value, help=f"run one {role.value} node (caching reverse proxy)"
        )
        add_config_option(parser)
        parser.add_argument("--node", required=True, metavar="NAME", help="this node's name")
        parser.add_argument(
            "--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR")
        )
        parser.set_defaults(run=run_node, role=role)


def run_node(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=getattr(logging, args.log_level),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    config = read_config(args.config)
    node = config.node(args.node)
    if node.role is not args.role:
        raise ConfigError(
            "nodes", args.node, f"is a {node.role.value}; run it with `cdn {node.role.value}`"
        )
    secret = read_secret(config)
    uvloop.run(serve(config, args.node, args.role, secret))
    return 0


async def serve(config: Config, node_name: str, role: Role, secret: bytes) -> None:
    """Run the node until SIGINT/SIGTERM, then shut it down cleanly."""
    from edge.app import build_node

    node = build_node(config, node_name, role=role, secret=secret)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await node.start()
    print(
        f"{role.value} {node_name}: serving http://{node.data_address} "
        f"(admin http://{node.admin_address}/metrics)",
        flush=True,
    )
    try:
        await stop.wait()
    finally:
        await node.stop()
