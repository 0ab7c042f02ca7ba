"""A loop timer that is cheap to push back: one per connection and purpose.

A keep-alive connection moves its idle and head deadlines on every request. Cancelling and
re-arming a ``loop.call_at`` each time costs two timer-heap operations per request, so a
:class:`Deadline` keeps one handle and moves only the deadline it checks: when the handle
fires before the current deadline (it was pushed back), it re-arms itself for the rest. The
handle is replaced only when a deadline moves earlier than the pending one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class Deadline:
    """Calls ``callback`` once ``delay`` seconds after the latest :meth:`set`, unless cleared."""

    __slots__ = ("_armed", "_callback", "_handle", "_loop", "_when")

    def __init__(self, loop: asyncio.AbstractEventLoop, callback: Callable[[], None]) -> None:
        self._loop = loop
        self._callback = callback
        self._handle: asyncio.TimerHandle | None = None
        self._when = 0.0
        self._armed = False

    @property
    def armed(self) -> bool:
        return self._armed

    def set(self, delay: float) -> None:
        when = self._loop.time() + delay
        self._when = when
        self._armed = True
        handle = self._handle
        if handle is None:
            self._handle = self._loop.call_at(when, self._fire)
        elif handle.when() > when:
            handle.cancel()
            self._handle = self._loop.call_at(when, self._fire)

    def clear(self) -> None:
        """Disarm; the pending handle, if any, fires into nothing (or is reused by set)."""
        self._armed = False

    def cancel(self) -> None:
        """Disarm and drop the handle (the connection is gone)."""
        self._armed = False
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _fire(self) -> None:
        self._handle = None
        if not self._armed:
            return
        if self._loop.time() < self._when:
            self._handle = self._loop.call_at(self._when, self._fire)
            return
        self._armed = False
        self._callback()
