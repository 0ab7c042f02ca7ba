"""Request coalescing: concurrent misses for one cache key make one upstream request.

The first request for a key becomes the *leader* of a flight and fetches; the others become
*waiters* and sleep on the flight's :class:`asyncio.Event`, which is set when the leader leaves
its ``async with flight:`` block: its response is stored by then (or was found uncacheable, or
failed). Nobody polls. A waiter that has waited ``wait_s`` goes upstream itself, so a slow
origin cannot hold a crowd hostage.

A response found uncacheable is remembered for ``hit_for_miss_s`` (hit-for-miss): requests for
that key then skip coalescing and go upstream in parallel instead of queueing behind each other.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


class Flight:
    """One upstream fetch in progress, led by one request: ``async with`` it to fetch.

    Leaving the ``async with`` block lands the flight (whatever happened inside it): it
    wakes every waiter, which then finds the outcome in the store. It is the one place a
    flight lands.
    """

    __slots__ = ("_flights", "done", "key")

    def __init__(self, key: str, flights: dict[str, Flight]) -> None:
        self.key = key
        self.done = asyncio.Event()
        self._flights = flights

    async def __aenter__(self) -> Flight:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._flights.get(self.key) is self:
            del self._flights[self.key]
        self.done.set()


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
        """A new flight for ``key`` for the caller to lead (``async with``), or None when one
        is already in the air."""
        if key in self._flights:
            return None
        flight = self._flights[key] = Flight(key, self._flights)
        return flight

    async def wait(self, key: str) -> bool:
        """Wait for the flight of ``key`` to land; False when the wait cap ran out first."""
        flight = self._flights.get(key)
        if flight is None:
            return True
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
