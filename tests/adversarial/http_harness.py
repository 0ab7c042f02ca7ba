"""The adversarial HTTP topology: a recording origin, one shield and two edges, all real.

:class:`HttpOverlay` starts, on loopback:

* :class:`RecordingOrigin`, an aiohttp HTTP/1.1 server in its own thread and event loop. It
  keeps connections alive, reads every request body to the end and records each request
  (:class:`Seen`: method, raw target, raw header fields, body, the connection it came on and
  the peer address) plus every raw byte of every connection. It answers
  ``echo <method> <target> host=<Host>`` with ``Cache-Control: max-age=300``; a path under
  ``/reflect`` also reflects the request fields named by its ``h`` query parameters
  (``/reflect/x?h=x-forwarded-host``), still cacheable, so that a poisoned cache shows; one
  under ``/lenient`` is answered without reading its body, as many GET handlers do.
* ``shield-1``, ``edge-1`` and ``edge-2`` as ``python -m cdn_cli.main`` processes
  (:mod:`tests.shield.processes`) on a control plane in memory: each edge routes on the
  configured shield. Origin ``site`` (``www.cdn.test``) goes edge -> shield -> origin; origin
  ``direct`` (``direct.cdn.test``, ``shield_policy = "none"``) goes edge -> origin. Every node
  binds its outgoing connections to its own address, so the origin tells the paths apart.
* ``edge-3``, whose own copy of the config points ``shield-1`` at :class:`HopRecorder`: the
  hops it sends are real signed overlay hops, captured for replay against the real shield.

Clients are blocking sockets with timeouts (:func:`exchange`); every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import socket
import socketserver
import threading
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from aiohttp import web, web_protocol

from tests.shield.processes import Cluster, NodeSpec, config_text, members, node_specs

SITE = "www.cdn.test"  # origin "site": through the shield
DIRECT = "direct.cdn.test"  # origin "direct": shield_policy = "none"
HOSTS = (SITE, DIRECT)
SHIELD_SOURCE = "127.0.2.1"
CLIENT_IP = "127.0.9.1"  # the corpus' client address (X-Forwarded-For must be exactly this)
MAX_BODY = 64 * 1024  # proxy.max_request_body_bytes of the overlay under test
MAX_HEADER = 16 * 1024  # proxy.max_header_bytes (the default)
FIRST_BYTE_TIMEOUT_S = 2.0
IO_TIMEOUT_S = 10.0  # bounds one exchange: longer than two upstream first-byte timeouts
START_ATTEMPTS = 300  # x 0.1 s
ROUTE_ATTEMPTS = 50  # x 0.1 s


# -- the recording origin ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Seen:
    """One request as the origin received it."""

    conn: int  # the connection it arrived on (a counter of the origin's connections)
    peer: str  # the peer address: the shield (127.0.2.1) or an edge (127.0.1.N)
    method: str
    target: str  # the raw request target
    version: str
    headers: tuple[tuple[bytes, bytes], ...]  # the raw fields, in order
    body: bytes
    body_error: str | None = None  # the body did not read to the end

    def values(self, name: str) -> list[bytes]:
        wanted = name.lower().encode()
        return [v for k, v in self.headers if k.lower() == wanted]

    def names(self) -> set[str]:
        return {k.decode("latin-1").lower() for k, _ in self.headers}


class _RecordingHandler(web_protocol.RequestHandler):
    """aiohttp's connection handler, numbering connections and keeping every byte read."""

    def __init__(self, origin: RecordingOrigin, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.conn_id = origin.new_connection()
        self.raw_log = origin.raw_log(self.conn_id)

    def data_received(self, data: bytes) -> None:
        self.raw_log.extend(data)
        super().data_received(data)


class _RecordingServer(web.Server):
    origin: RecordingOrigin

    def __call__(self) -> web_protocol.RequestHandler:
        return _RecordingHandler(self.origin, self, loop=self._loop, **self._kwargs)


def echo_line(method: str, target: str, host: str) -> str:
    """The first line of the origin's body for a request."""
    return f"echo {method} {target} host={host}"


class RecordingOrigin:
    """The origin of every test here; see the module docstring."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: list[Seen] = []
        self._raw: dict[int, bytearray] = {}
        self._conns = itertools.count(1)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.ServerRunner | None = None
        self.port = 0

    # recording (called on the origin's thread)

    def new_connection(self) -> int:
        with self._lock:
            return next(self._conns)

    def raw_log(self, conn: int) -> bytearray:
        with self._lock:
            return self._raw.setdefault(conn, bytearray())

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        body_error = None
        if request.path.startswith("/lenient"):
            # Like many GET handlers: answer without reading the body (aiohttp then discards
            # Content-Length bytes from the connection, whatever they belong to).
            body = b""
        else:
            try:
                body = await request.read()
            except Exception as exc:  # a broken body is recorded too
                body, body_error = b"", f"{type(exc).__name__}: {exc}"
        protocol = request.protocol
        seen = Seen(
            conn=getattr(protocol, "conn_id", 0),
            peer=request.remote or "",
            method=request.method,
            target=request.raw_path,
            version=f"{request.version.major}.{request.version.minor}",
            headers=tuple(request.raw_headers),
            body=body,
            body_error=body_error,
        )
        with self._lock:
            self._seen.append(seen)
        if body_error is not None:
            return web.Response(status=400, text="bad body\n")
        hosts = seen.values("host")
        host = ",".join(h.decode("latin-1") for h in hosts) if hosts else "<none>"
        text = echo_line(seen.method, seen.target, host)
        if seen.method not in ("GET", "HEAD"):
            text += f" body={len(body)}"
        if request.path.startswith("/reflect"):
            for name in (v for k, v in parse_qsl(urlsplit(seen.target).query) if k == "h"):
                values = seen.values(name)
                shown = ",".join(v.decode("latin-1") for v in values) if values else "<absent>"
                text += f" {name.lower()}={shown}"
        cache_control = "no-store" if request.path.startswith("/nostore") else "max-age=300"
        return web.Response(
            body=(text + "\n").encode("utf-8", "surrogateescape"),
            headers={"Cache-Control": cache_control, "Content-Type": "text/plain"},
        )

    # lifecycle (called from the tests' thread)

    def start(self) -> None:
        from tests.conftest import free_port

        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=loop.run_forever, name="origin", daemon=True)
        self._thread.start()
        self.port = free_port()
        asyncio.run_coroutine_threadsafe(self._start(), loop).result(timeout=10)

    async def _start(self) -> None:
        server = _RecordingServer(self._handle, access_log=None, keepalive_timeout=75.0)
        server.origin = self
        self._runner = web.ServerRunner(server, handle_signals=False)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if self._runner is not None:
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(self._runner.cleanup(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()
        self._loop = self._thread = None

    # queries

    @property
    def seen(self) -> list[Seen]:
        with self._lock:
            return list(self._seen)

    def matching(self, marker: str) -> list[Seen]:
        """The requests whose raw target contains ``marker``."""
        return [s for s in self.seen if marker in s.target]

    def with_target(self, target: str) -> list[Seen]:
        return [s for s in self.seen if s.target == target]

    def raw_streams(self) -> list[bytes]:
        """Every byte the origin read, one stream per connection."""
        with self._lock:
            return [bytes(raw) for raw in self._raw.values()]

    def raw_contains(self, needle: bytes) -> bool:
        """Whether any byte stream the origin read contains ``needle``."""
        with self._lock:
            return any(needle in bytes(raw) for raw in self._raw.values())


# -- the hop recorder: stands in for the shield in edge-3's config -----------------------------


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


class HopRecorder:
    """A tiny HTTP/1.1 server that keeps every request's raw bytes and answers 200 no-store."""

    def __init__(self) -> None:
        self.requests: list[bytes] = []
        self._lock = threading.Lock()
        self._server: socketserver.ThreadingTCPServer | None = None
        self._thread: threading.Thread | None = None
        self.address = ""

    def start(self) -> None:
        recorder = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                sock: socket.socket = self.request
                sock.settimeout(IO_TIMEOUT_S)
                buffer = b""
                with contextlib.suppress(OSError):
                    while True:
                        while b"\r\n\r\n" not in buffer:
                            chunk = sock.recv(65536)
                            if not chunk:
                                return
                            buffer += chunk
                        head, _, buffer = buffer.partition(b"\r\n\r\n")
                        length = 0
                        for line in head.split(b"\r\n")[1:]:
                            name, _, value = line.partition(b":")
                            if name.strip().lower() == b"content-length":
                                length = int(value.strip())
                        while len(buffer) < length:
                            chunk = sock.recv(65536)
                            if not chunk:
                                return
                            buffer += chunk
                        body, buffer = buffer[:length], buffer[length:]
                        with recorder._lock:
                            recorder.requests.append(head + b"\r\n\r\n" + body)
                        sock.sendall(
                            b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n"
                            b"Cache-Control: no-store\r\n\r\ncaptured\n"
                        )

        self._server = _Server(("127.0.0.1", 0), Handler)
        self.address = f"127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def captured(self, marker: bytes) -> list[bytes]:
        with self._lock:
            return [r for r in self.requests if marker in r.split(b"\r\n", 1)[0]]

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)


