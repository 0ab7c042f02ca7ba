"""Background refreshes (stale-while-revalidate, RFC 5861 §3).

A stale response that ``stale-while-revalidate`` allows is served at once, and
:meth:`Refresher.later` refetches it in a background task that leads the key's flight, so that a
refresh and a miss of one key never both go upstream. The refetch is conditional when it can
be (RFC 9111 §4.3.1): a 304 freshens the stored copy (§4.3.4), a storable answer replaces it.
At most :data:`MAX_BACKGROUND_REFRESHES` run at once; :meth:`Refresher.close` stops them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable

from cdn_core.cache_policy import (
    Store,
    can_freshen,
    conditional_headers,
    decide_store,
    freshen,
)
from cdn_core.entry import StoredEntry
from cdn_core.errors import UpstreamError
from cdn_core.http import ResponseHead
from edge.coalesce import Flight
from edge.exchange import Exchange
from edge.forward import declared_length, read_all
from edge.parts import Parts

log = logging.getLogger(__name__)

MAX_BACKGROUND_REFRESHES = 64


class Refresher:
    """The background refreshes of one node."""

    def __init__(self, parts: Parts, *, put: Callable[[StoredEntry, bytes], object]) -> None:
        self._sender = parts.sender
        self._store = parts.store
        self._coalescer = parts.coalescer
        self._metrics = parts.metrics
        self._options = parts.options
        self._clock = parts.clock
        self._put = put
        self.running: set[asyncio.Task[None]] = set()

    def later(self, x: Exchange, entry: StoredEntry) -> None:
        """Refresh ``entry`` (stored for ``x``'s key) in the background, unless a fetch of the
        key is already in the air or too many refreshes run."""
        if len(self.running) >= MAX_BACKGROUND_REFRESHES:
            return
        flight = self._coalescer.lead(x.key)
        if flight is None:
            return
        self._metrics.background_refreshes.inc()
        task = asyncio.get_running_loop().create_task(self._refresh(x, entry, flight))
        self.running.add(task)
        task.add_done_callback(self.running.discard)

    async def close(self) -> None:
        """Stop the refreshes still running."""
        tasks = list(self.running)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _refresh(self, x: Exchange, entry: StoredEntry, flight: Flight) -> None:
        async with flight:
            try:
                await self._refetch(x, entry)
            except UpstreamError as exc:
                log.info("background refresh of %s failed: %s", x.key, exc)
            except Exception:
                log.exception("background refresh of %s crashed", x.key)

    async def _refetch(self, x: Exchange, entry: StoredEntry) -> None:
        get = dataclasses.replace(x.head, method="GET")
        conditional = conditional_headers(entry)
        up_head = self._sender.head_for(get, x.client_ip, full_object=True, extra=conditional)
        request_time = self._clock()
        response = await self._sender.send(x.upstream, up_head, None)
        try:
            response_time = self._clock()
            answer = ResponseHead(status=response.status, headers=response.headers)
            if response.status == 304:
                if can_freshen(entry, answer):
                    fresh = freshen(
                        entry, answer, request_time=request_time, response_time=response_time
                    )
                    self._store.replace_head(fresh)
                return
            decision = decide_store(
                get,
                answer,
                request_time=request_time,
                response_time=response_time,
                body_size=declared_length(response.headers),
                options=self._options,
            )
            if isinstance(decision, Store):
                body, _ = await read_all(response, limit=self._options.max_object_bytes)
                if body is not None:
                    self._put(decision.entry, body)
        finally:
            response.release()
