"""``cdn lab``: a whole overlay on this machine, and ``cdn lab wan set`` to change its WAN."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from cdn_core.units import parse_duration

DEFAULT_TOPOLOGY = Path(__file__).resolve().parent.parent / "infra" / "lab" / "default.toml"


def register(subparsers: Any) -> None:
    lab = subparsers.add_parser(
        "lab", help="run a whole overlay on this machine with an emulated WAN (the demo)"
    )
    lab.add_argument("--topology", type=Path, default=DEFAULT_TOPOLOGY, metavar="FILE")
    lab.add_argument("--run-dir", type=Path, default=Path("lab-run"), metavar="DIR")
    lab.add_argument("--policy", choices=["latency", "round-robin"], default=None)
    lab.add_argument("--shield-policy", choices=["nearest", "hash", "none"], default=None)
    lab.set_defaults(run=run_lab)
    actions = lab.add_subparsers(dest="lab_action", metavar="ACTION")
    wan = actions.add_parser("wan", help="change the running lab's emulated WAN")
    wan_actions = wan.add_subparsers(dest="wan_action", metavar="ACTION", required=True)
    wan_set = wan_actions.add_parser("set", help="set the RTT between two regions, or cut it")
    wan_set.add_argument("a", metavar="REGION_A")
    wan_set.add_argument("b", metavar="REGION_B")
    change = wan_set.add_mutually_exclusive_group(required=True)
    change.add_argument("--rtt", metavar="DURATION", help="round-trip time, such as 300ms")
    change.add_argument("--down", action="store_true", help="cut the link")
    change.add_argument("--up", action="store_true", help="restore a cut link")
    wan_set.add_argument("--run-dir", type=Path, default=Path("lab-run"), metavar="DIR")
    wan_set.set_defaults(run=run_wan_set)


def run_lab(args: argparse.Namespace) -> int:
    from infra.lab_guide import guide
    from infra.lab_runner import Lab, LabOptions, run_lab as run

    options = LabOptions(
        topology=args.topology,
        run_dir=args.run_dir,
        policy=args.policy,
        shield_policy=args.shield_policy,
    )

    def on_ready(lab: Lab) -> None:
        text = guide(lab.plan, config_path=str(lab.config_path), run_dir=str(options.run_dir))
        print(text, flush=True)

    print(f"Starting the lab from {args.topology} …", flush=True)
    try:
        return _run(run(options, on_ready=on_ready))
    except (TimeoutError, RuntimeError) as exc:
        print(f"cdn lab: {exc}", file=sys.stderr)
        return 1


def run_wan_set(args: argparse.Namespace) -> int:
    from infra.lab_runner import read_state
    from infra.wan import WanError
    from infra.wan_control import send_wan_command

    try:
        state = read_state(args.run_dir)
        rtt_ms = parse_duration(args.rtt) * 1000 if args.rtt else None
    except (RuntimeError, ValueError) as exc:
        print(f"cdn lab wan: {exc}", file=sys.stderr)
        return 2
    down = True if args.down else (False if args.up else None)
    try:
        result = asyncio.run(
            send_wan_command(state["wan_control"], args.a, args.b, rtt_ms=rtt_ms, down=down)
        )
    except WanError as exc:
        print(f"cdn lab wan: {exc}", file=sys.stderr)
        return 1
    wan = result.get("wan", {})
    pair = "-".join(sorted((args.a, args.b)))
    rtt = wan.get("rtt_ms", {}).get(pair)
    cut = pair in wan.get("down", [])
    shown = "down" if cut else f"rtt {rtt:g}ms" if isinstance(rtt, int | float) else "changed"
    print(f"{pair}: {shown} ({len(result.get('changed_links', []))} relays updated)")
    return 0


def _run(coroutine: Any) -> int:
    try:
        import uvloop

        result: int = uvloop.run(coroutine)
    except ImportError:
        result = asyncio.run(coroutine)
    return result
