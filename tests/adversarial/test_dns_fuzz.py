"""A mutation fuzzer against a real `cdn router` process: hostile DNS must never bring it down.

Hypothesis mutates the committed corpus ``seeds/dns.txt`` (flipped bits, boundary values in
header fields, compression pointers, inserted, deleted, repeated and spliced bytes, cuts) and
mixes in some pure noise. 10,000 inputs go over UDP and 1,500 more over TCP, framed, unframed,
with a wrong length or followed by a valid query. Each reply must be a DNS response with the
query's id and no SERVFAIL; the process must stay up, log no exception and count no error; and
every 1,000 inputs a plain query must still get NOERROR with an A record (:mod:`dns_harness`).

The run is derandomized with no example database, so CI sends the same inputs every time; a
failure prints the input as bytes. It takes 20 to 30 s on a 2-core machine.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from prometheus_client.parser import text_string_to_metric_families

from tests.adversarial.dns_harness import Fuzzer, RouterProcess, load_seeds

pytestmark = pytest.mark.timeout(120)  # a bound on a hang; the run takes 20-30 s

UDP_INPUTS = 10_000
TCP_INPUTS = 1_500
MAX_MUTATIONS = 6
MAX_INPUT_BYTES = 4096

SEEDS = load_seeds()

FUZZ = settings(
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=False,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
        HealthCheck.filter_too_much,
    ],
)


# -- mutations: each edits a bytearray in place; positions wrap around its length -------------

Buffer = bytearray


def flip(data: Buffer, pos: int, bit: int) -> None:
    if data:
        data[pos % len(data)] ^= 1 << bit


def set_byte(data: Buffer, pos: int, value: int) -> None:
    if data:
        data[pos % len(data)] = value


def set_u16(data: Buffer, pos: int, value: int) -> None:
    at = pos % (len(data) + 1)
    data[at : at + 2] = value.to_bytes(2, "big")


def set_header_field(data: Buffer, field: int, value: int) -> None:
    """One of the six 16-bit header fields: id, flags, and the four section counts."""
    if len(data) >= 2 * field + 2:
        data[2 * field : 2 * field + 2] = value.to_bytes(2, "big")


def insert(data: Buffer, pos: int, chunk: bytes) -> None:
    at = pos % (len(data) + 1)
    data[at:at] = chunk


def delete(data: Buffer, pos: int, count: int) -> None:
    at = pos % (len(data) + 1)
    del data[at : at + count]


def cut(data: Buffer, pos: int) -> None:
    del data[pos % (len(data) + 1) :]


def pointer(data: Buffer, pos: int, target: int) -> None:
    """A compression pointer (RFC 1035 §4.1.4) written over two bytes."""
    set_u16(data, pos, 0xC000 | target)


def repeat(data: Buffer, pos: int, width: int, times: int) -> None:
    at = pos % (len(data) + 1)
    data[at:at] = data[at : at + width] * times


def splice(data: Buffer, pos: int, other: bytes, other_pos: int) -> None:
    """Our head, then another seed's tail."""
    data[pos % (len(data) + 1) :] = other[other_pos % (len(other) + 1) :]


POSITION = st.integers(0, 1 << 16)
BOUNDARY_BYTES = st.sampled_from([0x00, 0x01, 0x3F, 0x40, 0x7F, 0x80, 0xC0, 0xFF])
BOUNDARY_U16 = st.sampled_from(
    [0, 1, 2, 12, 41, 63, 64, 255, 256, 512, 1232, 0x3FFF, 0x7FFF, 0x8000, 0xC00C, 0xFFFF]
)
MUTATION = st.one_of(
    st.tuples(st.just(flip), POSITION, st.integers(0, 7)),
    st.tuples(st.just(set_byte), POSITION, BOUNDARY_BYTES | st.integers(0, 255)),
    st.tuples(st.just(set_u16), POSITION, BOUNDARY_U16 | st.integers(0, 0xFFFF)),
    st.tuples(st.just(set_header_field), st.integers(0, 5), BOUNDARY_U16),
    st.tuples(st.just(insert), POSITION, st.binary(min_size=1, max_size=16)),
    st.tuples(st.just(delete), POSITION, st.integers(1, 16)),
    st.tuples(st.just(cut), POSITION),
    st.tuples(st.just(pointer), POSITION, st.integers(0, 0x3FFF)),
    st.tuples(st.just(repeat), POSITION, st.integers(1, 32), st.integers(1, 8)),
    st.tuples(st.just(splice), POSITION, st.sampled_from(SEEDS), POSITION),
)


