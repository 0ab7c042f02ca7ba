"""The fast path: A/AAAA queries for origin hostnames answered from precomputed wire bytes.

Parsing with dnspython and building each answer costs about 11k queries per second; copying the
query's question and patching precomputed answer records in reaches the load generator's limit
(DESIGN.md, speed table). :func:`parse_simple` accepts only the plain shape resolvers send (one
question, class IN, optionally one EDNS0 version-0 OPT carrying at most a client subnet option);
anything else returns None and takes the general path in :mod:`router.answer`, which must give
the same answer.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

from cdn_core.routing import IPAddress

TYPE_A = 1
TYPE_AAAA = 28
TYPE_OPT = 41
OPTION_ECS = 8
_PLAIN_COUNTS = b"\x00\x01\x00\x00\x00\x00\x00\x00"
_EDNS_COUNTS = b"\x00\x01\x00\x00\x00\x00\x00\x01"
_ADDRESS_BYTES = {1: 4, 2: 16}
_ADDRESS_BITS = {1: 32, 2: 128}


@dataclass(frozen=True, slots=True)
class ClientSubnet:
    """An RFC 7871 option as received: family, SOURCE PREFIX-LENGTH and address bytes."""

    family: int
    source_len: int
    address: bytes

    def client(self) -> IPAddress:
        padded = self.address.ljust(_ADDRESS_BYTES[self.family], b"\x00")
        return ipaddress.ip_address(padded)

    def to_wire(self, scope: int) -> bytes:
        data = struct.pack("!HBB", self.family, self.source_len, scope) + self.address
        return struct.pack("!HH", OPTION_ECS, len(data)) + data


@dataclass(frozen=True, slots=True)
class SimpleQuery:
    """A query of the plain shape, with the raw question kept to echo its letter case."""

    header: bytes
    question: bytes
    qname: bytes  # lower-cased wire form, for lookups
    qtype: int
    edns: bool
    payload: int
    ecs: ClientSubnet | None


def parse_simple(wire: bytes) -> SimpleQuery | None:
    """The query if it has the plain shape, else None (the general path handles it)."""
    if len(wire) < 17 or wire[2] & 0xFE:  # QR, opcode, AA, TC must be clear
        return None
    counts = wire[4:12]
    if counts != _PLAIN_COUNTS and counts != _EDNS_COUNTS:
        return None
    end = _name_end(wire, 12)
    if end < 0 or end + 4 > len(wire) or wire[end + 2 : end + 4] != b"\x00\x01":
        return None
    qtype = (wire[end] << 8) | wire[end + 1]
    question_end = end + 4
    qname = wire[12:end].lower()
    if counts == _PLAIN_COUNTS:
        if question_end != len(wire):
            return None
        return SimpleQuery(wire[:4], wire[12:question_end], qname, qtype, False, 512, None)
    opt = _parse_opt(wire, question_end)
    if opt is None:
        return None
    payload, ecs = opt
    return SimpleQuery(wire[:4], wire[12:question_end], qname, qtype, True, payload, ecs)


def _name_end(wire: bytes, pos: int) -> int:
    """Offset just past an uncompressed name's root label, or -1."""
    start = pos
    while pos < len(wire):
        length = wire[pos]
        if length == 0:
            return pos + 1 if pos + 1 - start <= 255 else -1
        if length > 63:
            return -1
        pos += length + 1
    return -1


def _parse_opt(wire: bytes, pos: int) -> tuple[int, ClientSubnet | None] | None:
    """An OPT RR (RFC 6891 §6.1.2) of version 0 holding at most an ECS option."""
    if len(wire) < pos + 11 or wire[pos] != 0:
        return None
    rtype, payload, _ext_rcode, version, _flags, rdlen = struct.unpack_from(
        "!HHBBHH", wire, pos + 1
    )
    if rtype != TYPE_OPT or version != 0 or pos + 11 + rdlen != len(wire):
        return None
    if rdlen == 0:
        return payload, None
    return _parse_ecs(wire[pos + 11 :], payload)


def _parse_ecs(options: bytes, payload: int) -> tuple[int, ClientSubnet | None] | None:
    if len(options) < 8:
        return None
    code, length, family, source_len, scope = struct.unpack_from("!HHHBB", options)
    address = options[8:]
    if code != OPTION_ECS or length != len(options) - 4 or family not in _ADDRESS_BYTES:
        return None
    if scope != 0 or source_len > _ADDRESS_BITS[family] or len(address) != (source_len + 7) // 8:
        return None
    if address and address[-1] & (0xFF >> (source_len % 8 or 8)):
        return None  # bits beyond the source prefix must be zero (RFC 7871 §6)
    return payload, ClientSubnet(family, source_len, address)


def answer_records(addresses: tuple[str, ...], qtype: int, ttl_s: int) -> bytes:
    """A/AAAA records whose owner is a pointer to the question name (offset 12)."""
    records = []
    for text in addresses:
        rdata = ipaddress.ip_address(text).packed
        records.append(struct.pack("!HHHIH", 0xC00C, qtype, 1, ttl_s, len(rdata)) + rdata)
    return b"".join(records)


def opt_record(payload: int, ecs: ClientSubnet | None, scope: int) -> bytes:
    """Our OPT RR: version 0, our payload size, the client subnet echoed with its scope."""
    options = b"" if ecs is None else ecs.to_wire(scope if ecs.source_len else 0)
    return b"\x00" + struct.pack("!HHIH", TYPE_OPT, payload, 0, len(options)) + options


def response(query: SimpleQuery, count: int, records: bytes, opt: bytes) -> bytes:
    """Header (id and RD copied, QR and AA set), the question as sent, answers, OPT."""
    flags = bytes((0x84 | (query.header[2] & 0x01), 0))
    counts = struct.pack("!HHHH", 1, count, 0, 1 if opt else 0)
    return query.header[:2] + flags + counts + query.question + records + opt
