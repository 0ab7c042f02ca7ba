"""A simulated user's network side: DNS through the router, then HTTP from its region.

Blocking sockets on purpose: under locust they are cooperative (gevent patches ``socket``), and
in tests they run in a thread. Each user binds its sockets to its own source address inside its
region's client prefix, because the lab's WAN relays pick the delay from the source address.
"""

from __future__ import annotations

import http.client
import ipaddress
import time
from collections.abc import Callable
from dataclasses import dataclass

import dns.edns
import dns.exception
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype

from loadtest.records import RequestRecord

Clock = Callable[[], float]
DEFAULT_TIMEOUT_S = 10.0
_READ_CHUNK = 64 * 1024


class ResolveError(Exception):
    """The router gave no usable answer."""


def user_source_ip(prefix: str, index: int) -> str:
    """The ``index``-th user's source address in ``prefix``: from ``.1.0`` up, so ``.0.x``
    (probe targets) stay free; one distinct address per user."""
    network = ipaddress.ip_network(prefix)
    offset = 256 + index
    if index < 0 or offset >= network.num_addresses - 1:
        raise ValueError(f"no room for user {index} in {prefix}")
    return str(network.network_address + offset)


@dataclass(frozen=True, slots=True, kw_only=True)
class DnsAnswer:
    addresses: tuple[str, ...]
    expires_at: float


class EdgeResolver:
    """Resolve ``hostname`` at the router with this user's /24 as client subnet (RFC 7871),
    and keep the answer for its TTL (RFC 1035 §3.2.1) as a stub resolver would."""

    def __init__(
        self,
        *,
        server: tuple[str, int],
        hostname: str,
        client_ip: str,
        timeout_s: float = 2.0,
        clock: Clock = time.monotonic,
    ) -> None:
        self._server = server
        self._hostname = hostname
        self._client_ip = client_ip
        self._timeout_s = timeout_s
        self._clock = clock
        self._answer: DnsAnswer | None = None
        self.queries = 0

    def addresses(self, *, refresh: bool = False) -> tuple[str, ...]:
        """The edge addresses; asks the router only when the cached answer expired (or
        ``refresh``)."""
        answer = self._answer
        if refresh or answer is None or self._clock() >= answer.expires_at:
            answer = self._answer = self.query()
        return answer.addresses

    def query(self) -> DnsAnswer:
        ecs = dns.edns.ECSOption(self._client_ip, 24)
        query = dns.message.make_query(self._hostname, "A", use_edns=0, options=[ecs])
        self.queries += 1
        asked_at = self._clock()
        host, port = self._server
        try:
            response = dns.query.udp(
                query, host, port=port, timeout=self._timeout_s, source=self._client_ip
            )
        except (OSError, dns.exception.DNSException) as exc:
            raise ResolveError(f"no answer from the router at {host}:{port}: {exc}") from None
        if response.rcode() != dns.rcode.NOERROR:
            raise ResolveError(f"the router answered {dns.rcode.to_text(response.rcode())}")
        for rrset in response.answer:
            if rrset.rdtype == dns.rdatatype.A:
                addresses = tuple(rdata.address for rdata in rrset)
                return DnsAnswer(addresses=addresses, expires_at=asked_at + rrset.ttl)
        raise ResolveError(f"the router gave no A record for {self._hostname}")


@dataclass(frozen=True, slots=True, kw_only=True)
class _Response:
    status: int
    cache_status: str | None
    ttfb_s: float
    body_bytes: int


class _Retry(Exception):
    """This edge failed before answering; the request may go to the next one (GET is
    idempotent, RFC 9110 §9.2.2)."""


