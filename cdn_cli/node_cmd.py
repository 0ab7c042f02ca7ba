"""``cdn edge --config F --node N`` and ``cdn shield --config F --node N``: run one node.

Both run the same caching engine (``edge.app``) on uvloop, wired by :mod:`cdn_cli.node_root`;
the role only changes what the node does on a miss and whom it accepts. The node runs until
SIGINT or SIGTERM.
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
    """Run the node in ``role`` until SIGINT/SIGTERM, then shut it down cleanly.

    An edge sends its misses through the shields (routes planned from the control plane's
    snapshots); a shield accepts only authenticated overlay hops (over mutual TLS with
    ``[overlay.tls]``) and fetches from the origins. The wiring is :mod:`cdn_cli.node_root`'s.
    """
    from cdn_cli.node_root import run_node

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with run_node(config, node_name, secret, role=role) as running:
        node = running.node
        scheme = "https" if node.data_ssl is not None else "http"
        print(
            f"{role.value} {node_name}: serving {scheme}://{node.data_address} "
            f"(admin http://{node.admin_address}/metrics)",
            flush=True,
        )
        await stop.wait()
