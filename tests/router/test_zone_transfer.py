"""Zone transfers are refused: AXFR (RFC 5936) and IXFR (RFC 1995) get one REFUSED response.

Over UDP and TCP, for the apex, a name in the zone and a name outside it; the question is
echoed, nothing is transferred, the connection goes on answering, the cached fast path gives the
same bytes as the general path, and dnspython's own transfer client sees the refusal.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import dns.asyncquery
import dns.edns
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset
import dns.xfr
import dns.zone
import pytest

pytestmark = pytest.mark.timeout(30)

NAMES = ["cdn.test", "www.cdn.test", "www.example.org"]


def axfr(name: str, qid: int = 0x4242, **kw: Any) -> dns.message.Message:
    query = dns.message.make_query(name, "AXFR", **kw)
    query.id = qid
    return query


def ixfr(name: str, serial: int = 1, qid: int = 0x4343) -> dns.message.Message:
    """An IXFR query: the client's SOA (with its serial) goes in the authority section."""
    query = dns.message.make_query(name, "IXFR")
    query.id = qid
    soa = f"ns.{name}. hostmaster.{name}. {serial} 3600 600 86400 20"
    query.authority.append(dns.rrset.from_text(f"{name}.", 0, "IN", "SOA", soa))
    return query


def framed(query: dns.message.Message) -> bytes:
    data = query.to_wire()
    return len(data).to_bytes(2, "big") + data


def udp_exchange(port: int, data: bytes) -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(3)
        sock.sendto(data, ("127.0.0.1", port))
        return sock.recv(65535)


def assert_refused(query: dns.message.Message, response: dns.message.Message) -> None:
    assert response.id == query.id
    assert response.flags & dns.flags.QR
    assert response.rcode() == dns.rcode.REFUSED
    assert response.question == query.question
    assert (response.answer, response.authority, response.additional) == ([], [], [])
    assert not response.flags & dns.flags.AA


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("make", [axfr, ixfr], ids=["AXFR", "IXFR"])
async def test_refused_over_udp(start_router, make, name):
    router = await start_router()
    query = make(name)
    reply = await asyncio.to_thread(udp_exchange, router.config.dns.listen.port, query.to_wire())
    assert_refused(query, dns.message.from_wire(reply))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("make", [axfr, ixfr], ids=["AXFR", "IXFR"])
async def test_refused_over_tcp(start_router, make, name):
    router = await start_router()
    query = make(name)
    port = router.config.dns.listen.port
    response = await dns.asyncquery.tcp(query, "127.0.0.1", port=port, timeout=3)
    assert_refused(query, response)


async def test_one_message_then_the_connection_goes_on(start_router):
    """The refusal is the only message for the AXFR: the next one answers the next query."""
    router = await start_router()
    reader, writer = await asyncio.open_connection("127.0.0.1", router.config.dns.listen.port)
    try:
        queries = [axfr("cdn.test", 1), dns.message.make_query("www.cdn.test", "A", id=2)]
        writer.write(b"".join(framed(q) for q in queries))
        writer.write_eof()
        async with asyncio.timeout(5):
            stream = await reader.read()  # until the router closes: it saw our end of stream
    finally:
        writer.close()
        await writer.wait_closed()
    replies = []
    while stream:
        size = int.from_bytes(stream[:2], "big")
        replies.append(dns.message.from_wire(stream[2 : 2 + size]))
        stream = stream[2 + size :]
    assert len(replies) == 2
    assert_refused(queries[0], replies[0])
    assert replies[1].id == 2 and replies[1].rcode() == dns.rcode.NOERROR
    assert replies[1].answer[0].rdtype == dns.rdatatype.A


@pytest.mark.parametrize(
    "query",
    [
        axfr("cdn.test"),
        axfr("CdN.tEsT", use_edns=0),
        axfr("www.cdn.test", use_edns=0, options=[dns.edns.ECSOption("127.10.5.0", 24)]),
    ],
    ids=["plain", "edns", "ecs"],
)
async def test_fast_path_gives_the_general_answer(start_router, query):
    router = await start_router()
    port = router.config.dns.listen.port
    data = query.to_wire()
    fast = [await asyncio.to_thread(udp_exchange, port, data) for _ in range(3)]  # fills, hits
    router.fast_path = False
    slow = await asyncio.to_thread(udp_exchange, port, data)
    assert fast == [slow] * 3
    assert_refused(query, dns.message.from_wire(slow))


async def test_refusals_are_counted_by_type(start_router):
    router = await start_router()
    port = router.config.dns.listen.port
    for query in (axfr("cdn.test"), axfr("cdn.test"), ixfr("cdn.test")):
        await asyncio.to_thread(udp_exchange, port, query.to_wire())
    value = router.metrics._counts.replies.get
    assert value((dns.rdatatype.AXFR, dns.rcode.REFUSED)) == 2
    assert value((dns.rdatatype.IXFR, dns.rcode.REFUSED)) == 1


@pytest.mark.parametrize("serial", [None, 0], ids=["AXFR", "IXFR"])
async def test_dnspython_transfer_client_is_refused(start_router, serial):
    router = await start_router()
    zone = dns.zone.Zone("cdn.test.")
    query, _ = dns.xfr.make_query(zone, serial=serial)
    with pytest.raises(dns.xfr.TransferError, match="REFUSED"):
        await dns.asyncquery.inbound_xfr(
            "127.0.0.1", zone, query, port=router.config.dns.listen.port, timeout=3, lifetime=10
        )
    assert len(zone.nodes) == 0