class RegionClient:
    """One simulated user: resolves through the router and fetches from its edge.

    It keeps one keep-alive connection per edge address, bound to ``source_ip``. When an edge
    fails before answering it tries the next address of the answer, then asks the router again
    once; a request that needed another edge counts as a failover.
    """

    def __init__(
        self,
        *,
        region: str,
        source_ip: str,
        resolver: EdgeResolver,
        hostname: str,
        port: int,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        clock: Clock = time.perf_counter,
        wall_clock: Clock = time.time,
    ) -> None:
        self.region = region
        self.source_ip = source_ip
        self._resolver = resolver
        self._hostname = hostname
        self._port = port
        self._timeout_s = timeout_s
        self._clock = clock
        self._wall_clock = wall_clock
        self._connections: dict[str, http.client.HTTPConnection] = {}

    def get(self, path: str) -> RequestRecord:
        started_at = self._wall_clock()
        try:
            addresses = self._resolver.addresses()
        except ResolveError as exc:
            return self._failure(path, started_at, 0.0, f"dns: {exc}", None, 0)
        start = self._clock()
        tried: list[str] = []
        last_error = "connect: no edge address"
        for refresh in (False, True):
            if refresh:
                try:
                    addresses = self._resolver.addresses(refresh=True)
                except ResolveError as exc:
                    last_error = f"dns: {exc}"
                    break
            for address in [a for a in addresses if a not in tried]:
                tried.append(address)
                try:
                    response = self._fetch(address, path)
                except _Retry as exc:
                    last_error = str(exc)
                    continue
                return self._record(path, started_at, start, address, response, len(tried))
        elapsed_ms = (self._clock() - start) * 1000
        edge = tried[-1] if tried else None
        return self._failure(path, started_at, elapsed_ms, last_error, edge, len(tried))

    def close(self) -> None:
        for connection in self._connections.values():
            connection.close()
        self._connections.clear()

    def _record(
        self,
        path: str,
        started_at: float,
        start: float,
        address: str,
        response: _Response,
        attempts: int,
    ) -> RequestRecord:
        return RequestRecord(
            region=self.region,
            path=path,
            started_at=started_at,
            ttfb_ms=(response.ttfb_s - start) * 1000,
            total_ms=(self._clock() - start) * 1000,
            status=response.status,
            cache_status=response.cache_status,
            edge=address,
            attempts=attempts,
            body_bytes=response.body_bytes,
        )

    def _failure(
        self,
        path: str,
        started_at: float,
        elapsed_ms: float,
        error: str,
        edge: str | None,
        attempts: int,
    ) -> RequestRecord:
        return RequestRecord(
            region=self.region,
            path=path,
            started_at=started_at,
            ttfb_ms=None,
            total_ms=elapsed_ms,
            status=None,
            cache_status=None,
            edge=edge,
            error=error,
            attempts=max(1, attempts),
        )

    def _fetch(self, address: str, path: str) -> _Response:
        reused = address in self._connections
        try:
            return self._exchange(self._connection(address), path)
        except _Retry:
            self._drop(address)
            if not reused:
                raise
        # A reused keep-alive connection may have been closed by the edge while idle: retry
        # once on a fresh one before calling the edge failed.
        try:
            return self._exchange(self._connection(address), path)
        except _Retry:
            self._drop(address)
            raise

    def _connection(self, address: str) -> http.client.HTTPConnection:
        connection = self._connections.get(address)
        if connection is None:
            connection = http.client.HTTPConnection(
                address,
                self._port,
                timeout=self._timeout_s,
                source_address=(self.source_ip, 0),
            )
            self._connections[address] = connection
        return connection

    def _drop(self, address: str) -> None:
        connection = self._connections.pop(address, None)
        if connection is not None:
            connection.close()

    def _exchange(self, connection: http.client.HTTPConnection, path: str) -> _Response:
        try:
            connection.request("GET", path, headers={"Host": self._hostname})
            response = connection.getresponse()
        except TimeoutError as exc:
            raise _Retry(f"timeout: no response within {self._timeout_s}s ({exc})") from None
        except (OSError, http.client.HTTPException) as exc:
            raise _Retry(f"connect: {type(exc).__name__}: {exc}") from None
        ttfb_s = self._clock()
        try:
            body_bytes = _drain(response)
        except (OSError, http.client.HTTPException) as exc:
            connection.close()
            raise _Retry(f"body: {type(exc).__name__}: {exc}") from None
        if response.will_close:
            connection.close()
        return _Response(
            status=response.status,
            cache_status=response.getheader("Cache-Status"),
            ttfb_s=ttfb_s,
            body_bytes=body_bytes,
        )


def _drain(response: http.client.HTTPResponse) -> int:
    total = 0
    for _ in range(1_000_000):  # bounded: 64 GiB at most
        chunk = response.read(_READ_CHUNK)
        if not chunk:
            return total
        total += len(chunk)
    raise http.client.HTTPException("response body too long")
