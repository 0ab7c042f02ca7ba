"""``cdn purge url URL… | prefix URL | tag TAG… | all HOST`` (``--soft``, ``--wait``)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from cdn_cli.configfile import add_config_option, read_config
from cdn_core.errors import PurgeError
from controlplane.connect import connect
from controlplane.purge_log import issue_purge, new_rule, purge_and_wait
from controlplane.store import StoreUnavailable

_KINDS = {
    "url": ("URL", "+", "purge these URLs (absolute http(s) URLs)"),
    "prefix": ("URL", 1, "purge every URL under this prefix"),
    "tag": ("TAG", "+", "purge every object carrying one of these surrogate keys"),
    "all": ("HOST", 1, "purge every object of this host"),
}


def register(subparsers: Any) -> None:
    purge = subparsers.add_parser("purge", help="purge cached objects on every node")
    kinds = purge.add_subparsers(dest="kind", metavar="KIND", required=True)
    for kind, (metavar, nargs, help_text) in _KINDS.items():
        sub = kinds.add_parser(kind, help=help_text)
        sub.add_argument("values", metavar=metavar, nargs=nargs)
        sub.add_argument("--soft", action="store_true", help="mark stale instead of removing")
        sub.add_argument(
            "--wait", action="store_true", help="wait for every live node to acknowledge"
        )
        add_config_option(sub)
        sub.set_defaults(run=run_purge)


def run_purge(args: argparse.Namespace) -> int:
    config = read_config(args.config)
    try:
        rule = new_rule(args.kind, args.values, soft=args.soft)
    except PurgeError as exc:
        print(f"cdn purge: {exc}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(_purge(config.control_plane, config.cluster, rule, args, config))
    except StoreUnavailable as exc:
        print(f"cdn purge: {exc}; nothing was purged", file=sys.stderr)
        return 1


async def _purge(url: str, cluster: str, rule: Any, args: argparse.Namespace, config: Any) -> int:
    store = connect(url, cluster)
    cp = config.controlplane
    try:
        if not args.wait:
            entry = await issue_purge(store, rule, maxlen=cp.purge_log_maxlen)
            print(f"purge {rule.id} queued at {entry.position}")
            return 0
        report = await purge_and_wait(
            store, rule, maxlen=cp.purge_log_maxlen, timeout_s=cp.purge_wait_timeout_s
        )
    finally:
        await store.close()
    print(
        f"purge {rule.id}: acked by {len(report.acked)}/{len(report.live)} live node(s) "
        f"in {report.elapsed_ms:.1f} ms"
    )
    if not report.complete:
        print(
            f"cdn purge: timed out; no ack from: {', '.join(sorted(report.missing))}",
            file=sys.stderr,
        )
        return 1
    return 0
