"""Thousands of random and mutated packets: the router answers or drops each, and survives."""

from __future__ import annotations

import asyncio
import random
import socket

import dns.asyncquery
import dns.edns
import dns.message
import dns.rcode
import pytest

pytestmark = pytest.mark.timeout(60)

PACKETS = 3000


def seeds() -> list[bytes]:
    ecs: list[dns.edns.Option] = [dns.edns.ECSOption("127.10.5.0", 24)]
    queries = [
        dns.message.make_query("www.cdn.test", "A"),
        dns.message.make_query("www.cdn.test", "AAAA", use_edns=0, options=ecs),
        dns.message.make_query("cdn.test", "SOA", use_edns=0),
        dns.message.make_query("nope.cdn.test", "ANY", use_edns=1),
    ]
    return [q.to_wire() for q in queries]


def mutate(rng: random.Random, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 6)):
        choice = rng.random()
        if choice < 0.5 and out:
            out[rng.randrange(len(out))] = rng.randrange(256)
        elif choice < 0.7:
            del out[rng.randrange(len(out) + 1) :]
        elif choice < 0.9:
            out[rng.randrange(len(out) + 1) : 0] = rng.randbytes(rng.randint(1, 16))
        else:
            out[4:12] = rng.randbytes(8)
    return bytes(out)


def packets(rng: random.Random) -> list[bytes]:
    base = seeds()
    out = []
    for i in range(PACKETS):
        if i % 3 == 0:
            out.append(rng.randbytes(rng.randint(0, 600)))
        else:
            out.append(mutate(rng, rng.choice(base)))
    return out


def blast(port: int, data: list[bytes]) -> list[bytes]:
    """Send each packet followed by a marker query, and collect replies up to the marker.

    The marker's answer proves the router processed (answered or dropped) the packet before it,
    without waiting for a timeout; a lost marker fails the test via the socket timeout.
    """
    replies = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(5)
        for i, packet in enumerate(data):
            marker = dns.message.make_query(f"marker-{i}.cdn.test", "SOA").to_wire()
            sock.sendto(packet, ("127.0.0.1", port))
            sock.sendto(marker, ("127.0.0.1", port))
            for _ in range(2):
                reply = sock.recv(65535)
                if reply[12:].startswith(marker[12:]):
                    break
                replies.append(reply)
    return replies


async def test_fuzzed_packets_never_kill_the_router(start_router):
    router = await start_router(rate_limit_qps=1e6, rate_limit_burst=1e6)
    port = router.config.dns.listen.port
    replies = await asyncio.to_thread(blast, port, packets(random.Random(1234)))
    assert replies  # plenty of mutants are still answerable
    for reply in replies:
        assert len(reply) <= 1232
        dns.message.from_wire(reply)  # every reply we sent is a well-formed message
    errors = router.metrics.dropped.labels("error")._value.get()
    assert errors == 0
    good = dns.message.make_query("www.cdn.test", "A")
    response = await dns.asyncquery.udp(good, "127.0.0.1", port=port, timeout=3)
    assert response.rcode() == dns.rcode.NOERROR


async def test_fuzzed_tcp_streams_never_kill_the_router(start_router):
    router = await start_router()
    port = router.config.dns.listen.port
    rng = random.Random(99)
    for data in packets(rng)[:200]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        framed = len(data).to_bytes(2, "big") + data if rng.random() < 0.8 else data
        writer.write(framed)
        writer.write_eof()
        await asyncio.wait_for(reader.read(), 5)
        writer.close()
        await writer.wait_closed()
    good = dns.message.make_query("www.cdn.test", "A")
    response = await dns.asyncquery.tcp(good, "127.0.0.1", port=port, timeout=3)
    assert response.rcode() == dns.rcode.NOERROR
