"""The DNS router process: UDP and TCP listeners, and the control-plane polling loop.

Every ``refresh_s`` the router reads a :class:`ClusterSnapshot`, recomputes the routing table
(:func:`cdn_core.routing.decide_routes`) and swaps it in; queries then only do a prefix match
and copy precomputed answer records. When the control plane cannot be read the last table stays
in use, so the router keeps answering while Redis is down.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import itertools
import logging
import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry

from cdn_core.config import Config, HostPort, Role, RoutingPolicy
from cdn_core.registry import ClusterSnapshot
from cdn_core.routing import (
    ClientRoute,
    IPAddress,
    NetworkTable,
    RoutingParams,
    RoutingState,
    RoutingTable,
    decide_routes,
    route_client,
)
from router import wire
from router.answer import NO_EDNS_LIMIT, OUR_PAYLOAD, TCP_LIMIT, Reply, Responder, Zone
from router.metrics import RouterMetrics
from router.ratelimit import RateLimiter
from router.source import SnapshotSource

log = logging.getLogger(__name__)

MAX_TCP_CONNECTIONS = 256
MAX_TCP_QUERIES = 1000
TCP_IDLE_S = 10.0
SNAPSHOT_TIMEOUT_S = 2.0
_MAX_CACHED_RECORDS = 4096


class DnsRouter:
    """Authoritative DNS for ``dns.zone`` that answers each client with its best edge(s)."""

    def __init__(
        self,
        config: Config,
        source: SnapshotSource,
        *,
        registry: CollectorRegistry,
        policy: RoutingPolicy | None = None,
        refresh_s: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
        fast_path: bool = True,
    ) -> None:
        self.config = config
        self.source = source
        self.params = RoutingParams.from_dns(config.dns, policy=policy)
        self.refresh_s = refresh_s
        self.networks = NetworkTable(config.client_networks)
        self.zone = Zone(config)
        self.responder = Responder(self.zone, self.route)
        edges = [n.name for n in config.nodes if n.role is Role.EDGE]
        self.metrics = RouterMetrics(
            registry, edges=edges, networks=[n.name for n in config.client_networks]
        )
        self.rate_limiter = RateLimiter(
            config.dns.rate_limit_qps, config.dns.rate_limit_burst, clock=clock
        )
        self.fast_path = fast_path
        self.last_refresh: float | None = None
        self._clock = clock
        self._hosts = frozenset(
            name.to_wire() for name in self.zone.hosts
        )  # config lower-cases them
        self._records: dict[tuple[int, tuple[str, ...]], bytes] = {}
        self._counter = itertools.count()
        self._state = RoutingState()
        self.table = self._decide(ClusterSnapshot(taken_at=time.time()))
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None
        self._tcp_writers: set[asyncio.StreamWriter] = set()
        self._poller: asyncio.Task[None] | None = None

    # -- routing table -----------------------------------------------------------------------

    def _decide(self, snapshot: ClusterSnapshot) -> RoutingTable:
        table, self._state = decide_routes(
            edges=self.config.nodes,
            networks=self.config.client_networks,
            snapshot=snapshot,
            state=self._state,
            params=self.params,
            now=snapshot.taken_at,
        )
        return table

    async def refresh(self) -> bool:
        """Read the control plane once and install the new table; False if it was unreadable."""
        try:
            snapshot = await asyncio.wait_for(self.source.snapshot(), SNAPSHOT_TIMEOUT_S)
        except Exception as exc:  # any store failure: keep serving the last table
            log.warning("cannot read the control plane, keeping the last routing table: %s", exc)
            self.metrics.snapshot_errors.inc()
            return False
        self.table = self._decide(snapshot)
        self.last_refresh = self._clock()
        return True

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.refresh_s)
            await self.refresh()

    def route(self, address: IPAddress) -> ClientRoute:
        started = time.perf_counter()
        route = route_client(self.table, self.networks, address, counter=next(self._counter))
        self.metrics.route(route, time.perf_counter() - started)
        return route

    # -- queries -----------------------------------------------------------------------------

    def handle(self, data: bytes, source: str, *, tcp: bool) -> bytes | None:
        """The response to one query from ``source``, or None to send nothing."""
        try:
            reply = self._fast(data, source, tcp) if self.fast_path else None
            if reply is None:
                reply = self.responder.respond(data, _address(source), tcp=tcp)
        except Exception:  # a bug must cost one query, never the server
            log.exception("failed to answer a query from %s", source)
            self.metrics.drop("error")
            return None
        if reply is None:
            self.metrics.drop("unreadable")
            return None
        self.metrics.reply(reply.qtype, reply.rcode)
        return reply.wire

    def _fast(self, data: bytes, source: str, tcp: bool) -> Reply | None:
        query = wire.parse_simple(data)
        if query is None or query.qtype not in (wire.TYPE_A, wire.TYPE_AAAA):
            return None
        if query.qname not in self._hosts:
            return None
        ecs = query.ecs
        client = ecs.client() if ecs is not None and ecs.source_len else _address(source)
        route = self.route(client)
        v6 = query.qtype == wire.TYPE_AAAA
        addresses = tuple(e.address for e in route.edges if (":" in e.address) is v6)
        if not addresses:
            return None  # NODATA: the general path adds the SOA
        records = self._records.get((query.qtype, addresses))
        if records is None:
            records = wire.answer_records(addresses, query.qtype, self.zone.ttl_s)
            if len(self._records) >= _MAX_CACHED_RECORDS:
                self._records.clear()
            self._records[(query.qtype, addresses)] = records
        opt = wire.opt_record(OUR_PAYLOAD, ecs, route.scope) if query.edns else b""
        out = wire.response(query, len(addresses), records, opt)
        if len(out) > _limit(query, tcp):
            return None  # the general path truncates
        return Reply(wire=out, qtype=query.qtype, rcode=0, route=route)

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self, listen: HostPort | None = None) -> None:
        """Read the control plane once, then listen on UDP and TCP and start polling."""
        listen = listen or self.config.dns.listen
        await self.refresh()
        loop = asyncio.get_running_loop()
        self._udp, _ = await loop.create_datagram_endpoint(
            lambda: _UdpProtocol(self), local_addr=(listen.host, listen.port)
        )
        self._tcp = await asyncio.start_server(self._serve_tcp, listen.host, listen.port)
        self._poller = asyncio.create_task(self._poll())
        log.info("router answering for %s on %s (udp, tcp)", self.config.dns.zone, listen)

    async def close(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
        if self._udp is not None:
            self._udp.close()
        if self._tcp is not None:
            self._tcp.close()
            for writer in list(self._tcp_writers):
                writer.close()
            await self._tcp.wait_closed()

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self._tcp_writers) >= MAX_TCP_CONNECTIONS:
            writer.close()
            return
        self._tcp_writers.add(writer)
        peer = writer.get_extra_info("peername")
        source = peer[0] if peer else "0.0.0.0"
        try:
            for _ in range(MAX_TCP_QUERIES):
                size = await asyncio.wait_for(reader.readexactly(2), TCP_IDLE_S)
                data = await asyncio.wait_for(reader.readexactly(int.from_bytes(size)), TCP_IDLE_S)
                out = self.handle(data, source, tcp=True)
                if out is None:
                    break
                writer.write(len(out).to_bytes(2, "big") + out)
                await writer.drain()
        except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
            pass
        finally:
            self._tcp_writers.discard(writer)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, router: DnsRouter) -> None:
        self.router = router
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # always a datagram one here

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        source = str(addr[0])
        if not self.router.rate_limiter.allow(source):
            self.router.metrics.drop("rate_limited")
            return
        out = self.router.handle(data, source, tcp=False)
        if out is not None and self.transport is not None:
            self.transport.sendto(out, addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("udp error: %s", exc)


@functools.lru_cache(maxsize=4096)
def _address(source: str) -> IPAddress:
    return ipaddress.ip_address(source.partition("%")[0])


def _limit(query: wire.SimpleQuery, tcp: bool) -> int:
    if tcp:
        return TCP_LIMIT
    if not query.edns:
        return NO_EDNS_LIMIT
    return max(NO_EDNS_LIMIT, min(query.payload, OUR_PAYLOAD))
