"""The lab's WAN emulator: TCP relays on loopback that add one-way delay and can be cut.

Theory of operation. The kernel here has no netem, so WAN latency is emulated in user space. A
*link* is one relay: it listens on a loopback address and forwards to one target (a node, the
origin, a probe target), and it carries traffic from clients in ``from_region`` to a target in
``to_region``; its name is ``"eu->us:edge-us-1"``. The *latency matrix* holds the round-trip time
and the up/down state of every region pair (a pair of one region is its intra-region link).

Each relayed connection has two delay lines, one per direction. A chunk read from one side is
stamped ``due = read_time + rtt/2`` and written to the other side at that time (``call_at``), so
delay never accumulates and throughput is limited only by the window (bytes in flight per
direction, like a TCP window), not by the delay. Dues never decrease, so a lowered RTT keeps the
byte order. EOF travels through the line like data (half-close is kept); a reset on one side
aborts the other at once. A link that is *down* aborts its connections and resets new ones.

Only the TCP handshake is not delayed (the kernel completes it before the relay sees it), so a
prober must time an application round trip through the relay, not ``connect()``.

The pure part (``LatencyMatrix``, ``Link``, ``link_state``, ``links_between``) decides; the relays
and ``WanEmulator`` do the I/O.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, cast

from cdn_core.config import LabConfig
from cdn_core.errors import CdnError
from cdn_core.units import parse_duration

log = logging.getLogger(__name__)

MAX_RTT_MS = 10_000.0
DEFAULT_WINDOW_BYTES = 4 * 1024 * 1024
_WRITE_HIGH_WATER = 256 * 1024
_CONNECT_TIMEOUT_S = 10.0


class WanError(CdnError):
    """A WAN command names an unknown region or link, or carries a bad value."""


# --- the pure part -------------------------------------------------------------------------


def pair_key(a: str, b: str) -> frozenset[str]:
    """The unordered key of a region pair; ``pair_key("eu", "eu")`` is eu's intra-region link."""
    return frozenset((a, b))


def pair_label(pair: frozenset[str]) -> str:
    regions = sorted(pair)
    return f"{regions[0]}-{regions[-1]}"


def link_name(from_region: str, to_region: str, target: str) -> str:
    return f"{from_region}->{to_region}:{target}"


def rtt_ms_from_text(text: str) -> float:
    """Milliseconds from ``"300ms"``, ``"0.3s"`` or a bare number of milliseconds."""
    try:
        value = float(text)
    except ValueError:
        try:
            value = parse_duration(text) * 1000.0
        except ValueError as exc:
            raise WanError(f"bad RTT {text!r}: expected e.g. 300ms, 0.3s or 300") from exc
    return check_rtt_ms(value)


