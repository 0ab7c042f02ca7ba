"""A real `cdn router` process on loopback, and clients that send it arbitrary bytes.

:class:`RouterProcess` runs ``python -m cdn_cli.main router --config F`` (the console script
``cdn router``) with a control plane in memory, its log in a file, and the admin listener on
for ``/metrics``. :class:`Fuzzer` sends one input at a time and checks what comes back:

* over UDP, each input is followed by a marker query; the marker's answer proves the router
  has dealt with the input (answered or dropped it), so no reply is waited for with a timeout;
* over TCP, each input goes out on its own connection followed by the end of our stream; the
  router answers the complete frames it reads, in order, until one gets no answer.

Every reply must parse as a DNS response with the id of the query it answers and an rcode
other than SERVFAIL, the process must stay up, and every :data:`HEALTH_EVERY` inputs a plain
query for the zone must get NOERROR with an A record, over UDP and TCP. The router logs
nothing while it answers, so any line in its log during the run (an exception: a query that
crashed costs that query, never the server) fails the input that caused it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import dns.message
import dns.rcode
import dns.rdatatype

from tests.conftest import ROOT, free_port

SEEDS = Path(__file__).parent / "seeds" / "dns.txt"
HEALTH_EVERY = 1000
IO_TIMEOUT_S = 5.0  # bounds a hung exchange; the exchanges themselves take microseconds
START_ATTEMPTS = 200
UDP_LIMIT = 1232  # the router's advertised payload: no UDP answer is larger
_POLL_S = 0.25
_MARKER_NAME = "marker.fuzz.cdn.test"

CONFIG = """
cluster = "fuzz"
control_plane = "memory"
secret_file = "cluster.key"

[dns]
zone = "cdn.test"
listen = "127.0.0.1:{dns_port}"
admin = "127.0.0.1:{admin_port}"
answers = 2
rate_limit_qps = 10000000
rate_limit_burst = 10000000

[[origins]]
name = "site"
hostnames = ["www.cdn.test", "img.deep.cdn.test", "{long_host}"]
url = "http://127.0.0.1:9000"

[[nodes]]
name = "edge-a"
role = "edge"
region = "eu"
listen = "127.0.1.1:8080"
admin = "127.0.1.1:9080"

[[nodes]]
name = "edge-v6"
role = "edge"
region = "eu"
listen = "127.0.1.2:8080"
admin = "127.0.1.2:9080"
public_address = "2001:db8::2"

[[client_networks]]
name = "eu"
region = "eu"
prefixes = ["127.10.0.0/16", "127.0.0.0/24"]
probe = "127.10.0.1:7000"
"""
LONG_HOST = ".".join(["a" * 60, "b" * 60, "c" * 60, "cdn.test"])


def load_seeds(path: Path = SEEDS) -> list[bytes]:
    """The corpus: one hex message a line; blank lines and ``#`` comments are skipped."""
    lines = (line.strip() for line in path.read_text().splitlines())
    return [bytes.fromhex(line) for line in lines if line and not line.startswith("#")]


def tcp_frames(stream: bytes) -> list[bytes]:
    """The complete length-prefixed messages at the start of ``stream``, as the router reads."""
    frames = []
    while len(stream) >= 2:
        size = int.from_bytes(stream[:2], "big")
        if len(stream) < 2 + size:
            break
        frames.append(stream[2 : 2 + size])
        stream = stream[2 + size :]
    return frames


class RouterProcess:
    """``cdn router`` in a subprocess; :meth:`stop` ends it with SIGTERM, as an operator would."""

    def __init__(self, workdir: Path) -> None:
        self.dns_port = free_port()
        self.admin_port = free_port()
        self.config = workdir / "cdn.toml"
        self.config.write_text(
            CONFIG.format(dns_port=self.dns_port, admin_port=self.admin_port, long_host=LONG_HOST)
        )
        self.log = workdir / "router.log"
        self._log_file = self.log.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cdn_cli.main", "router", "--config", str(self.config)],
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )

    def wait_ready(self) -> None:
        query = health_query(0)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(0.1)
            for _ in range(START_ATTEMPTS):  # bounded: the process needs a moment to bind
                assert self.alive(), self.log_text()
                sock.sendto(query, ("127.0.0.1", self.dns_port))
                try:
                    sock.recv(65535)
                    return
                except TimeoutError:
                    continue
        raise AssertionError(f"the router never answered:\n{self.log_text()}")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def metrics(self) -> str:
        url = f"http://127.0.0.1:{self.admin_port}/metrics"
        with urllib.request.urlopen(url, timeout=IO_TIMEOUT_S) as response:
            text: str = response.read().decode()
            return text

    def stop(self) -> int:
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=20)
        finally:
            self._log_file.close()


def health_query(qid: int) -> bytes:
    query = dns.message.make_query("www.cdn.test", "A")
    query.id = qid
    return query.to_wire()


def check_reply(reply: bytes, query: bytes, *, tcp: bool) -> None:
    """A reply to ``query``: a DNS response with its id, never SERVFAIL, within the size rule."""
    response = dns.message.from_wire(reply)
    assert response.id == int.from_bytes(query[:2], "big")
    assert reply[2] & 0x80, "the QR bit is clear"
    assert response.rcode() != dns.rcode.SERVFAIL
    if not tcp:
        assert len(reply) <= UDP_LIMIT


def check_answer(reply: bytes, qid: int) -> None:
    response = dns.message.from_wire(reply)
    assert response.id == qid
    assert response.rcode() == dns.rcode.NOERROR
    assert [rrset.rdtype for rrset in response.answer] == [dns.rdatatype.A]


