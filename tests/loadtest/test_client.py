"""A simulated user against a real aiohttp "edge" and a real dnspython UDP "router" on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import dns.edns
import dns.message
import dns.rcode
import dns.rrset
import pytest
from aiohttp import web

from loadtest.client import EdgeResolver, RegionClient, ResolveError, user_source_ip
from tests.conftest import free_port
from tests.loadtest.dns_stub import HOST, Router, start_router

USER_IP = "127.10.1.7"


@dataclass
class Lab:
    router: Router
    dns_port: int
    http_port: int
    seen: list[tuple[str | None, str]]

    def resolver(self, clock=None) -> EdgeResolver:
        kwargs = {"clock": clock} if clock else {}
        return EdgeResolver(
            server=("127.0.0.1", self.dns_port),
            hostname=HOST,
            client_ip=USER_IP,
            timeout_s=1.0,
            **kwargs,
        )

    def client(self, resolver: EdgeResolver) -> RegionClient:
        return RegionClient(
            region="eu",
            source_ip=USER_IP,
            resolver=resolver,
            hostname=HOST,
            port=self.http_port,
            timeout_s=2.0,
        )


@pytest.fixture
async def lab() -> AsyncIterator[Lab]:
    seen: list[tuple[str | None, str]] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append((request.remote, request.headers["Host"]))
        body = b"x" * int(request.query.get("size", "10"))
        status = "shield-1; hit, edge-1; hit; ttl=5"
        return web.Response(body=body, headers={"Cache-Status": status})

    app = web.Application()
    app.router.add_get("/obj/{id}", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    http_port = free_port()
    await web.TCPSite(runner, "127.0.0.1", http_port).start()
    router = Router(addresses=["127.0.0.1"])
    transport, dns_port = await start_router(router)
    try:
        yield Lab(router=router, dns_port=dns_port, http_port=http_port, seen=seen)
    finally:
        transport.close()
        await runner.cleanup()


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_user_resolves_with_its_subnet_and_fetches_from_its_source_address(lab):
    client = lab.client(lab.resolver())
    try:
        record = await asyncio.to_thread(client.get, "/obj/1?size=3000")
    finally:
        client.close()
    assert record.ok, record
    assert record.status == 200 and record.body_bytes == 3000
    assert record.edge == "127.0.0.1" and record.attempts == 1
    assert record.edge_hit and record.cache_status == "shield-1; hit, edge-1; hit; ttl=5"
    assert record.ttfb_ms is not None and 0 <= record.ttfb_ms <= record.total_ms
    assert lab.router.queries == [(USER_IP, "127.10.1.0/24")]
    assert lab.seen == [(USER_IP, HOST)]


async def test_the_dns_answer_is_kept_for_its_ttl(lab):
    clock = FakeClock()
    lab.router.ttl = 20
    resolver = lab.resolver(clock)
    client = lab.client(resolver)
    try:
        for _ in range(3):
            assert (await asyncio.to_thread(client.get, "/obj/1")).ok
        assert len(lab.router.queries) == 1
        clock.now += 20
        assert (await asyncio.to_thread(client.get, "/obj/2")).ok
        assert len(lab.router.queries) == 2
    finally:
        client.close()
    assert len(lab.seen) == 4


async def test_a_dead_edge_fails_over_to_the_next_address(lab):
    # dnspython shuffles the A records it sends, so either order may come first.
    lab.router.addresses = ["127.0.99.1", "127.0.0.1"]  # nothing listens on the first
    client = lab.client(lab.resolver())
    try:
        records = [await asyncio.to_thread(client.get, "/obj/1") for _ in range(2)]
    finally:
        client.close()
    assert all(r.ok and r.edge == "127.0.0.1" and r.attempts in (1, 2) for r in records)
    assert len(lab.router.queries) == 1


async def test_when_the_answer_is_dead_the_user_asks_the_router_again(lab):
    lab.router.addresses, lab.router.then = ["127.0.99.1"], ["127.0.0.1"]
    client = lab.client(lab.resolver())
    try:
        record = await asyncio.to_thread(client.get, "/obj/1")
    finally:
        client.close()
    assert record.ok and record.attempts == 2 and record.edge == "127.0.0.1"
    assert len(lab.router.queries) == 2


async def test_when_every_edge_is_dead_the_user_asks_again_then_reports_the_error(lab):
    lab.router.addresses = ["127.0.99.1"]
    client = lab.client(lab.resolver())
    try:
        record = await asyncio.to_thread(client.get, "/obj/1")
    finally:
        client.close()
    assert not record.ok
    assert record.error is not None and record.error.startswith("connect:")
    assert record.status is None and record.ttfb_ms is None
    assert len(lab.router.queries) == 2  # the cached answer, then one fresh question


async def test_a_refusing_router_is_a_dns_error(lab):
    lab.router.rcode = dns.rcode.REFUSED
    client = lab.client(lab.resolver())
    record = await asyncio.to_thread(client.get, "/obj/1")
    assert not record.ok and record.error == "dns: the router answered REFUSED"
    assert lab.seen == []


async def test_a_silent_router_is_a_dns_error():
    resolver = EdgeResolver(
        server=("127.0.0.1", free_port()), hostname=HOST, client_ip=USER_IP, timeout_s=0.3
    )
    with pytest.raises(ResolveError, match="no answer from the router"):
        await asyncio.to_thread(resolver.addresses)


def test_user_source_addresses_are_distinct_and_inside_the_prefix():
    assert user_source_ip("127.10.0.0/16", 0) == "127.10.1.0"
    assert user_source_ip("127.10.0.0/16", 5) == "127.10.1.5"
    assert user_source_ip("127.10.0.0/16", 300) == "127.10.2.44"
    with pytest.raises(ValueError, match="no room"):
        user_source_ip("127.10.0.0/24", 0)
    with pytest.raises(ValueError, match="no room"):
        user_source_ip("127.10.0.0/16", -1)
