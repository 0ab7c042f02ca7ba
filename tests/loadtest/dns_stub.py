"""A tiny authoritative DNS responder for the load-test tests (real UDP packets on loopback)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import dns.edns
import dns.message
import dns.rcode
import dns.rrset

HOST = "www.cdn.test"


@dataclass
class Router:
    """A tiny authoritative responder: answers HOST with ``addresses`` and records queries;
    ``then`` (if set) replaces ``addresses`` after the first answer."""

    addresses: list[str]
    then: list[str] | None = None
    ttl: int = 20
    rcode: dns.rcode.Rcode = dns.rcode.NOERROR
    queries: list[tuple[str, str | None]] = field(default_factory=list)

    def answer(self, wire: bytes, source: str) -> bytes:
        query = dns.message.from_wire(wire)
        ecs = next((o for o in query.options if isinstance(o, dns.edns.ECSOption)), None)
        self.queries.append((source, None if ecs is None else f"{ecs.address}/{ecs.srclen}"))
        response = dns.message.make_response(query)
        response.set_rcode(self.rcode)
        if self.rcode == dns.rcode.NOERROR:
            rrset = dns.rrset.from_text_list(HOST + ".", self.ttl, "IN", "A", self.addresses)
            response.answer.append(rrset)
        if self.then is not None:
            self.addresses, self.then = self.then, None
        return response.to_wire()


class _RouterProtocol(asyncio.DatagramProtocol):
    def __init__(self, router: Router) -> None:
        self.router = router
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        assert self.transport is not None
        self.transport.sendto(self.router.answer(data, addr[0]), addr)


async def start_router(router: Router) -> tuple[asyncio.DatagramTransport, int]:
    """Serve ``router`` on 127.0.0.1 (a free port); the caller closes the transport."""
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        lambda: _RouterProtocol(router), local_addr=("127.0.0.1", 0)
    )
    port: int = transport.get_extra_info("sockname")[1]
    return transport, port
