"""The cached fast path answers byte for byte like the general dnspython path.

Each query of the table is sent over UDP to a router with the fast path on (first to fill its
caches, then again with another id and letter case, or another client subnet of the same shape,
so that the patched copies are checked too), then with the fast path off; the responses must be
identical bytes. Also: metrics still count every cached answer, the source address still picks
the answer, round-robin still rotates, and the wire parser refuses what it cannot copy.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import dns.edns
import dns.message
import dns.rcode
import pytest
from prometheus_client import CollectorRegistry

from controlplane.feed import StaticSource
from router import wire
from router.server import DnsRouter
from tests.conftest import free_port
from tests.router.conftest import LONG_HOST, V6_EDGES, default_reports, make_config, snapshot_of

pytestmark = pytest.mark.timeout(60)

V4_A = ("127.10.0.0", 24)  # "eu", scope 22
V4_B = ("127.10.1.0", 24)  # "eu" too, same scope: the same cached answer, another address
V6_A = ("2001:db8:100:100::", 56)  # "us"
V6_B = ("2001:db8:100:200::", 56)

# (name, type, EDNS payload or None for no EDNS, ECS (address, prefix) or None)
QUERIES = [
    ("www.cdn.test", "A", None, None),
    ("www.cdn.test", "A", 1232, None),
    ("www.cdn.test", "A", 4096, None),
    ("www.cdn.test", "A", 600, V4_A),
    ("www.cdn.test", "AAAA", 1232, V4_A),
    ("www.cdn.test", "A", 1232, V6_A),
    ("www.cdn.test", "A", 1232, ("0.0.0.0", 0)),
    ("www.cdn.test", "A", 1232, ("198.51.100.0", 24)),
    ("www.cdn.test", "A", 1232, ("127.10.5.128", 25)),
    ("www.cdn.test", "ANY", 1232, V4_A),
    ("www.cdn.test", "MX", 1232, V4_A),
    ("img.deep.cdn.test", "AAAA", None, None),
    ("deep.cdn.test", "A", 1232, None),
    ("cdn.test", "SOA", None, None),
    ("cdn.test", "SOA", 1232, V4_A),
    ("cdn.test", "NS", None, None),
    ("cdn.test", "NS", 1232, V6_A),
    ("cdn.test", "ANY", None, None),
    ("ns.cdn.test", "A", None, None),
    ("ns.cdn.test", "AAAA", 1232, None),
    ("nope.cdn.test", "A", None, None),
    ("nope.cdn.test", "AAAA", 1232, V4_A),
    ("www.example.org", "A", None, None),
    ("www.example.org", "A", 1232, V4_A),
    ("cdn.test", "AXFR", None, None),  # zone transfers: REFUSED, cached like any answer
    ("www.cdn.test", "AXFR", 1232, V4_A),
    (LONG_HOST, "AAAA", None, None),  # sixteen IPv6 edges: TC
    (LONG_HOST, "AAAA", 512, V6_A),
    (LONG_HOST, "AAAA", 1232, None),
]


def make_wire(name: str, rdtype: str, payload: int | None, ecs: Any, qid: int) -> bytes:
    options: list[dns.edns.Option] = [] if ecs is None else [dns.edns.ECSOption(*ecs)]
    if payload is None:
        query = dns.message.make_query(name, rdtype, use_edns=False)
    else:
        query = dns.message.make_query(name, rdtype, use_edns=0, payload=payload, options=options)
    query.id = qid
    return query.to_wire()


def exchange(port: int, data: bytes, source: str = "127.0.0.1") -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((source, 0))
        sock.settimeout(3)
        sock.sendto(data, ("127.0.0.1", port))
        return sock.recv(65535)


def mixed_case(name: str) -> str:
    return "".join(c.upper() if i % 2 else c for i, c in enumerate(name))


def variants(name: str, rdtype: str, payload: int | None, ecs: Any) -> list[bytes]:
    """The query, then others that must hit the cached copy: new id and case, other subnet."""
    other_ecs = {V4_A: V4_B, V6_A: V6_B}.get(ecs, ecs)
    return [
        make_wire(name, rdtype, payload, ecs, 0x1234),
        make_wire(name, rdtype, payload, ecs, 0x1234),
        make_wire(mixed_case(name), rdtype, payload, ecs, 0xBEEF),
        make_wire(name, rdtype, payload, other_ecs, 0x0101),
    ]


SETUPS: dict[str, dict[str, Any]] = {
    "reported edges": {"answers": 2},  # latency routing differs by network
    "sixteen IPv6 edges": {"edges": V6_EDGES, "answers": 16},  # long answers, TC
}


@pytest.mark.parametrize("setup", SETUPS)
async def test_fast_and_general_paths_give_identical_bytes(start_router, setup):
    router = await start_router(**SETUPS[setup], rate_limit_qps=1e6, rate_limit_burst=1e6)
    port = router.config.dns.listen.port
    seen_rcodes = set()
    for name, rdtype, payload, ecs in QUERIES:
        queries = variants(name, rdtype, payload, ecs)
        router.fast_path = True
        fast = [await asyncio.to_thread(exchange, port, q) for q in queries]
        router.fast_path = False
        slow = [await asyncio.to_thread(exchange, port, q) for q in queries]
        for query, fast_reply, slow_reply in zip(queries, fast, slow, strict=True):
            assert fast_reply == slow_reply, (name, rdtype, payload, ecs, query.hex())
        seen_rcodes.add(dns.message.from_wire(fast[0]).rcode())
    assert seen_rcodes == {dns.rcode.NOERROR, dns.rcode.NXDOMAIN, dns.rcode.REFUSED}


@pytest.mark.parametrize("setup", SETUPS)
async def test_handle_over_tcp_matches_the_general_path(start_router, setup):
    router = await start_router(**SETUPS[setup])
    for name, rdtype, payload, ecs in QUERIES:
        data = make_wire(name, rdtype, payload, ecs, 7)
        fast = [router.handle(data, "127.0.0.1", tcp=True) for _ in range(2)]
        router.fast_path = False
        slow = router.handle(data, "127.0.0.1", tcp=True)
        router.fast_path = True
        assert fast[0] == fast[1] == slow, (name, rdtype, payload, ecs)


async def test_cached_answers_are_counted():
    config = make_config(free_port())
    registry = CollectorRegistry()
    router = DnsRouter(config, StaticSource(snapshot_of(*default_reports())), registry=registry)
    await router.start()
    try:
        port = config.dns.listen.port
        data = make_wire("www.cdn.test", "A", None, None, 1)
        for _ in range(5):
            await asyncio.to_thread(exchange, port, data)
        await asyncio.to_thread(exchange, port, make_wire("nope.cdn.test", "A", None, None, 2))
    finally:
        await router.close()
    value = registry.get_sample_value
    assert value("cdn_router_queries_total", {"qtype": "A", "rcode": "NOERROR"}) == 5
    assert value("cdn_router_queries_total", {"qtype": "A", "rcode": "NXDOMAIN"}) == 1
    assert value("cdn_router_answers_total", {"edge": "edge-a", "network": "local"}) == 5
    assert value("cdn_router_decisions_total", {"reason": "lowest_rtt"}) == 5
    sampled = value("cdn_router_decision_seconds_count", {})
    assert sampled is not None and sampled >= 1


async def test_source_address_still_picks_the_answer(start_router):
    router = await start_router()
    port = router.config.dns.listen.port
    data = make_wire("www.cdn.test", "A", 1232, None, 9)
    for _ in range(2):  # the second round comes from the caches
        local = dns.message.from_wire(await asyncio.to_thread(exchange, port, data))
        lab = dns.message.from_wire(await asyncio.to_thread(exchange, port, data, "127.10.5.1"))
        assert local.answer[0][0].to_text() == "127.0.1.1"  # "local": edge-a 5 ms
        assert lab.answer[0][0].to_text() == "127.0.1.2"  # "eu-lab": edge-b 8 ms


async def test_round_robin_still_rotates(start_router):
    router = await start_router(policy="round-robin")  # edge-a, edge-b (IPv4), edge-c (IPv6)
    port = router.config.dns.listen.port
    data = make_wire("www.cdn.test", "A", None, None, 3)
    seen = []
    for _ in range(6):
        reply = dns.message.from_wire(await asyncio.to_thread(exchange, port, data))
        seen.append(reply.answer[0][0].to_text() if reply.answer else "NODATA")
    assert set(seen) == {"127.0.1.1", "127.0.1.2", "NODATA"}


class TestParseSimple:
    def test_plain_query(self):
        data = make_wire("WwW.cdn.test", "AAAA", None, None, 5)
        query = wire.parse_simple(data)
        assert query is not None
        assert query.qname == b"\x03www\x03cdn\x04test\x00"
        assert (query.qtype, query.payload, query.ecs) == (28, None, None)
        assert query.question_end == len(data)

    def test_client_subnet(self):
        query = wire.parse_simple(make_wire("www.cdn.test", "A", 1400, ("127.10.5.128", 25), 5))
        assert query is not None and query.ecs is not None
        assert query.payload == 1400
        assert (query.ecs.family, query.ecs.source_len, query.ecs.address) == (
            1,
            25,
            bytes((127, 10, 5, 128)),
        )
        assert str(query.ecs.client()) == "127.10.5.128"

    @pytest.mark.parametrize(
        "mutate",
        [
            lambda d: d[:2] + bytes((d[2] | 0x80,)) + d[3:],  # a response
            lambda d: d[:2] + bytes((d[2] | 0x28,)) + d[3:],  # opcode UPDATE
            lambda d: d[:5] + b"\x02" + d[6:],  # two questions
            lambda d: d[:-2] + b"\x00\x03",  # class CH
            lambda d: d + b"\x00",  # trailing garbage
            lambda d: d[:12] + b"\xc0\x0c" + d[-4:],  # compressed question name
            lambda d: d[:16],  # truncated question
        ],
    )
    def test_unusual_shapes_take_the_general_path(self, mutate):
        assert wire.parse_simple(mutate(make_wire("www.cdn.test", "A", None, None, 5))) is None

    @pytest.mark.parametrize(
        "options",
        [
            [dns.edns.GenericOption(dns.edns.OptionType.COOKIE, b"12345678")],  # a cookie
            [
                dns.edns.ECSOption("127.10.5.0", 24),
                dns.edns.GenericOption(dns.edns.OptionType.COOKIE, b"12345678"),
            ],
        ],
    )
    def test_other_edns_options_take_the_general_path(self, options):
        query = dns.message.make_query("www.cdn.test", "A", use_edns=0, options=options)
        assert wire.parse_simple(query.to_wire()) is None

    def test_edns_version_one_takes_the_general_path(self):
        query = dns.message.make_query("www.cdn.test", "A", use_edns=1)
        assert wire.parse_simple(query.to_wire()) is None

    def test_ecs_with_bits_beyond_the_prefix_takes_the_general_path(self):
        data = bytearray(make_wire("www.cdn.test", "A", 1232, ("127.10.5.0", 23), 5))
        data[-1] |= 0x01  # the host bit past /23 of the third byte
        assert wire.parse_simple(bytes(data)) is None
