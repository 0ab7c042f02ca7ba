"""Whole responses cached as wire bytes, patched per query (the id, RD flag, question, ECS).

A response to a plain-shaped query (:func:`router.wire.parse_simple`) depends only on the
lower-cased question, whether the query had EDNS, the size limit, the client subnet's family and
source prefix length, and, for routed names, the answer the routing gave (edge addresses and
ECS scope). Everything else the response carries is copied from the query: the id, the RD flag,
the question with its letter case (RFC 4343: names compress to it, so the layout does not
change), and the client subnet address (RFC 7871 §7.2.1). So the general path builds each
distinct response once and later queries copy it with those bytes patched in.
"""

from __future__ import annotations

import struct
from collections.abc import Hashable
from dataclasses import dataclass

from router.wire import OPTION_ECS, SimpleQuery

_RD = 0x01
_ECS_ECHO = struct.Struct("!HHHB")


@dataclass(frozen=True, slots=True)
class CachedAnswer:
    """A response with id zero, RD clear, and the client subnet address cut off its end."""

    template: bytes
    qtype: int
    rcode: int


class AnswerCache:
    """Responses by the key of everything they depend on; bounded, cleared whole when full."""

    def __init__(self, max_entries: int = 8192) -> None:
        self.max_entries = max_entries
        self._entries: dict[Hashable, CachedAnswer] = {}

    def get(self, key: Hashable) -> CachedAnswer | None:
        return self._entries.get(key)

    def learn(
        self,
        key: Hashable,
        wire: bytes,
        query: SimpleQuery,
        response: bytes,
        qtype: int,
        rcode: int,
    ) -> CachedAnswer | None:
        """Remember ``response`` to ``wire`` if it has the patchable shape (else None)."""
        answer = make_template(wire, query, response, qtype, rcode)
        if answer is not None:
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
            self._entries[key] = answer
        return answer

    def __len__(self) -> int:
        return len(self._entries)


def make_template(
    wire: bytes, query: SimpleQuery, response: bytes, qtype: int, rcode: int
) -> CachedAnswer | None:
    """The cacheable form of ``response``, or None if it does not echo what we patch."""
    end = query.question_end
    if len(response) < end or response[4:6] != b"\x00\x01" or response[:2] != wire[:2]:
        return None
    if response[12:end].lower() != wire[12:end].lower():
        return None  # the question is not echoed where we copy it
    body = response[end:]
    ecs = query.ecs
    if ecs is not None and ecs.address:
        echo = _ECS_ECHO.pack(OPTION_ECS, 4 + len(ecs.address), ecs.family, ecs.source_len)
        tail = len(ecs.address) + 1 + len(echo)
        if len(body) < tail or body[-tail : -tail + len(echo)] != echo:
            return None  # no client subnet echoed last: its address could not be patched
        if body[-len(ecs.address) :] != ecs.address:
            return None
        body = body[: -len(ecs.address)]
    flags = bytes((response[2] & ~_RD & 0xFF, response[3]))
    return CachedAnswer(b"\x00\x00" + flags + response[4:12] + body, qtype, rcode)


def patch(wire: bytes, query: SimpleQuery, answer: CachedAnswer) -> bytes:
    """The cached response made the answer to ``wire``: its id, RD, question and subnet."""
    template = answer.template
    flags = bytes((template[2] | (wire[2] & _RD),))
    out = wire[:2] + flags + template[3:12] + wire[12 : query.question_end] + template[12:]
    ecs = query.ecs
    return out if ecs is None else out + ecs.address
