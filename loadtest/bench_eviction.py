"""Offline hit ratios of the edge's eviction policy on a CDN request trace.

Replays a ``time,obj_id,size`` CSV trace (``/work/shared/bench/cdn_trace.py`` writes one)
through ``cdn_core.eviction`` itself, the class the edge's cache store runs, at cache sizes given
as fractions of the trace's byte footprint. For each size it prints our S3-FIFO and our LRU (the
sanity row: it must match libCacheSim's LRU exactly) next to the best online rows of the
libCacheSim reference file, with the byte miss ratio's relative gap to the best of them.
Offline bounds (Belady, PFOO-L) are shown for scale but never count as "best".

The µs/req column is the whole replay loop (membership test plus ``touch`` or ``admit``) per
request; the ``loop floor`` line is the same loop doing nothing, so the policy's own cost is
the difference. The reference's µs/req (its pure-Python rows only) come from another machine
and run, so only our own rows compare with each other. Reference rows are for the full default
trace only.

    python -m loadtest.bench_eviction --trace /tmp/trace.csv [--sizes 0.001,0.01,0.1] [--limit N]
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cdn_core.eviction import EvictionPolicy, LruPolicy, S3FifoPolicy

DEFAULT_REFERENCE = Path("/work/shared/bench/hitratio_reference.json")
OFFLINE = ("Belady", "BeladySize", "PFOO-L (bound)")
POLICIES: dict[str, Callable[[int], EvictionPolicy]] = {
    "ours S3-FIFO": S3FifoPolicy,
    "ours LRU": LruPolicy,
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Trace:
    keys: list[int]
    sizes: list[int]
    footprint: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Result:
    name: str
    frac: float
    miss_ratio: float
    byte_miss_ratio: float
    us_per_request: float | None


def load_trace(path: Path, limit: int | None) -> Trace:
    """Read ``time,obj_id,size`` rows; the footprint counts each object once (last size)."""
    keys: list[int] = []
    sizes: list[int] = []
    with path.open(newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None or [h.strip() for h in header[1:3]] != ["obj_id", "size"]:
            raise ValueError(f"{path}: expected a 'time,obj_id,size' header, got {header}")
        for row in reader:
            if limit is not None and len(keys) >= limit:
                break
            try:
                key, size = int(row[1]), int(row[2])
            except (IndexError, ValueError):
                raise ValueError(f"{path}:{reader.line_num}: bad row {row}") from None
            if size < 0:
                raise ValueError(f"{path}:{reader.line_num}: negative size {size}")
            keys.append(key)
            sizes.append(size)
    if not keys:
        raise ValueError(f"{path}: no requests")
    footprint = sum(dict(zip(keys, sizes, strict=True)).values())
    return Trace(keys=keys, sizes=sizes, footprint=footprint)


def replay(name: str, policy: EvictionPolicy, trace: Trace, frac: float) -> Result:
    """Drive the policy as the cache store does: touch on a hit, admit on a miss."""
    touch, admit = policy.touch, policy.admit
    misses = missed_bytes = 0
    started = time.perf_counter()
    for key, size in zip(trace.keys, trace.sizes, strict=True):
        if key in policy:
            touch(key)
        else:
            misses += 1
            missed_bytes += size
            admit(key, size)
    elapsed = time.perf_counter() - started
    n = len(trace.keys)
    return Result(
        name=name,
        frac=frac,
        miss_ratio=misses / n,
        byte_miss_ratio=missed_bytes / sum(trace.sizes),
        us_per_request=elapsed / n * 1e6,
    )


def loop_floor_us(trace: Trace) -> float:
    """The replay loop with no policy at all, in µs per request."""
    started = time.perf_counter()
    for _key, _size in zip(trace.keys, trace.sizes, strict=True):
        pass
    return (time.perf_counter() - started) / len(trace.keys) * 1e6


def reference_rows(path: Path, frac: float) -> list[Result]:
    """The reference file's rows at ``frac`` that have a byte miss ratio, best first."""
    data = json.loads(path.read_text())
    rows = [
        Result(
            name=f"ref {row['algo']}",
            frac=frac,
            miss_ratio=row["mr"],
            byte_miss_ratio=row["bmr"],
            us_per_request=row["ns_per_req"] / 1000 if "ns_per_req" in row else None,
        )
        for row in data["rows"]
        if row["frac"] == frac and row.get("bmr") is not None
    ]
    return sorted(rows, key=lambda r: r.byte_miss_ratio)


