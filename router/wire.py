"""Reading the common query shape straight from the wire, without dnspython.

Parsing with dnspython and building each answer costs about 11k queries per second (DESIGN.md,
speed table). :func:`parse_simple` accepts only the plain shape resolvers and load generators
send: a QUERY with one question of class IN, optionally one EDNS0 version-0 OPT record carrying
at most one client subnet option (RFC 7871). Anything else returns None and takes the general
path in :mod:`router.answer`, which handles every rule (FORMERR, NOTIMP, BADVERS, ...).
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

from cdn_core.routing import IPAddress

TYPE_A = 1
TYPE_AAAA = 28
TYPE_ANY = 255
TYPE_OPT = 41
OPTION_ECS = 8
_PLAIN_COUNTS = b"\x00\x01\x00\x00\x00\x00\x00\x00"
_EDNS_COUNTS = b"\x00\x01\x00\x00\x00\x00\x00\x01"
_ADDRESS_BYTES = {1: 4, 2: 16}
_ADDRESS_BITS = {1: 32, 2: 128}
_OPT_HEAD = struct.Struct("!HHBBHH")
_ECS_HEAD = struct.Struct("!HHHBB")


@dataclass(frozen=True, slots=True)
class ClientSubnet:
    """An RFC 7871 option as received: family, SOURCE PREFIX-LENGTH and address bytes.

    ``key`` (family, source prefix and address bytes) identifies the client subnet in caches.
    """

    family: int
    source_len: int
    address: bytes
    key: bytes

    def client(self) -> IPAddress:
        padded = self.address.ljust(_ADDRESS_BYTES[self.family], b"\x00")
        return ipaddress.ip_address(padded)


@dataclass(frozen=True, slots=True)
class SimpleQuery:
    """A query of the plain shape; ``qname`` is the lower-cased wire form, for lookups.

    ``question_end`` is the offset just past the question section (the query as sent keeps its
    letter case there; the response echoes it). ``payload`` is the EDNS0 UDP payload size, or
    None when the query has no OPT record.
    """

    qname: bytes
    qtype: int
    question_end: int
    payload: int | None
    ecs: ClientSubnet | None


def parse_simple(wire: bytes) -> SimpleQuery | None:
    """The query if it has the plain shape, else None (the general path handles it)."""
    if len(wire) < 17 or wire[2] & 0xFE:  # QR, opcode, AA, TC must be clear
        return None
    counts = wire[4:12]
    if counts != _PLAIN_COUNTS and counts != _EDNS_COUNTS:
        return None
    end = _name_end(wire, 12)
    if end < 0 or end + 4 > len(wire) or wire[end + 2] != 0 or wire[end + 3] != 1:
        return None
    qtype = (wire[end] << 8) | wire[end + 1]
    question_end = end + 4
    qname = wire[12:end].lower()
    if counts == _PLAIN_COUNTS:
        if question_end != len(wire):
            return None
        return SimpleQuery(qname, qtype, question_end, None, None)
    opt = _parse_opt(wire, question_end)
    if opt is None:
        return None
    return SimpleQuery(qname, qtype, question_end, opt[0], opt[1])


def _name_end(wire: bytes, pos: int) -> int:
    """Offset just past an uncompressed name's root label, or -1."""
    start = pos
    size = len(wire)
    while pos < size:
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
    rtype, payload, _ext_rcode, version, _flags, rdlen = _OPT_HEAD.unpack_from(wire, pos + 1)
    if rtype != TYPE_OPT or version != 0 or pos + 11 + rdlen != len(wire):
        return None
    if rdlen == 0:
        return payload, None
    ecs = _parse_ecs(wire[pos + 11 :])
    return None if ecs is None else (payload, ecs)


def _parse_ecs(options: bytes) -> ClientSubnet | None:
    if len(options) < 8:
        return None
    code, length, family, source_len, scope = _ECS_HEAD.unpack_from(options)
    address = options[8:]
    if code != OPTION_ECS or length != len(options) - 4 or family not in _ADDRESS_BYTES:
        return None
    if scope != 0 or source_len > _ADDRESS_BITS[family] or len(address) != (source_len + 7) // 8:
        return None
    if address and address[-1] & (0xFF >> (source_len % 8 or 8)):
        return None  # bits beyond the source prefix must be zero (RFC 7871 §6)
    return ClientSubnet(family, source_len, address, options[4:7] + address)
