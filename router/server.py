"""The DNS router process: UDP and TCP listeners fed by the control plane's snapshots.

Every ``refresh_s`` the router's :class:`~controlplane.feed.SnapshotFeed` (the one the nodes
use) reads a :class:`ClusterSnapshot`; the router recomputes the routing table
(:func:`cdn_core.routing.decide_routes`) and swaps it in. Queries of the plain shape are
answered from caches (routes per client, responses per question and route, whole responses per
exact query and source) that the general path fills; swapping the table empties the
route-dependent ones. When the control plane cannot be read the last table stays
in use, so the router keeps answering while Redis is down.

TCP connections are capped at :data:`MAX_TCP_CONNECTIONS` open at once, and at
``dns.tcp_connections_per_source`` from one source address, so that one address cannot take
them all; a connection past either cap is closed as soon as it is accepted (and counted).
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
from dataclasses import dataclass

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
from controlplane.feed import SnapshotFeed, SnapshotSource
from router import fastpath, wire
from router.answer import NO_EDNS_LIMIT, OUR_PAYLOAD, TCP_LIMIT, Responder, Zone
from router.metrics import DECISION_SAMPLE, RouteKey, RouterMetrics
from router.ratelimit import ConnectionLimit, RateLimiter

log = logging.getLogger(__name__)

MAX_TCP_CONNECTIONS = 256
MAX_TCP_QUERIES = 1000
CLOSE_WAIT_S = 2.0
TCP_IDLE_S = 10.0
_MAX_CACHED_CLIENTS = 65536
_MAX_CACHED_QUERIES = 65536
_ROUTED_QTYPES = frozenset((wire.TYPE_A, wire.TYPE_AAAA, wire.TYPE_ANY))


@dataclass(frozen=True, slots=True)
class RouteUse:
    """A client's route as the query path uses it: what responses depend on, what it counts."""

    route: ClientRoute
    answer_key: tuple[tuple[str, ...], int]
    metric_key: RouteKey


