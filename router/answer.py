"""Building DNS responses with dnspython: the general (slower) path that handles every query.

:class:`Responder` turns one query's wire bytes into response wire bytes (or ``None`` to drop).
It is synchronous and does no I/O; the routing choice comes from a callable, so the same code
serves UDP and TCP and is easy to test. Plain-shaped queries are answered from responses this
path built once and :mod:`router.fastpath` patches per query, so it defines every answer.

Zone transfers are not offered: an AXFR or IXFR query (RFC 5936, RFC 1995), over UDP or TCP
and for any name, gets one response with rcode REFUSED and the question echoed. REFUSED, not
NOTIMP, because refusing is a policy (what authoritative servers answer a transfer they do not
allow), not a missing feature; every router builds the zone from the config, so no secondary
ever needs a transfer.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass

import dns.edns
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from cdn_core.config import Config
from cdn_core.routing import ClientRoute, IPAddress

# Our advertised EDNS payload (the DNS flag day 2020 value) and the largest UDP answer we send.
OUR_PAYLOAD = 1232
NO_EDNS_LIMIT = 512
TCP_LIMIT = 65535
HEADER_LEN = 12
_ROUTED_TYPES = (dns.rdatatype.A, dns.rdatatype.AAAA)
_TRANSFER_TYPES = frozenset((dns.rdatatype.AXFR, dns.rdatatype.IXFR))


@dataclass(frozen=True, slots=True, kw_only=True)
class Reply:
    """A response to send, with what the metrics need to know about it."""

    wire: bytes
    qtype: int
    rcode: int
    route: ClientRoute | None = None


class Zone:
    """The authoritative data of ``dns.zone``: apex SOA/NS, the NS host and origin hostnames."""

    def __init__(self, config: Config) -> None:
        dns_config = config.dns
        self.origin = dns.name.from_text(dns_config.zone)
        self.ttl_s = dns_config.ttl_s
        self.ns_name = dns.name.from_text("ns", self.origin)
        self.hosts = frozenset(
            dns.name.from_text(h)
            for o in config.origins
            for h in o.hostnames
            if dns.name.from_text(h).is_subdomain(self.origin)
        )
        self.ns_address = _ns_address(dns_config.ns_address, dns_config.listen.host)
        self.names = frozenset(_with_ancestors({self.origin, self.ns_name, *self.hosts}, self))
        self.soa = dns.rrset.from_text(
            self.origin,
            self.ttl_s,
            "IN",
            "SOA",
            f"{self.ns_name} hostmaster.{self.origin} 1 3600 600 86400 {self.ttl_s}",
        )
        self.ns = dns.rrset.from_text(self.origin, self.ttl_s, "IN", "NS", str(self.ns_name))

    def contains(self, name: dns.name.Name) -> bool:
        return name.is_subdomain(self.origin)

    def ns_glue(self, rdtype: int) -> dns.rrset.RRset | None:
        if self.ns_address is None or _rdtype_of(self.ns_address) != rdtype:
            return None
        return dns.rrset.from_text(
            self.ns_name, self.ttl_s, "IN", dns.rdatatype.RdataType(rdtype), str(self.ns_address)
        )


def _ns_address(configured: str | None, listen_host: str) -> IPAddress | None:
    text = configured or listen_host
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    return None if address.is_unspecified else address


def _with_ancestors(names: set[dns.name.Name], zone: Zone) -> set[dns.name.Name]:
    """Every name plus its ancestors down to the apex (empty non-terminals exist: NODATA)."""
    result = set(names)
    for name in names:
        while name != zone.origin and name.is_subdomain(zone.origin):
            result.add(name)
            name = name.parent()
    return result


def _rdtype_of(address: IPAddress) -> int:
    return dns.rdatatype.A if address.version == 4 else dns.rdatatype.AAAA


def formerr_from_header(wire: bytes) -> bytes:
    """A FORMERR response echoing only the id and opcode of an unparseable query."""
    flags = int.from_bytes(wire[2:4], "big")
    opcode_bits = flags & 0x7800
    out_flags = 0x8000 | opcode_bits | (flags & 0x0100) | dns.rcode.FORMERR
    return wire[:2] + out_flags.to_bytes(2, "big") + b"\x00" * 8


class Responder:
    """Answers one query (wire bytes in, wire bytes out) for the zone, routing A/AAAA."""

    def __init__(self, zone: Zone, route: Callable[[IPAddress], ClientRoute]) -> None:
        self.zone = zone
        self.route = route

    def respond(self, wire: bytes, source: IPAddress, *, tcp: bool) -> Reply | None:
        """The reply to ``wire`` from ``source``, or None when the packet must be dropped."""
        if len(wire) < HEADER_LEN or wire[2] & 0x80:
            return None  # unreadable header, or a response: never answer those
        try:
            query = dns.message.from_wire(wire, one_rr_per_rrset=True)
        except Exception:  # dnspython raises many types on garbage; all mean FORMERR
            return Reply(wire=formerr_from_header(wire), qtype=0, rcode=dns.rcode.FORMERR)
        response = dns.message.make_response(query, our_payload=OUR_PAYLOAD)
        qtype, route = self._fill(query, response, source)
        limit = TCP_LIMIT if tcp else _udp_limit(query)
        return Reply(
            wire=_to_wire(response, limit), qtype=qtype, rcode=response.rcode(), route=route
        )

    def _fill(
        self, query: dns.message.Message, response: dns.message.Message, source: IPAddress
    ) -> tuple[int, ClientRoute | None]:
        if query.opcode() != dns.opcode.QUERY:
            response.set_rcode(dns.rcode.NOTIMP)
            return 0, None
        if query.edns > 0:
            response.set_rcode(dns.rcode.BADVERS)
            return 0, None
        if len(query.question) != 1:
            response.set_rcode(dns.rcode.FORMERR)
            return 0, None
        question = query.question[0]
        qname, qtype = question.name, question.rdtype
        is_ours = question.rdclass == dns.rdataclass.IN and self.zone.contains(qname)
        if not is_ours or qtype in _TRANSFER_TYPES:
            response.set_rcode(dns.rcode.REFUSED)
            return qtype, None
        response.flags |= dns.flags.AA
        ecs = _client_subnet(query)
        client = ecs[0] if ecs is not None and ecs[1].srclen else source
        route = self._answer(response, qname, qtype, client)
        if ecs is not None:
            scope = route.scope if route is not None else 0
            response.use_edns(0, 0, OUR_PAYLOAD, options=[_ecs_reply(ecs, scope)])
        return qtype, route

    def _answer(
        self, response: dns.message.Message, qname: dns.name.Name, qtype: int, client: IPAddress
    ) -> ClientRoute | None:
        zone = self.zone
        if qname not in zone.names:
            response.set_rcode(dns.rcode.NXDOMAIN)
            response.authority.append(zone.soa)
            return None
        if qtype == dns.rdatatype.ANY:
            qtype = dns.rdatatype.A if qname in zone.hosts else dns.rdatatype.SOA  # RFC 8482
        rrset, route = self._rrset(qname, qtype, client)
        if rrset is None:
            response.authority.append(zone.soa)  # NODATA (RFC 2308 §2.2)
        else:
            response.answer.append(rrset)
        if rrset is zone.ns:
            glue = [zone.ns_glue(t) for t in _ROUTED_TYPES]
            response.additional.extend(g for g in glue if g is not None)
        return route

    def _rrset(
        self, qname: dns.name.Name, qtype: int, client: IPAddress
    ) -> tuple[dns.rrset.RRset | None, ClientRoute | None]:
        zone = self.zone
        if qname == zone.origin and qtype == dns.rdatatype.SOA:
            return zone.soa, None
        if qname == zone.origin and qtype == dns.rdatatype.NS:
            return zone.ns, None
        if qname == zone.ns_name and qtype in _ROUTED_TYPES:
            return zone.ns_glue(qtype), None
        if qname not in zone.hosts or qtype not in _ROUTED_TYPES:
            return None, None
        route = self.route(client)
        addresses = [e.address for e in route.edges if _family_type(e.address) == qtype]
        if not addresses:
            return None, route
        return dns.rrset.from_text_list(
            qname, zone.ttl_s, "IN", dns.rdatatype.RdataType(qtype), addresses
        ), route


def _family_type(address: str) -> int:
    return dns.rdatatype.AAAA if ":" in address else dns.rdatatype.A


def _client_subnet(query: dns.message.Message) -> tuple[IPAddress, dns.edns.ECSOption] | None:
    """The client address from an ECS option (RFC 7871 §6), masked to its source prefix."""
    for option in query.options:
        if isinstance(option, dns.edns.ECSOption):
            address = ipaddress.ip_network(f"{option.address}/{option.srclen}", strict=False)
            return address.network_address, option
    return None


def _ecs_reply(ecs: tuple[IPAddress, dns.edns.ECSOption], scope: int) -> dns.edns.ECSOption:
    option = ecs[1]
    # A SOURCE PREFIX-LENGTH of 0 asks that no client information be used (RFC 7871 §7.1.2).
    return dns.edns.ECSOption(option.address, option.srclen, scope if option.srclen else 0)


def _udp_limit(query: dns.message.Message) -> int:
    if query.edns < 0:
        return NO_EDNS_LIMIT
    return max(NO_EDNS_LIMIT, min(query.payload, OUR_PAYLOAD))


def _to_wire(response: dns.message.Message, limit: int) -> bytes:
    """The response, or a truncated one with TC set when it does not fit ``limit``.

    Records keep the routing's order (best edge first) instead of dnspython's shuffle, so
    that answers are deterministic and resolvers that use the first address get the best one.
    """
    try:
        return response.to_wire(max_size=limit, want_shuffle=False)
    except dns.exception.TooBig:
        response.answer.clear()
        response.authority.clear()
        response.additional.clear()
        response.flags |= dns.flags.TC
        return response.to_wire(max_size=limit, want_shuffle=False)