def _is_offline(result: Result) -> bool:
    return result.name.removeprefix("ref ") in OFFLINE


def _shown(refs: list[Result], top: int) -> list[Result]:
    online = [r for r in refs if not _is_offline(r)]
    extra = [r for r in refs if _is_offline(r) or r.name == "ref LRU"]
    return sorted(
        {r.name: r for r in online[:top] + extra}.values(), key=lambda r: r.byte_miss_ratio
    )


def _line(result: Result, best: float | None) -> str:
    us = "" if result.us_per_request is None else f"{result.us_per_request:8.2f}"
    gap = "" if best is None else f"{(result.byte_miss_ratio - best) / best:+8.2%}"
    tag = " (offline)" if _is_offline(result) else ""
    return (
        f"{result.name + tag:<34} {result.frac:>6.2%} {result.miss_ratio:>8.4f} "
        f"{result.byte_miss_ratio:>8.4f} {us:>8} {gap:>8}"
    )


def run_size(trace: Trace, frac: float, reference: Path | None, top: int) -> list[str]:
    capacity = max(1, int(trace.footprint * frac))
    ours = [replay(name, make(capacity), trace, frac) for name, make in POLICIES.items()]
    refs = reference_rows(reference, frac) if reference is not None else []
    online = [r for r in refs if not _is_offline(r)]
    best = online[0].byte_miss_ratio if online else None
    lines = [_line(r, best) for r in ours + _shown(refs, top)]
    if online:
        lines.append(f"{'  best online reference':<34} {online[0].name.removeprefix('ref ')}")
    return lines


def _parse_sizes(text: str) -> list[float]:
    try:
        sizes = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected fractions such as 0.001,0.01, got {text!r}"
        ) from None
    if not sizes or not all(0.0 < s <= 1.0 for s in sizes):
        raise argparse.ArgumentTypeError(f"fractions must be in (0, 1], got {text!r}")
    return sizes


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.bench_eviction")
    parser.add_argument("--trace", type=Path, required=True, help="time,obj_id,size CSV")
    parser.add_argument("--sizes", type=_parse_sizes, default=[0.001, 0.01, 0.1])
    parser.add_argument("--reference", type=Path, default=DEFAULT_REFERENCE)
    parser.add_argument("--limit", type=int, default=None, help="replay only the first N rows")
    parser.add_argument("--top", type=int, default=5, help="best online reference rows shown")
    args = parser.parse_args(argv)
    try:
        trace = load_trace(args.trace, args.limit)
    except (OSError, ValueError) as exc:
        print(f"cannot read trace: {exc}", file=sys.stderr)
        return 2
    reference = args.reference if args.reference.is_file() else None
    print(f"trace {args.trace}: {len(trace.keys)} requests, footprint {trace.footprint} bytes")
    if reference is None:
        print(f"no reference file at {args.reference}; printing our rows only")
    elif json.loads(reference.read_text()).get("footprint") != trace.footprint:
        print("note: this trace is not the reference trace; reference rows are for scale only")
    print(f"{'policy':<34} {'size':>6} {'obj MR':>8} {'byte MR':>8} {'µs/req':>8} {'vs best':>8}")
    for frac in args.sizes:
        print("\n".join(run_size(trace, frac, reference, args.top)))
    print(f"loop floor (same loop, no policy): {loop_floor_us(trace):.2f} µs/req")
    print("ref µs/req were measured on the reference's machine: compare ours with ours LRU")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
