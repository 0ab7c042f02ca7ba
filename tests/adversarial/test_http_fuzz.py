"""A mutation fuzzer against the real edges: hostile HTTP/1.1 must never make a node fail.

Hypothesis mutates the committed seeds (``seeds/http/*.txt``: valid GET, HEAD, POST, chunked,
conditional, Range, absolute-form requests and the hostile shapes of the corpus) with bit
flips, interesting bytes, inserted tokens, deleted ranges, duplicated or dropped lines, CRLF
turned into LF or CR, splices of two seeds, dangerous header fields and cuts. Each example is a
batch of :data:`BATCH` inputs, each on its own connection (alternately to edge-1 and edge-2),
sent at once and read together, so the inputs a node rightly waits on (incomplete requests)
cost one short grace period per batch instead of a timeout each.

For every input: a reply, if any, starts with ``HTTP/1.1 `` and no status is 500, 502, 503 or
504 (the origin is healthy and fast, so those are the node's own failures; a 504 answers
``only-if-cached`` on a miss, RFC 9111 §5.2.1.7, and is the one exception); a request that is
complete (see :func:`complete`) gets an answer within :data:`ANSWER_TIMEOUT_S`; the nodes stay
up; and every :data:`HEALTH_EVERY` inputs clean requests through both edges and both paths get
their own 200 and reach the origin once (:meth:`HttpOverlay.assert_in_sync`).

The run is derandomized with no example database (CI sends the same inputs every time) and
does not shrink: a failure names the inputs as bytes. The summary line (inputs, answers,
timeouts of incomplete inputs, statuses) is printed; ``pytest -s`` shows it.
"""

from __future__ import annotations

import codecs
import collections
import contextlib
import re
import selectors
import socket
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, settings, strategies as st

from tests.adversarial.http_harness import HttpOverlay

pytestmark = pytest.mark.timeout(240)  # a bound on a hang; the run takes well under that

SEED_DIR = Path(__file__).parent / "seeds" / "http"
BATCH = 100
BATCHES = 100  # BATCH x BATCHES = 10,000 inputs
HEALTH_EVERY = 1000
ANSWER_TIMEOUT_S = 5.0  # a complete request gets its answer within this (they take ms)
GRACE_S = 0.1  # how long incomplete inputs may still be answered once the rest are
MAX_INPUT_BYTES = 2048
FAILURE_STATUSES = frozenset({500, 502, 503, 504})


def load_seeds() -> list[bytes]:
    """Each seed file: lines with escapes (``\\r\\n``, ``\\xe9``); ``#`` lines are comments and
    the file's own line breaks are not part of the request."""
    seeds = []
    for path in sorted(SEED_DIR.glob("*.txt")):
        lines = [ln for ln in path.read_text("ascii").splitlines() if not ln.startswith("#")]
        seeds.append(codecs.decode("".join(lines), "unicode_escape").encode("latin-1"))
    return seeds


SEEDS = load_seeds()

# -- mutations: each returns a new input; positions wrap around the input's length -----------

INTERESTING = b'\x00\r\n \t:,;\x7f\xff\x80"=-0'
TOKENS = [
    b"\r\n",
    b"\n",
    b"\r",
    b" ",
    b"\t",
    b"\x0b",
    b":",
    b",",
    b";",
    b"\x00",
    b"\xff",
    b"0",
    b"chunked",
    b"\r\n\r\n",
    b"0\r\n\r\n",
    b"HTTP/1.1",
    b"HTTP/1.0",
    b"HTTP/2.0",
    b"GET /f/inner HTTP/1.1\r\nHost: www.cdn.test\r\n\r\n",
    b"%00",
    b"%2e%2e/",
    b"/../",
    b"?",
    b"#",
    b"@",
    b"\\",
    b"\xc3\xa9",
    b"\xe9",
    b"FFFFFFFFFFFFFFFFFF",
]
DANGEROUS = [
    b"Content-Length: 5",
    b"Content-Length: 0",
    b"Content-Length: -1",
    b"Content-Length: 5, 5",
    b"Content-Length: 99999999999999999999",
    b"Transfer-Encoding: chunked",
    b"Transfer-Encoding: xchunked",
    b"Transfer-Encoding : chunked",
    b"Transfer-Encoding: gzip, chunked",
    b"Transfer-Encoding:\tchunked",
    b"Host: evil.example",
    b"Host: www.cdn.test:8080",
    b"Host: user@www.cdn.test",
    b"Host: ",
    b"Expect: 100-continue",
    b"Expect: bogus",
    b"Connection: close",
    b"Connection: keep-alive, Upgrade, Transfer-Encoding",
    b"Upgrade: h2c",
    b"HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA",
    b"X-Forwarded-Host: evil.example",
    b"X-Forwarded-For: 6.6.6.6",
    b"Forwarded: for=6.6.6.6;host=evil.example",
    b"X-Original-URL: /admin",
    b"X-HTTP-Method-Override: DELETE",
    b"X-Overlay-Route: shield-1",
    b"X-Overlay-Auth: v2=" + b"0" * 64,
    b"CDN-Loop: adv",
    b"Via: 1.1 shield-1",
    b"Range: bytes=0-0,-1",
    b"If-None-Match: *",
    b'If-Match: "x"',
    b"Cache-Control: no-cache, only-if-cached",
    b"Max-Forwards: 0",
    b"TE: trailers",
    b"Trailer: Content-Length",
    b"Cookie: a=b",
    b"Authorization: Basic eDp4",
    b"X-A: caf\xe9",
    b"X-A: a\x00b",
    b"X-A: " + b"a" * 600,
    b" folded",
]
KINDS = (
    "flip",
    "byte",
    "insert",
    "delete",
    "dup-line",
    "drop-line",
    "lf",
    "cr",
    "splice",
    "header",
    "cut",
)