def check_rtt_ms(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise WanError(f"rtt_ms must be a number of milliseconds (got {value!r})")
    if not math.isfinite(value) or not 0 <= value <= MAX_RTT_MS:
        raise WanError(f"rtt_ms must be between 0 and {MAX_RTT_MS:g} (got {value!r})")
    return float(value)


@dataclass(frozen=True, slots=True, kw_only=True)
class Link:
    """One relay: clients in ``from_region`` reach ``target`` (in ``to_region``) through it."""

    from_region: str
    to_region: str
    target: str
    upstream_host: str
    upstream_port: int

    @property
    def name(self) -> str:
        return link_name(self.from_region, self.to_region, self.target)

    @property
    def pair(self) -> frozenset[str]:
        return pair_key(self.from_region, self.to_region)


@dataclass(frozen=True, slots=True, kw_only=True)
class LinkState:
    """What a relay applies: the round-trip time and whether the link is cut."""

    rtt_ms: float
    down: bool = False

    @property
    def one_way_s(self) -> float:
        return self.rtt_ms / 2000.0


@dataclass(frozen=True, slots=True, kw_only=True)
class LatencyMatrix:
    """Round-trip times and cuts between regions; a single-region pair overrides intra-region."""

    regions: frozenset[str]
    intra_region_rtt_ms: float = 4.0
    rtt_ms: Mapping[frozenset[str], float] = field(default_factory=dict)
    down: frozenset[frozenset[str]] = frozenset()

    @classmethod
    def from_lab(cls, lab: LabConfig, regions: Iterable[str]) -> LatencyMatrix:
        return cls(
            regions=frozenset(regions),
            intra_region_rtt_ms=lab.intra_region_rtt_ms,
            rtt_ms=dict(lab.rtt_ms),
        )

    def rtt_between(self, a: str, b: str) -> float:
        default = self.intra_region_rtt_ms if a == b else 0.0
        return self.rtt_ms.get(pair_key(a, b), default)

    def is_down(self, a: str, b: str) -> bool:
        return pair_key(a, b) in self.down

    def with_rtt(self, a: str, b: str, rtt_ms: float) -> LatencyMatrix:
        self._check_regions(a, b)
        return replace(self, rtt_ms={**self.rtt_ms, pair_key(a, b): check_rtt_ms(rtt_ms)})

    def with_down(self, a: str, b: str, down: bool) -> LatencyMatrix:
        self._check_regions(a, b)
        pair = pair_key(a, b)
        down_pairs = (self.down | {pair}) if down else (self.down - {pair})
        return replace(self, down=down_pairs)

    def _check_regions(self, a: str, b: str) -> None:
        for region in (a, b):
            if region not in self.regions:
                known = ", ".join(sorted(self.regions))
                raise WanError(f"unknown region {region!r} (known: {known})")

    def to_json(self) -> dict[str, Any]:
        ordered = sorted(self.regions)
        rtt = {
            pair_label(pair_key(a, b)): self.rtt_between(a, b)
            for i, a in enumerate(ordered)
            for b in ordered[i:]
        }
        return {
            "regions": ordered,
            "rtt_ms": rtt,
            "down": sorted(pair_label(pair) for pair in self.down),
        }


def link_state(matrix: LatencyMatrix, link: Link) -> LinkState:
    return LinkState(
        rtt_ms=matrix.rtt_between(link.from_region, link.to_region),
        down=matrix.is_down(link.from_region, link.to_region),
    )


def links_between(links: Iterable[Link], a: str, b: str) -> tuple[Link, ...]:
    """The links a change to the pair (a, b) touches, in either direction."""
    pair = pair_key(a, b)
    return tuple(link for link in links if link.pair == pair)


# --- the relays ------------------------------------------------------------------------------


class _DelayLine:
    """One direction of a relayed connection: what ``source`` sends reaches ``sink`` later."""

    def __init__(
        self, relay: Relay, conn: _RelayedConnection, on_finished: Callable[[], None]
    ) -> None:
        self._relay = relay
        self._conn = conn
        self._loop = asyncio.get_running_loop()
        self._on_finished = on_finished
        self._chunks: deque[tuple[float, bytes | None]] = deque()  # None marks EOF
        self._queued_bytes = 0
        self._last_due = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._source: asyncio.Transport | None = None
        self._sink: asyncio.Transport | None = None
        self._sink_blocked = True  # until a sink is attached
        self._source_paused = False
        self.eof_pushed = False
        self.finished = False

    def attach_source(self, transport: asyncio.Transport) -> None:
        self._source = transport
        self._update_source()

    def attach_sink(self, transport: asyncio.Transport) -> None:
        self._sink = transport
        self.set_sink_blocked(False)
        self._schedule()

    def set_sink_blocked(self, blocked: bool) -> None:
        self._sink_blocked = blocked
        self._update_source()

    def push(self, data: bytes | None) -> None:
        if self.finished or self.eof_pushed:
            return
        due = max(self._loop.time() + self._conn.state.one_way_s, self._last_due)
        self._last_due = due
        self._chunks.append((due, data))
        if data is None:
            self.eof_pushed = True
        else:
            self._queued_bytes += len(data)
            self._relay.bytes_relayed += len(data)
        self._update_source()
        self._schedule()

    def cancel(self) -> None:
        if self.finished:
            return
        self.finished = True
        self._chunks.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._on_finished()

    def _update_source(self) -> None:
        source = self._source
        if source is None or source.is_closing():
            return
        window = self._relay.window_bytes
        if not self._source_paused and (self._sink_blocked or self._queued_bytes >= window):
            self._source_paused = True
            source.pause_reading()
        elif self._source_paused and not self._sink_blocked and self._queued_bytes <= window // 2:
            self._source_paused = False
            source.resume_reading()

    def _schedule(self) -> None:
        if self._timer is None and self._chunks and self._sink is not None and not self.finished:
            self._timer = self._loop.call_at(self._chunks[0][0], self._deliver)

    def _deliver(self) -> None:
        self._timer = None
        sink = self._sink
        if sink is None or sink.is_closing():
            self.cancel()
            return
        now = self._loop.time()
        ready: list[bytes] = []
        eof = False
        while self._chunks and self._chunks[0][0] <= now:
            data = self._chunks.popleft()[1]
            if data is None:
                eof = True
                break
            ready.append(data)
        if ready:
            payload = b"".join(ready)
            self._queued_bytes -= len(payload)
            sink.write(payload)
        if eof:
            if sink.can_write_eof():
                sink.write_eof()
            self.cancel()
            return
        self._update_source()
        self._schedule()


class _Endpoint(asyncio.Protocol):
    """One TCP side of a relayed connection: reads into ``outbound``, is written by ``inbound``."""

    def __init__(self, conn: _RelayedConnection, outbound: _DelayLine, inbound: _DelayLine):
        self.conn = conn
        self.outbound = outbound
        self.inbound = inbound
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TCP transports do not subclass asyncio.Transport, but they implement it.
        transport = cast(asyncio.Transport, transport)
        self.transport = transport
        transport.set_write_buffer_limits(high=_WRITE_HIGH_WATER)
        self.outbound.attach_source(transport)
        self.inbound.attach_sink(transport)
        self.conn.endpoint_made(self)

    def data_received(self, data: bytes) -> None:
        self.outbound.push(data)

    def eof_received(self) -> bool:
        self.outbound.push(None)
        return True  # keep our writing half open: the other direction may still carry data

    def pause_writing(self) -> None:
        self.inbound.set_sink_blocked(True)

    def resume_writing(self) -> None:
        self.inbound.set_sink_blocked(False)

    def connection_lost(self, exc: Exception | None) -> None:
        self.conn.endpoint_lost(self, exc)


class _RelayedConnection:
    """A client connection accepted by a relay and its connection to the target."""

    def __init__(self, relay: Relay) -> None:
        self.relay = relay
        self.state = relay.state  # a FrontRelay sets it per connection, from the peer's region
        self.up = _DelayLine(relay, self, self._line_finished)
        self.down = _DelayLine(relay, self, self._line_finished)
        self.client = _Endpoint(self, outbound=self.up, inbound=self.down)
        self.upstream = _Endpoint(self, outbound=self.down, inbound=self.up)
        self.closed = False

    def endpoint_made(self, endpoint: _Endpoint) -> None:
        if endpoint is self.client:
            self.relay.connection_accepted(self)
        elif self.closed or self.state.down:
            self.abort()

    def endpoint_lost(self, endpoint: _Endpoint, exc: Exception | None) -> None:
        if self.closed:
            return
        if exc is not None:
            self.abort()  # a reset or an error: the other side learns at once
            return
        # A clean close: bytes in flight still reach the other side, followed by EOF.
        endpoint.inbound.cancel()
        endpoint.outbound.push(None)

    def _line_finished(self) -> None:
        if self.up.finished and self.down.finished:
            self.close()

    def close(self) -> None:
        self._shut(abort=False)

    def abort(self) -> None:
        self._shut(abort=True)

    def _shut(self, *, abort: bool) -> None:
        if self.closed:
            return
        self.closed = True
        self.up.cancel()
        self.down.cancel()
        for endpoint in (self.client, self.upstream):
            if endpoint.transport is not None:
                if abort:
                    endpoint.transport.abort()
                else:
                    endpoint.transport.close()
        self.relay.connection_closed(self)


class Relay:
    """A TCP relay for one link: listens on loopback, forwards to the link's target."""

    def __init__(
        self,
        link: Link,
        *,
        listen_host: str,
        listen_port: int,
        state: LinkState,
        window_bytes: int = DEFAULT_WINDOW_BYTES,
    ) -> None:
        self.link = link
        self.state = state
        self.window_bytes = window_bytes
        self.bytes_relayed = 0
        self.connections_accepted = 0
        self._listen = (listen_host, listen_port)
        self._server: asyncio.Server | None = None
        self._connections: set[_RelayedConnection] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def listen_host(self) -> str:
        return self._listen[0]

    @property
    def listen_port(self) -> int:
        return self._listen[1]

    @property
    def active_connections(self) -> int:
        return len(self._connections)

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _RelayedConnection(self).client, *self._listen, reuse_address=True
        )
        self._listen = self._server.sockets[0].getsockname()[:2]

    def apply(self, state: LinkState) -> None:
        self.state = state
        for conn in list(self._connections):
            conn.state = state
            if state.down:
                conn.abort()

    def connection_accepted(self, conn: _RelayedConnection) -> None:
        conn.state = self.state_for(conn)
        if conn.state.down or self._server is None:
            conn.abort()  # a cut link resets new connections
            return
        self.connections_accepted += 1
        self._connections.add(conn)
        task = asyncio.get_running_loop().create_task(self._connect_upstream(conn))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def connection_closed(self, conn: _RelayedConnection) -> None:
        self._connections.discard(conn)

    def state_for(self, conn: _RelayedConnection) -> LinkState:
        """The delay and cut state of one accepted connection (the relay's own, here)."""
        return self.state

    async def _connect_upstream(self, conn: _RelayedConnection) -> None:
        loop = asyncio.get_running_loop()
        target = (self.link.upstream_host, self.link.upstream_port)
        try:
            async with asyncio.timeout(_CONNECT_TIMEOUT_S):
                await loop.create_connection(lambda: conn.upstream, *target)
        except (OSError, TimeoutError) as exc:
            log.debug("relay %s: cannot reach %s:%s: %s", self.link.name, *target, exc)
            conn.abort()

    async def close(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for conn in list(self._connections):
            conn.abort()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if server is not None:
            await server.wait_closed()

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.link.name,
            "listen": f"{self.listen_host}:{self.listen_port}",
            "target": f"{self.link.upstream_host}:{self.link.upstream_port}",
            "rtt_ms": self.state.rtt_ms,
            "down": self.state.down,
            "active_connections": self.active_connections,
            "connections_accepted": self.connections_accepted,
            "bytes_relayed": self.bytes_relayed,
        }