# -- a raw HTTP/1.1 client -------------------------------------------------------------------


@dataclass(slots=True)
class Response:
    status_line: bytes
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    interim: list[Response] = field(default_factory=list)

    def header(self, name: str) -> str | None:
        values = self.header_all(name)
        return ", ".join(values) if values else None

    def header_all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]

    @property
    def tiers(self) -> list[str]:
        """The node names of ``Cache-Status``, upstream first."""
        return members(self.header("cache-status") or "")

    def __repr__(self) -> str:
        return f"<{self.status_line!r} {self.headers!r} {self.body[:200]!r}>"


class ProtocolError(Exception):
    """The bytes that came back are not a well-formed HTTP/1.1 response."""


class Reader:
    """Reads responses from a blocking socket, every read within one overall deadline."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self.sock = sock
        self.deadline = deadline
        self.buffer = bytearray()
        self.eof = False
        self.raw = bytearray()

    def _fill(self) -> None:
        if self.eof:
            raise ProtocolError("connection closed mid-response")
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no complete response in time")
        self.sock.settimeout(remaining)
        chunk = self.sock.recv(65536)
        if not chunk:
            self.eof = True
            raise ProtocolError("connection closed mid-response")
        self.buffer += chunk
        self.raw += chunk

    def line(self) -> bytes:
        while b"\r\n" not in self.buffer:
            if len(self.buffer) > 65536:
                raise ProtocolError("a response line over 64 KiB")
            self._fill()
        line, _, rest = bytes(self.buffer).partition(b"\r\n")
        self.buffer = bytearray(rest)
        return line

    def _exact(self, size: int) -> bytes:
        while len(self.buffer) < size:
            self._fill()
        data = bytes(self.buffer[:size])
        del self.buffer[:size]
        return data

    def _to_eof(self) -> bytes:
        with contextlib.suppress(ProtocolError):
            while True:
                self._fill()
        data = bytes(self.buffer)
        self.buffer.clear()
        return data

    def response(self, *, head: bool = False) -> Response:
        """The next final response (interim 1xx responses go into ``interim``)."""
        interim: list[Response] = []
        while True:
            status_line = self.line()
            parts = status_line.split(b" ", 2)
            if len(parts) < 2 or not parts[1].isdigit() or not parts[0].startswith(b"HTTP/"):
                raise ProtocolError(f"not a status line: {status_line[:200]!r}")
            status = int(parts[1])
            headers: list[tuple[str, str]] = []
            while line := self.line():
                name, sep, value = line.partition(b":")
                if not sep:
                    raise ProtocolError(f"not a header line: {line[:200]!r}")
                headers.append((name.decode("latin-1"), value.strip().decode("latin-1")))
            response = Response(status_line, status, headers, b"")
            if 100 <= status < 200:
                interim.append(response)
                continue
            response.interim = interim
            response.body = self._body(response, head=head)
            return response

    def _body(self, response: Response, *, head: bool) -> bytes:
        if head or response.status in (204, 304):
            return b""
        if "chunked" in (response.header("transfer-encoding") or "").lower():
            chunks: list[bytes] = []
            while True:
                size_line = self.line().split(b";", 1)[0].strip()
                try:
                    size = int(size_line, 16)
                except ValueError:
                    raise ProtocolError(f"bad chunk size {size_line!r}") from None
                if size == 0:
                    while self.line():
                        pass
                    return b"".join(chunks)
                chunks.append(self._exact(size))
                if self.line():
                    raise ProtocolError("chunk data not followed by CRLF")
        length = response.header("content-length")
        if length is not None:
            if not length.isdigit():
                raise ProtocolError(f"bad Content-Length {length!r}")
            return self._exact(int(length))
        return self._to_eof()

    def wait(self, wait_s: float) -> str:
        """``"eof"`` when the peer closes within ``wait_s``, ``"data"`` when it sends more,
        ``"quiet"`` when neither happens."""
        if self.buffer:
            return "data"
        if self.eof:
            return "eof"
        end = min(self.deadline, time.monotonic() + wait_s)
        while True:
            remaining = end - time.monotonic()
            if remaining <= 0:
                return "quiet"
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                return "quiet"
            except OSError:
                self.eof = True
                return "eof"
            if not chunk:
                self.eof = True
                return "eof"
            self.buffer += chunk
            self.raw += chunk
            return "data"


@dataclass(slots=True)
class Exchange:
    """What came back on one connection."""

    responses: list[Response]
    error: str | None  # why reading stopped before the expected responses
    # After the responses: "closed" (the node closed the connection), "lingering" (it stayed
    # open but a probe request sent on it got no answer), "open" (more bytes came), or None.
    closing: str | None
    raw: bytes
    leftover: bytes  # bytes after the last response that belong to no response read

    def describe(self) -> str:
        return (
            f"responses={self.responses!r} error={self.error!r} closing={self.closing!r} "
            f"leftover={self.leftover[:300]!r}"
        )


def connect(address: tuple[str, int], *, source: str = CLIENT_IP) -> socket.socket:
    sock = socket.create_connection(address, timeout=IO_TIMEOUT_S, source_address=(source, 0))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def exchange(
    address: tuple[str, int],
    data: bytes | Sequence[bytes],
    *,
    responses: int = 1,
    heads: Sequence[bool] = (),
    check_close: bool = False,
    close_wait_s: float = 2.0,
    probe: bytes | None = None,
    source: str = CLIENT_IP,
    timeout_s: float = IO_TIMEOUT_S,
) -> Exchange:
    """Send ``data`` on a fresh connection and read ``responses`` responses.

    ``data`` may be several writes (sent 50 ms apart). ``heads[i]`` tells that response ``i``
    answers a HEAD. With ``check_close``, when the last answer is a refusal (4xx/5xx), whether
    the node then closes the connection; when it does not within ``close_wait_s``, ``probe`` is
    sent on it to see whether it still serves.
    """
    writes = [data] if isinstance(data, bytes) else list(data)
    with contextlib.closing(connect(address, source=source)) as sock:
        for i, chunk in enumerate(writes):
            if i:
                time.sleep(0.05)
            with contextlib.suppress(OSError):  # the node may close early: read what it said
                sock.sendall(chunk)
        reader = Reader(sock, time.monotonic() + timeout_s)
        got: list[Response] = []
        error = None
        for i in range(responses):
            try:
                got.append(reader.response(head=i < len(heads) and heads[i]))
            except (ProtocolError, TimeoutError, OSError) as exc:
                error = f"{type(exc).__name__}: {exc}"
                break
        closing = None
        if check_close and error is None and got and got[-1].status >= 400:
            closing = {"eof": "closed", "data": "open", "quiet": "quiet"}[reader.wait(close_wait_s)]
            if closing == "quiet" and probe is not None:
                try:
                    sock.sendall(probe)
                except OSError:
                    closing = "closed"
                else:
                    after = reader.wait(close_wait_s)
                    closing = {"eof": "closed", "data": "open", "quiet": "lingering"}[after]
        return Exchange(got, error, closing, bytes(reader.raw), bytes(reader.buffer))


def get(
    address: tuple[str, int], host: str, target: str, *, source: str = CLIENT_IP, **fields: str
) -> Response:
    """A clean GET on a fresh connection; AssertionError if no well-formed response comes."""
    extra = "".join(f"{k.replace('_', '-')}: {v}\r\n" for k, v in fields.items())
    data = f"GET {target} HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n".encode()
    result = exchange(address, data, source=source)
    assert result.responses, f"GET {host}{target}: {result.describe()}"
    return result.responses[0]


# -- the overlay -----------------------------------------------------------------------------


def overlay_config(origin_url: str, specs: list[NodeSpec], *, cluster: str) -> str:
    """The overlay's TOML: :func:`config_text` plus the direct origin and smaller limits."""
    extra = "\n".join(
        [
            "",
            "[[origins]]",
            'name = "direct"',
            f'hostnames = ["{DIRECT}"]',
            f'url = "{origin_url}"',
            'shield_policy = "none"',
            "",
        ]
    )
    text = config_text(
        cluster=cluster, control_plane="memory", origin_url=origin_url, nodes=specs, extra=extra
    )
    anchor = '[proxy]\nconnect_timeout = "1s"\nfirst_byte_timeout = "3s"\n'
    assert anchor in text, "tests.shield.processes.config_text changed its [proxy] section"
    proxy = (
        '[proxy]\nconnect_timeout = "1s"\n'
        f'first_byte_timeout = "{FIRST_BYTE_TIMEOUT_S:g}s"\n'
        f'max_request_body_bytes = "{MAX_BODY // 1024}KiB"\n'
        f'max_header_bytes = "{MAX_HEADER // 1024}KiB"\n'
    )
    return text.replace(anchor, proxy)


