"""The control-plane store on Redis: registry keys with TTLs, the purge log as a Stream.

The client is injected (``RedisControlStore(client, cluster)``); :meth:`from_url` builds one
that fails fast (one quick retry, short connect timeout) so that a dead Redis costs the data
plane nothing. Every redis-py error surfaces as :class:`StoreUnavailable`.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Collection, Sequence
from contextlib import asynccontextmanager
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from cdn_core.errors import PurgeError
from cdn_core.purge import PurgeRule, from_wire, to_wire
from cdn_core.registry import ClusterSnapshot, NodeReport
from controlplane.codec import report_from_json, report_to_json
from controlplane.keys import Keys
from controlplane.store import LOG_START, LogEntry, StoreUnavailable, position_key

log = logging.getLogger(__name__)

ACK_TTL_S = 86400
ACK_FEED_MAXLEN = 10_000


@asynccontextmanager
async def _mapped_errors() -> AsyncIterator[None]:
    try:
        yield
    except (RedisError, OSError) as exc:
        raise StoreUnavailable(f"control plane unreachable: {exc}") from exc


class RedisControlStore:
    """:class:`~controlplane.store.ControlStore` on one Redis (client injected)."""

    def __init__(self, client: Redis, cluster: str) -> None:
        # Replies are str (decode_responses=True) and parsed right here; redis-py's own reply
        # types cover both decodings, so the client is used untyped.
        self._redis: Any = client
        self._keys = Keys(cluster)
        self._cluster = cluster

    @classmethod
    def from_url(cls, url: str, cluster: str) -> RedisControlStore:
        client = Redis.from_url(
            url,
            decode_responses=True,
            socket_connect_timeout=1.0,
            socket_timeout=5.0,
            retry=Retry(NoBackoff(), 1),
        )
        return cls(client, cluster)

    @property
    def cluster(self) -> str:
        return self._cluster

    async def close(self) -> None:
        await self._redis.aclose()

    # -- registry ------------------------------------------------------------------------------

    async def publish_report(self, report: NodeReport, ttl_s: float) -> None:
        async with _mapped_errors(), self._redis.pipeline(transaction=True) as pipe:
            pipe.set(self._keys.node(report.node), report_to_json(report), px=int(ttl_s * 1000))
            pipe.sadd(self._keys.nodes, report.node)
            await pipe.execute()

    async def remove_report(self, node: str) -> None:
        async with _mapped_errors():
            await self._redis.delete(self._keys.node(node))

    async def snapshot(self) -> ClusterSnapshot:
        async with _mapped_errors():
            names = sorted(await self._redis.smembers(self._keys.nodes))
            values = await self._redis.mget([self._keys.node(n) for n in names]) if names else []
        nodes: dict[str, NodeReport] = {}
        for name, value in zip(names, values, strict=True):
            if value is None:
                continue
            try:
                nodes[name] = report_from_json(value)
            except (ValueError, KeyError, TypeError) as exc:
                log.warning("ignoring malformed report of node %s: %s", name, exc)
        return ClusterSnapshot(taken_at=time.time(), nodes=nodes)

    # -- purge log -----------------------------------------------------------------------------

    async def epoch(self) -> str:
        async with _mapped_errors():
            await self._redis.set(self._keys.epoch, uuid.uuid4().hex, nx=True)
            value = await self._redis.get(self._keys.epoch)
        if not isinstance(value, str):
            raise StoreUnavailable("the purge log epoch vanished while being read")
        return value

    async def append_purge(self, rule: PurgeRule, *, maxlen: int, issued_at: float) -> LogEntry:
        fields = {"rule": json.dumps(to_wire(rule)), "at": repr(issued_at)}
        async with _mapped_errors():
            position = await self._redis.xadd(
                self._keys.purges, fields, maxlen=maxlen, approximate=True
            )
        return LogEntry(position=str(position), rule=rule, issued_at=issued_at)

    async def read_purges(
        self, after: str, *, count: int = 500, block_s: float | None = None
    ) -> list[LogEntry]:
        async with _mapped_errors():
            if block_s is None:
                rows = await self._redis.xrange(self._keys.purges, f"({after}", "+", count=count)
            else:
                reply = await self._redis.xread(
                    {self._keys.purges: after}, count=count, block=max(1, int(block_s * 1000))
                )
                rows = reply[0][1] if reply else []
        return [_entry(row) for row in rows]

    async def trimmed_past(self, after: str) -> bool:
        # MAXLEN trims only the head of the stream. If the entry at ``after`` is still there,
        # nothing after it was trimmed; if it is gone, assume the worst (a reader that far
        # behind drops its cache; a false alarm costs a refill, a miss would serve purged data).
        key = self._keys.purges
        async with _mapped_errors():
            if not await self._redis.exists(key):
                return False
            if after == LOG_START:
                info = await self._redis.xinfo_stream(key)
                return int(info.get("entries-added", 0)) > int(info.get("length", 0))
            if await self._redis.xrange(key, after, after, count=1):
                return False
            first = await self._redis.xrange(key, "-", "+", count=1)
        return bool(first) and position_key(first[0][0]) > position_key(after)

    # -- acknowledgements ----------------------------------------------------------------------

    async def ack(self, node: str, purge_ids: Sequence[str], *, position: str) -> None:
        now = repr(time.time())
        async with _mapped_errors(), self._redis.pipeline(transaction=True) as pipe:
            for purge_id in purge_ids:
                pipe.hset(self._keys.acks(purge_id), node, now)
                pipe.expire(self._keys.acks(purge_id), ACK_TTL_S)
            pipe.set(self._keys.position(node), position)
            if purge_ids:
                feed = {"node": node, "ids": " ".join(purge_ids)}
                pipe.xadd(self._keys.ack_feed, feed, maxlen=ACK_FEED_MAXLEN, approximate=True)
            await pipe.execute()

    async def acks(self, purge_id: str) -> dict[str, float]:
        async with _mapped_errors():
            raw = await self._redis.hgetall(self._keys.acks(purge_id))
        return {node: float(at) for node, at in raw.items()}

    async def wait_acks(
        self, purge_id: str, nodes: Collection[str], *, timeout_s: float
    ) -> dict[str, float]:
        deadline = time.monotonic() + timeout_s
        async with _mapped_errors():
            # Note the feed's end before reading the hash, so no ack slips between the two.
            last = await self._redis.xrevrange(self._keys.ack_feed, count=1)
            cursor = last[0][0] if last else LOG_START
            acked = await self.acks(purge_id)
            while not set(nodes) <= acked.keys():
                left_ms = int((deadline - time.monotonic()) * 1000)
                if left_ms <= 0:
                    break
                reply = await self._redis.xread(
                    {self._keys.ack_feed: cursor}, count=1000, block=min(left_ms, 1000)
                )
                for entry_id, fields in reply[0][1] if reply else []:
                    cursor = entry_id
                    if purge_id in fields.get("ids", "").split():
                        acked.setdefault(fields.get("node", ""), time.time())
        return acked

    async def load_position(self, node: str) -> str | None:
        async with _mapped_errors():
            value = await self._redis.get(self._keys.position(node))
        return value if isinstance(value, str) else None


def _entry(row: tuple[str, dict[str, Any]]) -> LogEntry:
    position, fields = row
    try:
        rule: PurgeRule | None = from_wire(json.loads(fields["rule"]))
        issued_at = float(fields.get("at", 0.0))
    except (KeyError, ValueError, PurgeError) as exc:
        log.error("unreadable purge log entry %s (readers drop their cache): %s", position, exc)
        rule, issued_at = None, 0.0
    return LogEntry(position=position, rule=rule, issued_at=issued_at)