class Fuzzer:
    """Sends inputs to one router, checking each reply, the process and the periodic answer."""

    def __init__(self, router: RouterProcess) -> None:
        self.router = router
        self.address = ("127.0.0.1", router.dns_port)
        self.sent = {"udp": 0, "tcp": 0}
        self.replies = {"udp": 0, "tcp": 0}
        self.health_checks = 0
        self.fatal: bytes | None = None  # the input the router was first found dead after
        self._udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._udp.settimeout(_POLL_S)
        self._markers = 0
        self._unfinished = False
        self._log_size = router.log.stat().st_size

    def close(self) -> None:
        self._udp.close()

    @property
    def total(self) -> int:
        return self.sent["udp"] + self.sent["tcp"]

    def fuzz_udp(self, packet: bytes) -> bytes | None:
        """One input over UDP, checked; every :data:`HEALTH_EVERY` inputs, a health check."""
        self.check_alive(packet)
        reply = self.exchange_udp(packet)
        self._count("udp", packet, reply is not None)
        return reply

    def fuzz_tcp(self, stream: bytes) -> list[bytes]:
        """One input as a TCP stream (framing included), checked, as :meth:`fuzz_udp`."""
        self.check_alive(stream)
        replies = self.exchange_tcp(stream)
        self._count("tcp", stream, bool(replies))
        return replies

    def check_alive(self, current: bytes) -> None:
        """Fail, naming the input that killed it, once the router process has exited.

        Every later input fails the same way and at once, so Hypothesis stops shrinking soon;
        the message keeps the input after which the process was first found dead.
        """
        if self.router.alive():
            return
        if self.fatal is None:
            self.fatal = current
        raise AssertionError(
            f"the router exited ({self.router.proc.returncode}) after input "
            f"{self.fatal.hex()}:\n{self.router.log_text()}"
        )

    def exchange_udp(self, packet: bytes) -> bytes | None:
        """Send ``packet`` and a marker; the reply to ``packet`` (None if it was dropped)."""
        marker = self._marker()
        if self._unfinished:  # an exchange that failed may have left replies unread
            self._drain()
        self._unfinished = True
        self._udp.sendto(packet, self.address)
        self._udp.sendto(marker, self.address)
        reply = None
        for _ in range(2):  # the router answers in order: ours (if any), then the marker's
            data = self._recv_udp(packet)
            if _answers_marker(data, marker):
                self._unfinished = False
                return reply
            assert reply is None, "two replies to one datagram"
            check_reply(data, packet, tcp=False)
            reply = data
        raise AssertionError("no answer to the marker query after two replies")

    def exchange_tcp(self, stream: bytes) -> list[bytes]:
        """Send ``stream`` on a new connection, then our end; the replies, in order."""
        with socket.create_connection(self.address, timeout=IO_TIMEOUT_S) as sock:
            try:
                sock.sendall(stream)
                sock.shutdown(socket.SHUT_WR)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the router hung up on an earlier frame: read what it sent before
            received = _read_to_end(sock)
        replies = tcp_frames(received)
        assert sum(2 + len(r) for r in replies) == len(received), "a partial reply frame"
        frames = tcp_frames(stream)
        assert len(replies) <= len(frames)
        for reply, frame in zip(replies, frames, strict=False):
            check_reply(reply, frame, tcp=True)
        return replies

    def check_health(self) -> None:
        """The process is up and a plain query gets its answer over UDP and over TCP."""
        assert self.router.alive(), self.router.log_text()
        self.health_checks += 1
        qid = self.health_checks & 0xFFFF
        query = health_query(qid)
        reply = self.exchange_udp(query)
        assert reply is not None
        check_answer(reply, qid)
        (tcp_reply,) = self.exchange_tcp(len(query).to_bytes(2, "big") + query)
        check_answer(tcp_reply, qid)

    def _drain(self) -> None:
        self._udp.setblocking(False)
        try:
            while True:
                self._udp.recv(65535)
        except BlockingIOError:
            pass
        finally:
            self._udp.settimeout(_POLL_S)

    def _recv_udp(self, current: bytes) -> bytes:
        for _ in range(int(IO_TIMEOUT_S / _POLL_S)):
            try:
                return self._udp.recv(65535)
            except TimeoutError:
                self.check_alive(current)  # a dead router would leave us waiting
        raise AssertionError(f"no UDP reply within {IO_TIMEOUT_S} s (router still running)")

    def _count(self, transport: str, current: bytes, replied: bool) -> None:
        self.sent[transport] += 1
        self.replies[transport] += replied
        self.check_alive(current)
        self.check_quiet()
        if self.total % HEALTH_EVERY == 0:
            self.check_health()

    def check_quiet(self) -> None:
        """The router has logged nothing since the last input.

        The router logs an exception while it handles the query that raised it, before it
        reads the next datagram, so a crash shows here by the time the marker is answered.
        """
        before, self._log_size = self._log_size, self.router.log.stat().st_size
        assert self._log_size == before, self.router.log_text()[before:]  # this input's lines

    def _marker(self) -> bytes:
        self._markers += 1
        query = dns.message.make_query(_MARKER_NAME, "SOA")
        query.id = self._markers & 0xFFFF
        return query.to_wire()


def _answers_marker(data: bytes, marker: bytes) -> bool:
    question_end = len(marker)  # the marker is a bare question: its reply repeats it
    return data[:2] == marker[:2] and data[12:question_end] == marker[12:]


def _read_to_end(sock: socket.socket) -> bytes:
    chunks = []
    while True:
        try:
            chunk = sock.recv(65535)
        except ConnectionResetError:
            break  # the router closed while unread input remained: a reset, not a hang
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)
