"""Write-side flow control: the transport's pause/resume as something a writer can await.

The transport calls ``pause_writing`` when its buffer passes the high-water mark and
``resume_writing`` when it has drained below the low one. A writer writes, then awaits
:meth:`FlowControl.drain`, which returns at once while the transport is writable. So a slow
client holds at most the high-water mark plus one write in the node's memory, however large
the response. A client that reads nothing for ``write_timeout_s`` has its connection cut.
"""

from __future__ import annotations

import asyncio


class ClientDisconnected(ConnectionError):
    """The client went away (or was cut off) before the response was written."""


class FlowControl:
    """Pause state of one connection's transport, with an awaitable :meth:`drain`."""

    __slots__ = ("_lost", "_loop", "_timeout_s", "_transport", "_waiter", "writable")

    def __init__(self, transport: asyncio.Transport, *, timeout_s: float) -> None:
        self._loop = asyncio.get_running_loop()
        self._transport = transport
        self._timeout_s = timeout_s
        self._waiter: asyncio.Future[None] | None = None
        self._lost = False
        self.writable = True

    @property
    def lost(self) -> bool:
        return self._lost

    def pause(self) -> None:
        self.writable = False

    def resume(self) -> None:
        self.writable = True
        self._wake(None)

    def connection_lost(self) -> None:
        self._lost = True
        self.writable = False
        self._wake(ClientDisconnected("the client closed the connection"))

    async def drain(self) -> None:
        """Return once the transport takes more data; raise :class:`ClientDisconnected` if the
        connection is gone or stays paused for ``timeout_s`` (the connection is then cut)."""
        if self.writable:
            return
        if self._lost:
            raise ClientDisconnected("the client closed the connection")
        waiter = self._waiter
        if waiter is None:
            waiter = self._waiter = self._loop.create_future()
        timer = self._loop.call_later(self._timeout_s, self._timed_out)
        try:
            await asyncio.shield(waiter)
        finally:
            timer.cancel()

    def _timed_out(self) -> None:
        self._wake(ClientDisconnected("the client stopped reading the response"))
        self._transport.abort()

    def _wake(self, exc: Exception | None) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is None or waiter.done():
            return
        if exc is None:
            waiter.set_result(None)
        else:
            waiter.set_exception(exc)
            waiter.exception()  # retrieved: no "exception never retrieved" if nobody waits
