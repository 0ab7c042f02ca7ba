"""The router's DNS behaviour over real UDP and TCP sockets on loopback.

RFC 1034/1035 (authority, NXDOMAIN, NODATA), RFC 2308 §2 (SOA in negative answers), RFC 6891
(EDNS0 payload size, BADVERS), RFC 7871 (client subnet scope), RFC 8482 (minimal ANY).
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import dns.asyncquery
import dns.edns
import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.rdatatype
import pytest

from tests.router.conftest import LONG_HOST, V6_EDGES

pytestmark = pytest.mark.timeout(30)


def addr(router: Any) -> tuple[str, int]:
    return "127.0.0.1", router.config.dns.listen.port


async def udp(router: Any, query: Any, **kw: Any) -> Any:
    host, port = addr(router)
    return await dns.asyncquery.udp(query, host, port=port, timeout=3, **kw)


async def tcp(router: Any, query: Any) -> Any:
    host, port = addr(router)
    return await dns.asyncquery.tcp(query, host, port=port, timeout=3)


async def raw_udp_async(router: Any, data: bytes, timeout: float = 1.0) -> bytes | None:
    return await asyncio.to_thread(raw_udp, router, data, timeout)


def raw_udp(router: Any, data: bytes, timeout: float = 1.0) -> bytes | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.sendto(data, addr(router))
        try:
            return sock.recv(65535)
        except TimeoutError:
            return None


def answers(response: Any) -> list[str]:
    return sorted(rd.to_text() for rrset in response.answer for rd in rrset)


class TestAuthority:
    async def test_soa_at_apex_is_authoritative(self, start_router):
        router = await start_router()
        response = await udp(router, dns.message.make_query("cdn.test", "SOA"))
        assert response.rcode() == dns.rcode.NOERROR
        assert response.flags & dns.flags.AA
        assert response.answer[0].rdtype == dns.rdatatype.SOA

    async def test_ns_at_apex_with_glue(self, start_router):
        router = await start_router()
        response = await udp(router, dns.message.make_query("cdn.test", "NS"))
        assert answers(response) == ["ns.cdn.test."]
        assert response.flags & dns.flags.AA
        assert [r.to_text() for r in response.additional[0]] == ["127.0.0.1"]

    async def test_a_for_hostname_is_an_edge_address(self, start_router):
        router = await start_router()
        response = await udp(router, dns.message.make_query("www.cdn.test", "A"))
        assert response.flags & dns.flags.AA
        assert answers(response) == ["127.0.1.1"]  # "local" network: edge-a has 5 ms
        assert response.answer[0].ttl == 20

    async def test_question_case_is_echoed(self, start_router):
        router = await start_router()
        query = dns.message.make_query("WwW.CdN.tEsT", "A")
        response = await udp(router, query)
        assert response.question[0].name.to_text() == "WwW.CdN.tEsT."
        assert answers(response) == ["127.0.1.1"]

    async def test_nxdomain_carries_soa(self, start_router):
        router = await start_router()
        response = await udp(router, dns.message.make_query("missing.cdn.test", "A"))
        assert response.rcode() == dns.rcode.NXDOMAIN
        assert response.flags & dns.flags.AA
        assert response.authority[0].rdtype == dns.rdatatype.SOA

    @pytest.mark.parametrize(
        ("name", "rdtype"), [("www.cdn.test", "MX"), ("deep.cdn.test", "A"), ("cdn.test", "A")]
    )
    async def test_nodata_for_existing_name_without_type(self, start_router, name, rdtype):
        router = await start_router()
        response = await udp(router, dns.message.make_query(name, rdtype))
        assert response.rcode() == dns.rcode.NOERROR
        assert response.answer == []
        assert response.authority[0].rdtype == dns.rdatatype.SOA

    async def test_nodata_when_no_edge_of_that_family(self, start_router):
        router = await start_router()  # answers = 1: edge-a, IPv4 only
        response = await udp(router, dns.message.make_query("www.cdn.test", "AAAA"))
        assert response.rcode() == dns.rcode.NOERROR
        assert response.answer == []
        assert response.authority[0].rdtype == dns.rdatatype.SOA

    async def test_aaaa_for_ipv6_edge(self, start_router):
        router = await start_router(answers=3)
        response = await udp(router, dns.message.make_query("www.cdn.test", "AAAA"))
        assert answers(response) == ["2001:db8::3"]
        response = await udp(router, dns.message.make_query("www.cdn.test", "A"))
        assert answers(response) == ["127.0.1.1", "127.0.1.2"]

    @pytest.mark.parametrize("name", ["www.example.org", "example.", "cdn.test.evil"])
    async def test_refused_outside_zone(self, start_router, name):
        router = await start_router()
        response = await udp(router, dns.message.make_query(name, "A"))
        assert response.rcode() == dns.rcode.REFUSED
        assert not response.flags & dns.flags.AA

    async def test_refused_for_chaos_class(self, start_router):
        router = await start_router()
        query = dns.message.make_query("version.bind", "TXT", rdclass="CH")
        response = await udp(router, query)
        assert response.rcode() == dns.rcode.REFUSED

    async def test_any_gets_one_rrset(self, start_router):
        router = await start_router()
        response = await udp(router, dns.message.make_query("www.cdn.test", "ANY"))
        assert len(response.answer) == 1
        assert response.answer[0].rdtype == dns.rdatatype.A


class TestErrors:
    async def test_notimp_for_other_opcode(self, start_router):
        router = await start_router()
        query = dns.message.make_query("www.cdn.test", "A")
        query.set_opcode(dns.opcode.STATUS)
        response = await udp(router, query)
        assert response.rcode() == dns.rcode.NOTIMP

    async def test_formerr_on_garbage_with_readable_header(self, start_router):
        router = await start_router()
        data = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00" + b"\xff\xfe\x00garbage"
        reply = await raw_udp_async(router, data)
        assert reply is not None
        response = dns.message.from_wire(reply)
        assert response.id == 0x1234
        assert response.rcode() == dns.rcode.FORMERR

    async def test_short_packet_is_dropped(self, start_router):
        router = await start_router()
        assert await raw_udp_async(router, b"\x12\x34\x01", timeout=0.3) is None
        good = dns.message.make_query("www.cdn.test", "A")
        assert await raw_udp_async(router, good.to_wire()) is not None

    async def test_responses_are_never_answered(self, start_router):
        router = await start_router()
        query = dns.message.make_query("www.cdn.test", "A")
        query.flags |= dns.flags.QR
        assert await raw_udp_async(router, query.to_wire(), timeout=0.3) is None

    async def test_two_questions_is_formerr(self, start_router):
        router = await start_router()
        query = dns.message.make_query("www.cdn.test", "A")
        query.question.append(dns.message.make_query("cdn.test", "SOA").question[0])
        response = await udp(router, query)
        assert response.rcode() == dns.rcode.FORMERR

    async def test_bad_ecs_is_formerr(self, start_router):
        router = await start_router()
        option = dns.edns.GenericOption(
            dns.edns.OptionType.ECS, b"\x00\x01\x18\x00\x01\x02\x03\x04"
        )  # 4 bytes for /24
        query = dns.message.make_query("www.cdn.test", "A", use_edns=0, options=[option])
        reply = await raw_udp_async(router, query.to_wire())
        assert reply is not None
        assert dns.message.from_wire(reply).rcode() == dns.rcode.FORMERR


class TestEdns:
    async def test_badvers_for_unknown_version(self, start_router):
        router = await start_router()
        query = dns.message.make_query("www.cdn.test", "A", use_edns=1)
        response = await udp(router, query)
        assert response.rcode() == dns.rcode.BADVERS
        assert response.edns == 0
        assert response.answer == []

    async def test_payload_is_advertised(self, start_router):
        router = await start_router()
        query = dns.message.make_query("www.cdn.test", "A", use_edns=0, payload=4096)
        response = await udp(router, query)
        assert response.edns == 0
        assert response.payload == 1232

    async def test_tc_without_edns_then_tcp_gets_it_all(self, start_router):
        router = await start_router(edges=V6_EDGES, answers=16)  # no reports: all 16 answered
        query = dns.message.make_query(LONG_HOST, "AAAA", use_edns=False)
        truncated = await udp(router, query)
        assert truncated.flags & dns.flags.TC
        assert truncated.answer == []
        full = await tcp(router, query)
        assert not full.flags & dns.flags.TC
        assert len(answers(full)) == 16
        assert len(full.to_wire()) > 512

    @pytest.mark.parametrize(("payload", "truncated"), [(512, True), (600, True), (1232, False)])
    async def test_udp_answer_never_exceeds_the_invited_size(
        self, start_router, payload, truncated
    ):
        router = await start_router(edges=V6_EDGES, answers=16)
        query = dns.message.make_query(LONG_HOST, "AAAA", use_edns=0, payload=payload)
        reply = await raw_udp_async(router, query.to_wire())
        assert reply is not None
        assert len(reply) <= max(512, payload)
        response = dns.message.from_wire(reply)
        assert bool(response.flags & dns.flags.TC) is truncated


class TestClientSubnet:
    @pytest.mark.parametrize(
        ("subnet", "source_len", "edge", "scope"),
        [
            (
                "127.10.0.0",
                24,
                "127.0.1.1",
                22,
            ),  # "eu" /16; "eu-lab" (127.10.5/24) differs at bit 22
            ("127.10.200.0", 24, "127.0.1.1", 17),  # far from eu-lab: /17 is enough
            ("127.10.5.0", 24, "127.0.1.2", 24),  # "eu-lab": edge-b has 8 ms
            ("127.20.7.0", 24, "127.0.1.2", 16),  # "us": edge-b 20 ms
            ("198.51.100.0", 24, "127.0.1.1", 1),  # unknown: best median, first bit decides
            ("2001:db8:100:100::", 56, "127.0.1.2", 48),  # "us" by its IPv6 prefix
        ],
    )
    async def test_answer_and_scope_follow_the_subnet(
        self, start_router, subnet, source_len, edge, scope
    ):
        router = await start_router()
        option = dns.edns.ECSOption(subnet, source_len)
        query = dns.message.make_query("www.cdn.test", "A", use_edns=0, options=[option])
        response = await udp(router, query)
        assert answers(response) == [edge]
        (echo,) = response.options
        assert isinstance(echo, dns.edns.ECSOption)
        assert (echo.address, echo.srclen, echo.scopelen) == (subnet, source_len, scope)

    async def test_source_address_when_no_subnet(self, start_router):
        router = await start_router()  # 127.0.0.1 is in "local": edge-a 5 ms
        response = await udp(router, dns.message.make_query("www.cdn.test", "A", use_edns=0))
        assert answers(response) == ["127.0.1.1"]
        assert response.options == ()

    async def test_source_prefix_zero_gets_scope_zero(self, start_router):
        router = await start_router()
        option = dns.edns.ECSOption("0.0.0.0", 0)
        query = dns.message.make_query("www.cdn.test", "A", use_edns=0, options=[option])
        response = await udp(router, query)
        assert response.options[0].scopelen == 0
        assert answers(response) == ["127.0.1.1"]

    async def test_negative_answers_have_scope_zero(self, start_router):
        router = await start_router()
        option = dns.edns.ECSOption("127.10.5.0", 24)
        query = dns.message.make_query("nope.cdn.test", "A", use_edns=0, options=[option])
        response = await udp(router, query)
        assert response.rcode() == dns.rcode.NXDOMAIN
        assert response.options[0].scopelen == 0


class TestFastPath:
    """The precomputed-wire path answers exactly like the general dnspython path."""

    QUERIES = [
        ("www.cdn.test", "A", None),
        ("WWW.cdn.test", "A", ("127.10.5.0", 24)),
        ("www.cdn.test", "AAAA", ("127.20.0.0", 16)),
        ("img.deep.cdn.test", "A", ("2001:db8:100::", 48)),
        ("www.cdn.test", "A", ("127.10.0.0", 20)),
    ]

    @pytest.mark.parametrize(("name", "rdtype", "ecs"), QUERIES)
    async def test_same_answer_both_paths(self, start_router, name, rdtype, ecs):
        router = await start_router(answers=2)
        options: list[dns.edns.Option] = [] if ecs is None else [dns.edns.ECSOption(*ecs)]
        query = dns.message.make_query(name, rdtype, use_edns=0, options=options)
        fast = await raw_udp_async(router, query.to_wire())
        router.fast_path = False
        slow = await raw_udp_async(router, query.to_wire())
        assert fast is not None and slow is not None
        assert dns.message.from_wire(fast) == dns.message.from_wire(slow)
        assert dns.message.from_wire(fast).options == dns.message.from_wire(slow).options