@st.composite
def packets(draw: st.DrawFn) -> bytes:
    """A seed with a few mutations, or (one time in ten) random bytes.

    Most inputs get one or two mutations, so that they stay close enough to a query to reach
    the answering code and its caches; a third get up to MAX_MUTATIONS.
    """
    if draw(st.integers(0, 9)) == 9:
        noise: bytes = draw(st.binary(max_size=600))
        return noise
    data = bytearray(draw(st.sampled_from(SEEDS)))
    most = draw(st.sampled_from([1, 2, MAX_MUTATIONS]))
    for mutate, *args in draw(st.lists(MUTATION, max_size=most)):
        mutate(data, *args)
    return bytes(data[:MAX_INPUT_BYTES])


def framed(data: bytes) -> bytes:
    return len(data).to_bytes(2, "big") + data


PLAIN_QUERY = SEEDS[0]  # "A www.cdn.test, no EDNS"


@st.composite
def tcp_streams(draw: st.DrawFn) -> bytes:
    """A packet framed as TCP needs it, sent as it is, with any length, or before a query."""
    data: bytes = draw(packets())
    framing = draw(st.sampled_from(["framed", "raw", "any length", "then a query"]))
    if framing == "framed":
        return framed(data)
    if framing == "raw":  # the TCP seeds carry their own length prefix
        return data
    if framing == "any length":
        length: int = draw(BOUNDARY_U16 | st.integers(0, 0xFFFF))
        return length.to_bytes(2, "big") + data
    return framed(data) + framed(PLAIN_QUERY)


# -- the router under test ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def fuzzer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fuzzer]:
    router = RouterProcess(Path(tmp_path_factory.mktemp("dns-fuzz")))
    fuzzer = None
    try:
        router.wait_ready()
        fuzzer = Fuzzer(router)
        yield fuzzer
    finally:
        if fuzzer is not None:
            fuzzer.close()
        status = router.stop()
    assert status == 0, router.log_text()


def assert_survived(fuzzer: Fuzzer) -> None:
    """Up, answering, no exception logged and none counted (a crash drops its query)."""
    fuzzer.check_health()
    log = fuzzer.router.log_text()
    assert "Traceback" not in log and "failed to answer" not in log, log
    errors = [
        sample.value
        for family in text_string_to_metric_families(fuzzer.router.metrics())
        for sample in family.samples
        if sample.name == "cdn_router_dropped_total" and sample.labels.get("cause") == "error"
    ]
    assert sum(errors) == 0


def test_mutated_queries_over_udp(fuzzer: Fuzzer) -> None:
    before = dict(fuzzer.sent)

    @settings(FUZZ, max_examples=UDP_INPUTS)
    @given(packet=packets())
    def send(packet: bytes) -> None:
        fuzzer.fuzz_udp(packet)

    send()
    assert fuzzer.sent["udp"] - before["udp"] >= UDP_INPUTS
    assert fuzzer.replies["udp"] > UDP_INPUTS // 4  # plenty of mutants are still answerable
    assert_survived(fuzzer)


def test_mutated_streams_over_tcp(fuzzer: Fuzzer) -> None:
    before = dict(fuzzer.sent)

    @settings(FUZZ, max_examples=TCP_INPUTS)
    @given(stream=tcp_streams())
    def send(stream: bytes) -> None:
        fuzzer.fuzz_tcp(stream)

    send()
    assert fuzzer.sent["tcp"] - before["tcp"] >= TCP_INPUTS
    assert fuzzer.replies["tcp"] > TCP_INPUTS // 4
    assert_survived(fuzzer)
