"""Keeping task cancellation intact across libraries that may turn it into an ordinary error.

A background loop that catches broad exceptions to survive outages (``except Exception``,
``except StoreUnavailable``) must still stop when it is cancelled. If a library converts the
``CancelledError`` it received into a connection error, or absorbs it and returns, the loop
would run forever and hang whoever awaits it. ``Task.cancelling()`` still counts the request,
so such loops call :func:`raise_if_cancelling` in their broad ``except`` and once per round.
"""

from __future__ import annotations

import asyncio
import contextlib


def raise_if_cancelling() -> None:
    """Raise ``CancelledError`` if the current task has a pending cancellation request."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def cancel_and_wait(*tasks: asyncio.Task[None] | None) -> None:
    """Cancel ``tasks`` (None entries are skipped) and wait until each one has finished."""
    running = [task for task in tasks if task is not None]
    for task in running:
        task.cancel()
    for task in running:
        with contextlib.suppress(asyncio.CancelledError):
            await task