class FrontRelay(Relay):
    """A relay in front of one target that serves every region at once.

    Each accepted connection is delayed by the RTT between the region of its *source address*
    (``classify(peer_ip)``; None means no delay) and ``link.to_region``. One advertised address
    then feels right from everywhere, so every node can read the same config.
    """

    def __init__(
        self,
        link: Link,
        *,
        listen_host: str,
        listen_port: int,
        matrix: LatencyMatrix,
        classify: Callable[[str], str | None],
        window_bytes: int = DEFAULT_WINDOW_BYTES,
    ) -> None:
        super().__init__(
            link,
            listen_host=listen_host,
            listen_port=listen_port,
            state=LinkState(rtt_ms=0.0),
            window_bytes=window_bytes,
        )
        self.matrix = matrix
        self._classify = classify
        self._source_regions: dict[_RelayedConnection, str | None] = {}

    def state_for(self, conn: _RelayedConnection) -> LinkState:
        transport = conn.client.transport
        peer = transport.get_extra_info("peername") if transport is not None else None
        region = self._classify(peer[0]) if peer else None
        self._source_regions[conn] = region
        return self._state_from(region)

    def _state_from(self, region: str | None) -> LinkState:
        if region is None:
            return LinkState(rtt_ms=0.0)
        return LinkState(
            rtt_ms=self.matrix.rtt_between(region, self.link.to_region),
            down=self.matrix.is_down(region, self.link.to_region),
        )

    def connection_closed(self, conn: _RelayedConnection) -> None:
        super().connection_closed(conn)
        self._source_regions.pop(conn, None)

    def refresh(self, matrix: LatencyMatrix) -> None:
        """Apply a new matrix to the connections already open (new ones read it on accept)."""
        self.matrix = matrix
        for conn, region in list(self._source_regions.items()):
            conn.state = self._state_from(region)
            if conn.state.down:
                conn.abort()