def _lines(data: bytes) -> list[bytes]:
    return data.split(b"\r\n")


def mutate(data: bytes, kind: str, a: int, b: int) -> bytes:
    size = len(data)
    at = a % (size + 1)
    if kind == "flip" and size:
        buf = bytearray(data)
        buf[a % size] ^= 1 << (b % 8)
        return bytes(buf)
    if kind == "byte" and size:
        buf = bytearray(data)
        buf[a % size] = INTERESTING[b % len(INTERESTING)]
        return bytes(buf)
    if kind == "insert":
        return data[:at] + TOKENS[b % len(TOKENS)] + data[at:]
    if kind == "delete":
        return data[:at] + data[at + 1 + b % 16 :]
    if kind in ("dup-line", "drop-line"):
        lines = _lines(data)
        i = a % len(lines)
        if kind == "dup-line":
            lines.insert(i, lines[i])
        elif len(lines) > 1:
            del lines[i]
        return b"\r\n".join(lines)
    if kind in ("lf", "cr"):
        crlfs = [m.start() for m in re.finditer(b"\r\n", data)]
        if not crlfs:
            return data
        new = b"\n" if kind == "lf" else b"\r"
        if b % 4 == 0:  # every line ending
            return data.replace(b"\r\n", new)
        i = crlfs[a % len(crlfs)]
        return data[:i] + new + data[i + 2 :]
    if kind == "splice":
        other = SEEDS[b % len(SEEDS)]
        return data[:at] + other[(a // 7) % (len(other) + 1) :]
    if kind == "header":
        lines = _lines(data)
        end = lines.index(b"") if b"" in lines else len(lines)
        i = 1 + a % max(1, end)
        lines.insert(min(i, len(lines)), DANGEROUS[b % len(DANGEROUS)])
        return b"\r\n".join(lines)
    if kind == "cut":
        return data[:at]
    return data


mutation = st.tuples(st.sampled_from(KINDS), st.integers(0, 1 << 16), st.integers(0, 1 << 16))
one_input = st.tuples(st.integers(0, len(SEEDS) - 1), st.lists(mutation, max_size=4))
batches = st.lists(one_input, min_size=BATCH, max_size=BATCH)


def build(seed: int, mutations: list[tuple[str, int, int]]) -> bytes:
    data = SEEDS[seed]
    for kind, a, b in mutations:
        data = mutate(data, kind, a, b)
    return data[:MAX_INPUT_BYTES]


# -- the oracle: is this input a complete, well-formed request? -------------------------------

_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,8}")


def complete(data: bytes) -> bool:
    """True when ``data`` starts with a well-formed request whose head and body are all there,
    so that any HTTP/1.1 server must answer it without waiting. False is "maybe not": those
    inputs may rightly go unanswered."""
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return False
    head, rest = data[:end], data[end + 4 :]
    if b"\r" in head.replace(b"\r\n", b"") or b"\n" in head.replace(b"\r\n", b""):
        return False
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ")
    if (
        len(parts) != 3
        or not _TOKEN.fullmatch(parts[0])
        or parts[2] not in (b"HTTP/1.1", b"HTTP/1.0")
    ):
        return False
    lengths, codings = [], []
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep or not _TOKEN.fullmatch(name):
            return False
        if name.lower() == b"content-length":
            lengths.append(value.strip(b" \t"))
        elif name.lower() == b"transfer-encoding":
            codings.append(value.strip(b" \t"))
    if lengths and codings:
        return False
    if lengths:
        return len(lengths) == 1 and lengths[0].isdigit() and len(rest) >= int(lengths[0])
    if codings:
        version_11 = parts[2] == b"HTTP/1.1"
        return version_11 and codings == [b"chunked"] and _chunked_complete(rest)
    return True


def _chunked_complete(body: bytes) -> bool:
    pos = 0
    while True:
        eol = body.find(b"\r\n", pos)
        if eol < 0:
            return False
        size_field = body[pos:eol].split(b";", 1)[0]
        if not _CHUNK_SIZE.fullmatch(size_field) or b"\n" in body[pos:eol]:
            return False
        size = int(size_field, 16)
        pos = eol + 2
        if size == 0:
            return body.find(b"\r\n\r\n", pos - 2) >= 0
        if body[pos + size : pos + size + 2] != b"\r\n":
            return False
        pos += size + 2


# -- sending a batch ---------------------------------------------------------------------------


@dataclass(slots=True)
class Conn:
    index: int
    data: bytes
    complete: bool
    sock: socket.socket
    edge: str
    received: bytearray = field(default_factory=bytearray)
    eof: bool = False
    reset: bool = False
    answered: bool = False  # a final response head came back


_STATUS = re.compile(rb"HTTP/\d\.\d (\d{3})")


def final_heads(data: bytes, *, only_first: bool = False) -> list[bytes]:
    """The status lines of the final responses at the start of ``data`` (1xx skipped), as far
    as they can be delimited (bodies skipped by Content-Length; a chunked body, or the answer
    to a HEAD, stops it). The first line is returned even when it is no status line."""
    heads: list[bytes] = []
    pos = 0
    while True:
        end = data.find(b"\r\n\r\n", pos)
        if end < 0:
            return heads
        lines = data[pos:end].split(b"\r\n")
        status = _STATUS.match(lines[0])
        if status is None:
            if not heads:
                heads.append(lines[0])
            return heads
        pos = end + 4
        if status.group(1).startswith(b"1"):
            continue
        heads.append(lines[0])
        if only_first:
            return heads
        length = None
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length" and value.strip().isdigit():
                length = int(value.strip())
        if length is None:
            return heads
        pos += length


@dataclass
class Stats:
    inputs: int = 0
    answered: int = 0
    silent_close: int = 0
    timeouts_incomplete: int = 0
    statuses: collections.Counter[int] = field(default_factory=collections.Counter)
    batches: int = 0
    started: float = field(default_factory=time.monotonic)

    def summary(self) -> str:
        top = ", ".join(f"{k}: {v}" for k, v in sorted(self.statuses.items()))
        return (
            f"http fuzz: {self.inputs} inputs in {self.batches} batches, "
            f"{time.monotonic() - self.started:.1f} s; {self.answered} answered, "
            f"{self.silent_close} closed without an answer, "
            f"{self.timeouts_incomplete} incomplete inputs left unanswered; statuses {{{top}}}"
        )


def _open(overlay: HttpOverlay, index: int, data: bytes) -> Conn:
    edge = overlay.EDGES[index % 2]
    source = f"127.0.9.{10 + index % 50}"
    sock = socket.create_connection(overlay.edge(edge), timeout=2.0, source_address=(source, 0))
    # Closing sends a reset: no TIME_WAIT pile-up over 10,000 connections.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn = Conn(index=index, data=data, complete=complete(data), sock=sock, edge=edge)
    try:
        sock.sendall(data)
    except OSError:
        conn.reset = True
    sock.setblocking(False)
    return conn


def _read(conn: Conn) -> None:
    try:
        chunk = conn.sock.recv(65536)
    except BlockingIOError:
        return
    except OSError:
        conn.reset = True
        return
    if not chunk:
        conn.eof = True
        return
    conn.received += chunk
    conn.answered = bool(final_heads(bytes(conn.received), only_first=True))


def run_batch(overlay: HttpOverlay, inputs: list[bytes], stats: Stats) -> list[str]:
    """Send every input on its own connection at once; the problems found."""
    conns = [_open(overlay, stats.inputs + i, data) for i, data in enumerate(inputs)]
    selector = selectors.DefaultSelector()
    try:
        for conn in conns:
            if not conn.reset:
                selector.register(conn.sock, selectors.EVENT_READ, conn)
        deadline = time.monotonic() + ANSWER_TIMEOUT_S
        grace_end = None
        while selector.get_map():
            now = time.monotonic()
            if now >= deadline or (grace_end is not None and now >= grace_end):
                break
            for key, _ in selector.select(timeout=0.02):
                conn = key.data
                _read(conn)
                if conn.answered or conn.eof or conn.reset:
                    selector.unregister(conn.sock)
            waiting = [k.data for k in selector.get_map().values()]
            if grace_end is None and not any(c.complete for c in waiting):
                grace_end = time.monotonic() + GRACE_S
    finally:
        selector.close()
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.sock.close()
    stats.inputs += len(inputs)
    stats.batches += 1
    return [p for conn in conns for p in _check(conn, stats)]


def _check(conn: Conn, stats: Stats) -> list[str]:
    received = bytes(conn.received)
    where = f"input {conn.index} to {conn.edge} {conn.data!r}"
    if received and not received.startswith(b"HTTP/1.1 "):
        return [f"{where}: the reply does not start with HTTP/1.1: {received[:200]!r}"]
    # After a HEAD the next response cannot be told from the first one's Content-Length.
    heads = final_heads(received, only_first=conn.data.startswith(b"HEAD"))
    problems = []
    for head in heads:
        status = _STATUS.match(head)
        if status is None or not head.startswith(b"HTTP/1.1 "):
            problems.append(f"{where}: not an HTTP/1.1 status line: {head[:200]!r}")
            continue
        code = int(status.group(1))
        stats.statuses[code] += 1
        if code == 504 and b"only-if-cached" in conn.data.lower():
            continue  # the answer RFC 9111 §5.2.1.7 demands on a miss
        if code in FAILURE_STATUSES:
            problems.append(f"{where}: answered {head!r}: {received[:600]!r}")
    if heads:
        stats.answered += 1
    elif conn.complete:
        kind = "closed the connection" if conn.eof or conn.reset else "never answered"
        problems.append(f"{where}: a complete request, but the node {kind}: {received!r}")
    elif conn.eof or conn.reset:
        stats.silent_close += 1
    else:
        stats.timeouts_incomplete += 1
    return problems


# -- the test ----------------------------------------------------------------------------------


def test_seeds_are_complete_requests() -> None:
    """The oracle is sound on the seeds: all are complete except the obfuscated ones."""
    assert len(SEEDS) >= 15
    incomplete = [s for s in SEEDS if not complete(s)]
    assert all(b"Transfer-Encoding" in s or b"\r\n " in s for s in incomplete), incomplete


def test_seeds_are_answered(http_overlay: HttpOverlay) -> None:
    """Every seed, unmutated, gets an answer that is no node failure."""
    stats = Stats()
    problems = run_batch(http_overlay, SEEDS * 2, stats)
    assert not problems, "\n".join(problems)
    assert stats.answered == 2 * len(SEEDS), stats.summary()


def test_http_fuzz(http_overlay: HttpOverlay) -> None:
    stats = Stats()
    next_health = HEALTH_EVERY

    @settings(
        max_examples=BATCHES,
        deadline=None,
        derandomize=True,
        database=None,
        phases=(Phase.explicit, Phase.generate),  # no shrinking: a failure names its inputs
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )
    @given(batch=batches)
    def fuzz(batch: list[tuple[int, list[tuple[str, int, int]]]]) -> None:
        nonlocal next_health
        inputs = [build(seed, mutations) for seed, mutations in batch]
        problems = run_batch(http_overlay, inputs, stats)
        dead = http_overlay.dead()
        assert not dead, f"nodes died: {dead}\n" + "\n".join(http_overlay.log(n) for n in dead)
        assert not problems, f"{len(problems)} problems:\n" + "\n".join(problems[:20])
        if stats.inputs >= next_health:
            next_health += HEALTH_EVERY
            http_overlay.assert_in_sync(f"after {stats.inputs} fuzz inputs")

    fuzz()
    print(stats.summary())
    assert stats.inputs >= BATCH * BATCHES, stats.summary()
    http_overlay.assert_in_sync("after the fuzz run")
