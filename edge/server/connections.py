"""The open connections of one server: admission, counters, and waiting for them to close.

A :class:`ConnectionRegistry` admits a connection while fewer than ``max_connections`` are
open; one over the limit is counted as refused (the protocol answers it 503). The counters
are plain integers for the metrics adapter to read.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Protocol


class Connection(Protocol):
    """What the registry and the server's shutdown need of a connection."""

    def begin_drain(self) -> None: ...

    def abort(self) -> None: ...

    @property
    def task(self) -> asyncio.Task[None] | None: ...


@dataclass(slots=True)
class ConnectionStats:
    """Counters since the server started: ``open`` now, ``accepted`` and ``refused`` in all."""

    open: int = 0
    accepted: int = 0
    refused: int = 0


class ConnectionRegistry:
    """The connections of one server, up to ``max_connections`` at once."""

    __slots__ = ("_connections", "_emptied", "_rejected", "max_connections", "stats")

    def __init__(self, max_connections: int) -> None:
        self.max_connections = max_connections
        self.stats = ConnectionStats()
        self._connections: set[Connection] = set()
        self._rejected: set[Connection] = set()  # answered 503, closing
        self._emptied: asyncio.Event | None = None

    def admit(self, connection: Connection) -> bool:
        if len(self._connections) >= self.max_connections:
            self.stats.refused += 1
            self._rejected.add(connection)
            return False
        self._connections.add(connection)
        self.stats.accepted += 1
        self.stats.open = len(self._connections)
        return True

    def discard(self, connection: Connection) -> None:
        self._rejected.discard(connection)
        self._connections.discard(connection)
        self.stats.open = len(self._connections)
        if not self._connections and self._emptied is not None:
            self._emptied.set()

    def snapshot(self) -> list[Connection]:
        """The admitted connections still open."""
        return list(self._connections)

    def rejected(self) -> list[Connection]:
        """The connections refused with a 503 that have not closed yet."""
        return list(self._rejected)

    async def wait_empty(self) -> None:
        if not self._connections:
            return
        if self._emptied is None:
            self._emptied = asyncio.Event()
        self._emptied.clear()
        await self._emptied.wait()
