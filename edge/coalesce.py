"""Request coalescing: concurrent misses for one cache key make one upstream request.

The first request for a key becomes the *leader* of a flight and fetches; the others become
*waiters* and sleep on the flight's :class:`asyncio.Event`, which the leader sets when its
response is stored (or found uncacheable, or failed). Nobody polls. A waiter that has waited
``wait_s`` goes upstream itself, so a slow origin cannot hold a crowd hostage.

A response found uncacheable is remembered for ``hit_for_miss_s`` (hit-for-miss): requests for
that key then skip coalescing and go upstream in parallel instead of queueing behind each other.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


class Flight:
    """One upstream fetch in progress; ``done`` is set when its outcome is in the store."""

    __slots__ = ("done", "waiters")

    def __init__(self) -> None:
        self.done = asyncio.Event()
        self.waiters = 0


class Coalescer:
    """Single-flight bookkeeping per cache key, plus the hit-for-miss memory."""

    def __init__(
        self,
        *,
        wait_s: float,
        clock: Callable[[], float] = time.monotonic,
        max_hit_for_miss: int = 100_000,
    ) -> None:
        self.wait_s = wait_s
        self._clock = clock
        self._flights: dict[str, Flight] = {}
        self._uncacheable: dict[str, float] = {}
        self._max_hit_for_miss = max_hit_for_miss

    def lead(self, key: str) -> Flight | None:
        """Start a flight for ``key`` and return it, or None when one is already in the air."""
        if key in self._flights:
            return None
        flight = Flight()
        self._flights[key] = flight
        return flight

    def in_flight(self, key: str) -> bool:
        return key in self._flights

    def land(self, key: str, flight: Flight) -> None:
        """End the leader's flight and wake every waiter."""
        if self._flights.get(key) is flight:
            del self._flights[key]
        flight.done.set()

    async def wait(self, key: str) -> bool:
        """Wait for the flight of ``key`` to land; False when the wait cap ran out first."""
        flight = self._flights.get(key)
        if flight is None:
            return True
        flight.waiters += 1
        try:
            async with asyncio.timeout(self.wait_s):
                await flight.done.wait()
        except TimeoutError:
            return False
        return True

    # -- hit-for-miss ----------------------------------------------------------------------

    def is_uncacheable(self, key: str) -> bool:
        until = self._uncacheable.get(key)
        if until is None:
            return False
        if until > self._clock():
            return True
        del self._uncacheable[key]
        return False

    def mark_uncacheable(self, key: str, ttl_s: float) -> None:
        if ttl_s <= 0:
            return
        if len(self._uncacheable) >= self._max_hit_for_miss:
            # Bounded memory: drop the oldest marker (dicts keep insertion order).
            del self._uncacheable[next(iter(self._uncacheable))]
        self._uncacheable[key] = self._clock() + ttl_s

    def forget_uncacheable(self, key: str) -> None:
        self._uncacheable.pop(key, None)
