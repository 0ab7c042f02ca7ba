"""Where a node is in the purge log, kept so that it survives restarts and Redis loss.

A position is ``(epoch, entry id)``: the entry id means something only in the log of that
epoch (see :meth:`ControlStore.epoch`). It is stored twice, as ``"epoch/entry-id"``: in the
control plane (per node, written with each ack) and in a small JSON file under
``[controlplane] state_dir``. The file is what lets a node that restarts while Redis is away
(or after Redis lost its data) know where it was; the Redis copy covers nodes without a state
directory. On start the agent takes the later of the two.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass

from controlplane.store import position_key

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LogPosition:
    epoch: str
    entry: str

    def __str__(self) -> str:
        return f"{self.epoch}/{self.entry}"

    @classmethod
    def parse(cls, text: str | None) -> LogPosition | None:
        if not text:
            return None
        epoch, sep, entry = text.partition("/")
        try:
            position_key(entry)
        except ValueError:
            return None
        return cls(epoch, entry) if sep and epoch else None


def later(a: LogPosition | None, b: LogPosition | None, *, epoch: str) -> LogPosition | None:
    """The later of two positions, preferring one of the current ``epoch``."""
    candidates = [p for p in (a, b) if p is not None]
    current = [p for p in candidates if p.epoch == epoch]
    pool = current or candidates
    return max(pool, key=lambda p: position_key(p.entry), default=None)


class PositionFile:
    """``<state_dir>/<cluster>.<node>.purge-position.json``, replaced atomically."""

    def __init__(self, state_dir: str, cluster: str, node: str) -> None:
        self.path = os.path.join(state_dir, f"{cluster}.{node}.purge-position.json")

    def load(self) -> LogPosition | None:
        try:
            with open(self.path, encoding="utf-8") as file:
                return LogPosition.parse(json.load(file).get("position"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, AttributeError) as exc:
            log.warning("ignoring unreadable purge position file %s: %s", self.path, exc)
            return None

    def save(self, position: LogPosition) -> None:
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        tmp = f"{self.path}.tmp"
        with open(tmp, "w", encoding="utf-8") as file:
            json.dump({"position": str(position)}, file)
        os.replace(tmp, self.path)
