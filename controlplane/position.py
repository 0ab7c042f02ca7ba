"""The file that keeps a node's purge-log position, so that it survives restarts and Redis loss.

A position (:class:`cdn_core.purge_follow.LogPosition`) is ``(epoch, entry id)``: the entry id
means something only in the log of that epoch (see :meth:`ControlStore.epoch`). It is stored
twice, as ``"epoch/entry-id"``: in the control plane (per node, written with each ack) and in a
small JSON file under ``[controlplane] state_dir`` (:class:`PositionFile`). The file is what
lets a node that restarts while Redis is away (or after Redis lost its data) know where it was;
the Redis copy covers nodes without a state directory. On start the agent takes the later of the
two (:func:`cdn_core.purge_follow.later`).
"""

from __future__ import annotations

import json
import logging
import os

from cdn_core.purge_follow import LogPosition

log = logging.getLogger(__name__)


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