def _healthy(admin: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://{admin}/healthz", timeout=1.0) as answer:
            return answer.status == 200 and bool(json.load(answer).get("node"))
    except (OSError, ValueError):
        return False


@dataclass
class HttpOverlay:
    """The running topology; see the module docstring."""

    base: Path
    cluster_name: str = "adv"
    origin: RecordingOrigin = field(default_factory=RecordingOrigin)
    recorder: HopRecorder = field(default_factory=HopRecorder)
    clusters: list[Cluster] = field(default_factory=list)
    specs: dict[str, NodeSpec] = field(default_factory=dict)
    config: str = ""
    _paths: Iterator[int] = field(default_factory=itertools.count)

    EDGES = ("edge-1", "edge-2")

    def start(self) -> None:
        self.origin.start()
        self.recorder.start()
        specs = node_specs(shields=1, edges=3)
        self.specs = {s.name: s for s in specs}
        url = f"http://127.0.0.1:{self.origin.port}"
        self.config = overlay_config(url, specs, cluster=self.cluster_name)
        shield_listen = self.specs["shield-1"].listen
        capture = self.config.replace(
            f'listen = "{shield_listen}"', f'listen = "{self.recorder.address}"'
        )
        assert capture != self.config
        main = Cluster(base=self.base, config=self.config, specs=self.specs)
        spy = Cluster(base=self.base / "capture", config=capture, specs=self.specs)
        self.clusters = [main, spy]
        for name in ("shield-1", *self.EDGES):
            main.start(name)
        spy.start("edge-3")
        self._wait_healthy()
        self._wait_routed()

    def _running(self) -> list[tuple[Cluster, str]]:
        return [(c, name) for c in self.clusters for name in c.procs]

    def _wait_healthy(self) -> None:
        waiting = self._running()
        for _ in range(START_ATTEMPTS):
            for cluster, name in list(waiting):
                if cluster.procs[name].poll() is not None:
                    raise AssertionError(f"{name} exited early:\n{cluster.log(name)}")
                if _healthy(self.specs[name].admin):
                    waiting.remove((cluster, name))
            if not waiting:
                return
            time.sleep(0.1)
        raise AssertionError(f"never healthy: {[n for _, n in waiting]}")

    def _wait_routed(self) -> None:
        """Until a miss at each edge goes through the shield (site) or straight (direct)."""
        for edge in self.EDGES:
            for host, tiers in ((SITE, ["shield-1", edge]), (DIRECT, [edge])):
                for _ in range(ROUTE_ATTEMPTS):
                    target = self.fresh_path("/warm")
                    response = get(self.edge(edge), host, target)
                    if response.status == 200 and response.tiers == tiers:
                        break
                    time.sleep(0.1)
                else:
                    raise AssertionError(
                        f"{edge} never routed {host} via {tiers}: {response!r}\n{self.log(edge)}"
                    )

    def stop(self) -> None:
        for cluster in self.clusters:
            with contextlib.suppress(Exception):
                asyncio.run(cluster.kill_all())
        self.recorder.stop()
        self.origin.stop()

    # -- accessors

    def address(self, name: str) -> tuple[str, int]:
        host, _, port = self.specs[name].listen.rpartition(":")
        return host, int(port)

    def edge(self, name: str) -> tuple[str, int]:
        return self.address(name)

    @property
    def shield(self) -> tuple[str, int]:
        return self.address("shield-1")

    def fresh_path(self, prefix: str = "/fresh") -> str:
        return f"{prefix}/{next(self._paths)}-{time.monotonic_ns()}"

    def dead(self) -> list[str]:
        """The nodes whose process has exited."""
        return [name for cluster, name in self._running() if cluster.procs[name].poll() is not None]

    def log(self, name: str) -> str:
        for cluster in self.clusters:
            if name in cluster.procs:
                return cluster.log(name)
        return ""

    # -- checks

    def assert_in_sync(self, context: str = "") -> None:
        """Clean GETs of fresh paths, from fresh connections, through both edges and both paths:
        each answered 200 with its own echo, each seen exactly once at the origin, from the hop
        its path goes through."""
        assert not self.dead(), f"{context}: nodes died: {self.dead()}"
        for edge in self.EDGES:
            for host in HOSTS:
                target = self.fresh_path("/sync")
                response = get(self.edge(edge), host, target, source="127.0.9.200")
                want = echo_line("GET", target, host) + "\n"
                assert (response.status, response.body.decode("latin-1")) == (200, want), (
                    f"{context}: desync at {edge} {host}{target}: {response!r}"
                )
                tiers = ["shield-1", edge] if host == SITE else [edge]
                assert response.tiers == tiers, f"{context}: {target} went via {response!r}"
                seen = self.origin.with_target(target)
                assert len(seen) == 1, f"{context}: origin saw {target} {len(seen)} times"
                peer = SHIELD_SOURCE if host == SITE else self.specs[edge].source_address
                assert seen[0].peer == peer, f"{context}: {target} came from {seen[0].peer}"