class WanEmulator:
    """Every relay of the lab, keyed by link name, and the latency matrix they apply."""

    def __init__(self, matrix: LatencyMatrix, *, window_bytes: int = DEFAULT_WINDOW_BYTES):
        self.matrix = matrix
        self._window_bytes = window_bytes
        self._relays: dict[str, Relay] = {}

    @property
    def relays(self) -> Mapping[str, Relay]:
        return self._relays

    def relay(self, name: str) -> Relay:
        try:
            return self._relays[name]
        except KeyError:
            raise WanError(f"no WAN link named {name!r}") from None

    async def add_link(self, link: Link, *, listen_host: str, listen_port: int = 0) -> Relay:
        """Start the relay of ``link`` on ``listen_host:listen_port`` (0 picks a free port)."""
        self.matrix._check_regions(link.from_region, link.to_region)
        if link.name in self._relays:
            raise WanError(f"WAN link {link.name!r} exists already")
        relay = Relay(
            link,
            listen_host=listen_host,
            listen_port=listen_port,
            state=link_state(self.matrix, link),
            window_bytes=self._window_bytes,
        )
        await relay.start()
        self._relays[link.name] = relay
        return relay

    def set_rtt(self, a: str, b: str, rtt_ms: float) -> tuple[str, ...]:
        """Set the RTT between regions a and b; returns the names of the links it changed."""
        return self._apply(self.matrix.with_rtt(a, b, rtt_ms), a, b)

    def set_down(self, a: str, b: str, down: bool) -> tuple[str, ...]:
        """Cut (or restore) every link between regions a and b; returns the links it changed."""
        return self._apply(self.matrix.with_down(a, b, down), a, b)

    async def add_front(
        self,
        link: Link,
        *,
        listen_host: str,
        listen_port: int,
        classify: Callable[[str], str | None],
    ) -> FrontRelay:
        """Start a :class:`FrontRelay` for ``link`` (its ``from_region`` is only a label)."""
        if link.name in self._relays:
            raise WanError(f"WAN link {link.name!r} exists already")
        relay = FrontRelay(
            link,
            listen_host=listen_host,
            listen_port=listen_port,
            matrix=self.matrix,
            classify=classify,
            window_bytes=self._window_bytes,
        )
        await relay.start()
        self._relays[link.name] = relay
        return relay

    def _apply(self, matrix: LatencyMatrix, a: str, b: str) -> tuple[str, ...]:
        self.matrix = matrix
        fronts = [r for r in self._relays.values() if isinstance(r, FrontRelay)]
        for front in fronts:
            front.refresh(matrix)
        plain = (r.link for r in self._relays.values() if not isinstance(r, FrontRelay))
        touched = links_between(plain, a, b)
        for link in touched:
            self._relays[link.name].apply(link_state(matrix, link))
        reached = tuple(f.link.name for f in fronts if f.link.to_region in (a, b))
        return tuple(link.name for link in touched) + reached

    def to_json(self) -> dict[str, Any]:
        return {
            **self.matrix.to_json(),
            "links": [relay.to_json() for relay in self._relays.values()],
        }

    async def close(self) -> None:
        relays = list(self._relays.values())
        self._relays.clear()
        for relay in relays:
            await relay.close()