@dataclass(frozen=True, slots=True)
class _Hit:
    """A response without its id, with what the metrics count for it."""

    tail: bytes
    qtype: int
    rcode: int
    route_key: RouteKey | None


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
        self.params = RoutingParams.from_dns(config.dns, policy=policy)
        self.refresh_s = refresh_s
        self.networks = NetworkTable(config.client_networks)
        self.zone = Zone(config)
        self.responder = Responder(self.zone, self._general_route)
        edges = [n.name for n in config.nodes if n.role is Role.EDGE]
        self.metrics = RouterMetrics(
            registry, edges=edges, networks=[n.name for n in config.client_networks]
        )
        self.rate_limiter = RateLimiter(
            config.dns.rate_limit_qps, config.dns.rate_limit_burst, clock=clock
        )
        self.tcp_limit = ConnectionLimit(config.dns.tcp_connections_per_source, MAX_TCP_CONNECTIONS)
        self.fast_path = fast_path
        self._clock = clock
        self._hosts = frozenset(
            name.to_wire() for name in self.zone.hosts
        )  # config lower-cases them
        self._clients: dict[str | bytes, RouteUse] = {}
        self._answers = fastpath.AnswerCache()
        self._exact: dict[tuple[bytes, str, bool], _Hit] = {}
        self._decisions = 0
        self._counter = itertools.count()
        self._state = RoutingState()
        initial = ClusterSnapshot(taken_at=time.time())
        self.table = self._decide(initial)
        self.feed = SnapshotFeed(
            source,
            initial=initial,
            interval_s=refresh_s,
            on_snapshot=self._install,
            on_error=self.metrics.snapshot_errors.inc,
            clock=clock,
            name="router",
        )
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None
        self._tcp_writers: set[asyncio.StreamWriter] = set()

    # -- routing table -----------------------------------------------------------------------

    @property
    def table(self) -> RoutingTable:
        return self._table

    @table.setter
    def table(self, table: RoutingTable) -> None:
        """Install a routing table; cached routes and routed answers came from the old one."""
        self._table = table
        self._clients.clear()
        self._exact.clear()

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

    def _install(self, snapshot: ClusterSnapshot) -> None:
        self.table = self._decide(snapshot)

    @property
    def last_refresh(self) -> float | None:
        """When (the router's clock) the control plane was last read, None if never."""
        return self.feed.last_refresh

    async def refresh(self) -> bool:
        """Read the control plane once and install the new table; False if it was unreadable."""
        return await self.feed.refresh()

    def route(self, address: IPAddress) -> ClientRoute:
        """The route for one client address, from the current table (not cached, not counted)."""
        return route_client(self.table, self.networks, address, counter=next(self._counter))

    def _sampled(self) -> bool:
        """True for one decision in DECISION_SAMPLE (the first one included): time that one."""
        self._decisions += 1
        return self._decisions % DECISION_SAMPLE == 1

    def _general_route(self, address: IPAddress) -> ClientRoute:
        if not self._sampled():
            return self.route(address)
        started = time.perf_counter()
        route = self.route(address)
        self.metrics.decision_seconds.observe(time.perf_counter() - started)
        return route

    def _client_route(self, query: wire.SimpleQuery, source: str) -> RouteUse:
        if not self._sampled():
            return self._lookup_route(query, source)
        started = time.perf_counter()
        use = self._lookup_route(query, source)
        self.metrics.decision_seconds.observe(time.perf_counter() - started)
        return use

    def _lookup_route(self, query: wire.SimpleQuery, source: str) -> RouteUse:
        """The route for the query's client subnet or source, cached per client until the next
        table (the round-robin policy rotates per query, so it is never cached)."""
        ecs = query.ecs
        key: str | bytes = ecs.key if ecs is not None and ecs.source_len else source
        use = self._clients.get(key)
        if use is not None:
            return use
        client = ecs.client() if ecs is not None and ecs.source_len else _address(source)
        use = self._route_use(self.route(client))
        if self.table.policy is not RoutingPolicy.ROUND_ROBIN:
            if len(self._clients) >= _MAX_CACHED_CLIENTS:
                self._clients.clear()
            self._clients[key] = use
        return use

    def _route_use(self, route: ClientRoute) -> RouteUse:
        addresses = tuple(e.address for e in route.edges)
        return RouteUse(route, (addresses, route.scope), self.metrics.route_key(route))

    # -- queries -----------------------------------------------------------------------------

    def handle(self, data: bytes, source: str, *, tcp: bool) -> bytes | None:
        """The response to one query from ``source``, or None to send nothing."""
        try:
            out = self._fast(data, source, tcp) if self.fast_path else None
            if out is not None:
                return out
            reply = self.responder.respond(data, _address(source), tcp=tcp)
        except Exception:  # a bug must cost one query, never the server
            log.exception("failed to answer a query from %s", source)
            self.metrics.drop("error")
            return None
        if reply is None:
            self.metrics.drop("unreadable")
            return None
        self.metrics.reply(reply.qtype, reply.rcode)
        if reply.route is not None:
            self.metrics.count_route(self.metrics.route_key(reply.route))
        return reply.wire

    def _fast(self, data: bytes, source: str, tcp: bool) -> bytes | None:
        """The answer from the response caches (filled from the general path), or None.

        The first cache holds whole responses by the exact query (all but its id), its source
        and transport, until the routing table changes; the second holds patchable responses
        (:mod:`router.fastpath`) by everything they depend on.
        """
        exact_key = (data[2:], source, tcp)
        hit = self._exact.get(exact_key)
        if hit is None:
            hit = self._templated(data, source, tcp)
            if hit is None:
                return None
            if self.table.policy is not RoutingPolicy.ROUND_ROBIN:  # it rotates per query
                if len(self._exact) >= _MAX_CACHED_QUERIES:
                    self._exact.clear()
                self._exact[exact_key] = hit
        self.metrics.reply(hit.qtype, hit.rcode)
        if hit.route_key is not None:
            self.metrics.count_route(hit.route_key)
        return data[:2] + hit.tail

    def _templated(self, data: bytes, source: str, tcp: bool) -> _Hit | None:
        query = wire.parse_simple(data)
        if query is None:
            return None
        qtype = query.qtype
        use = None
        if qtype in _ROUTED_QTYPES and query.qname in self._hosts:
            use = self._client_route(query, source)
        ecs = query.ecs
        key = (
            query.qname,
            qtype,
            _limit(query, tcp),
            query.payload is None,
            None if ecs is None else (ecs.family, ecs.source_len),
            None if use is None else use.answer_key,
        )
        cached = self._answers.get(key)
        if cached is None:
            return self._learn(key, data, query, source, tcp, use)
        out = fastpath.patch(data, query, cached)
        return _Hit(out[2:], cached.qtype, cached.rcode, None if use is None else use.metric_key)

    def _learn(
        self,
        key: tuple[object, ...],
        data: bytes,
        query: wire.SimpleQuery,
        source: str,
        tcp: bool,
        use: RouteUse | None,
    ) -> _Hit | None:
        """Answer through the general path (with the route already chosen) and cache it."""
        responder = Responder(self.zone, self.route if use is None else lambda _: use.route)
        reply = responder.respond(data, _address(source), tcp=tcp)
        if reply is None:
            return None
        route_key = None
        if use is not None and reply.route is use.route:
            self._answers.learn(key, data, query, reply.wire, reply.qtype, reply.rcode)
            route_key = use.metric_key
        elif use is None and reply.route is None:
            self._answers.learn(key, data, query, reply.wire, reply.qtype, reply.rcode)
        elif reply.route is not None:  # the general path routed a name we did not expect to
            route_key = self.metrics.route_key(reply.route)
        return _Hit(reply.wire[2:], reply.qtype, reply.rcode, route_key)

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self, listen: HostPort | None = None) -> None:
        """Read the control plane once and keep polling it, then listen on UDP and TCP."""
        listen = listen or self.config.dns.listen
        await self.feed.start()
        try:
            loop = asyncio.get_running_loop()
            self._udp, _ = await loop.create_datagram_endpoint(
                lambda: _UdpProtocol(self), local_addr=(listen.host, listen.port)
            )
            self._tcp = await asyncio.start_server(self._serve_tcp, listen.host, listen.port)
        except BaseException:
            await self.close()
            raise
        log.info("router answering for %s on %s (udp, tcp)", self.config.dns.zone, listen)

    async def close(self) -> None:
        await self.feed.stop()
        if self._udp is not None:
            self._udp.close()
        if self._tcp is not None:
            self._tcp.close()
            for writer in list(self._tcp_writers):
                writer.transport.abort()
            # A connection accepted just before close() may not be tracked yet; it ends at its
            # idle timeout, and shutting down does not wait for that.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(CLOSE_WAIT_S):
                    await self._tcp.wait_closed()

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        source = str(peer[0]) if peer else "0.0.0.0"
        refusal = self.tcp_limit.open(source)
        if refusal is not None:
            self.metrics.refuse_connection(refusal)
            writer.close()
            return
        self._tcp_writers.add(writer)
        try:
            for _ in range(MAX_TCP_QUERIES):
                async with asyncio.timeout(TCP_IDLE_S):
                    size = await reader.readexactly(2)
                    data = await reader.readexactly(int.from_bytes(size))
                out = self.handle(data, source, tcp=True)
                if out is None:
                    break
                writer.write(len(out).to_bytes(2, "big") + out)
                await writer.drain()
        except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
            pass
        finally:
            self._tcp_writers.discard(writer)
            self.tcp_limit.close(source)
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
    """The largest response the query invites (as :func:`router.answer._udp_limit`)."""
    if tcp:
        return TCP_LIMIT
    if query.payload is None:
        return NO_EDNS_LIMIT
    return max(NO_EDNS_LIMIT, min(query.payload, OUR_PAYLOAD))
