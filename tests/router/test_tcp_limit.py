"""TCP connections per source address: one address cannot hold every connection the router has.

The counting is checked on its own; then, against a running router on loopback, a source that
already holds its share gets its next connection closed unanswered while another loopback
address (127.0.0.2) is still served, and the total cap still holds across sources.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import dns.message
import dns.rcode
import dns.rdatatype
import pytest

from cdn_core.errors import ConfigError
from router.ratelimit import ConnectionLimit, Refusal
from router.server import MAX_TCP_CONNECTIONS
from tests.router.conftest import make_config

pytestmark = pytest.mark.timeout(60)

IO_TIMEOUT_S = 5.0  # a bound on a hung socket, never an assertion about speed


class TestConnectionLimit:
    def test_per_source_cap(self):
        limit = ConnectionLimit(2, 10)
        assert [limit.open("a") for _ in range(3)] == [None, None, Refusal.PER_SOURCE]
        assert limit.open("b") is None
        assert (limit.held("a"), limit.held("b"), len(limit)) == (2, 1, 3)

    def test_total_cap_across_sources(self):
        limit = ConnectionLimit(2, 3)
        assert [limit.open(s) for s in "abcd"] == [None, None, None, Refusal.TOTAL]

    def test_closing_frees_a_place(self):
        limit = ConnectionLimit(1, 1)
        assert limit.open("a") is None
        assert limit.open("a") is Refusal.TOTAL
        limit.close("a")
        assert (limit.held("a"), len(limit)) == (0, 0)
        assert limit.open("a") is None

    def test_bad_settings_are_rejected(self):
        with pytest.raises(ValueError, match="per_source"):
            ConnectionLimit(0, 10)


class TestConfig:
    def test_default(self):
        assert make_config().dns.tcp_connections_per_source == 16

    def test_configured(self):
        assert make_config(tcp_connections_per_source=4).dns.tcp_connections_per_source == 4

    @pytest.mark.parametrize("value", [0, 257, "16", True, 2.5])
    def test_bad_values_name_the_key(self, value):
        with pytest.raises(ConfigError, match="dns.tcp_connections_per_source"):
            make_config(tcp_connections_per_source=value)


# -- against a running router ------------------------------------------------------------------

Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


def framed_query(qid: int) -> bytes:
    query = dns.message.make_query("www.cdn.test", "A")
    query.id = qid
    data = query.to_wire()
    return len(data).to_bytes(2, "big") + data


async def connect(port: int, source: str) -> Connection:
    async with asyncio.timeout(IO_TIMEOUT_S):
        return await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))


async def ask(conn: Connection, qid: int) -> dns.message.Message | None:
    """One query on an open connection: its response, or None if the router closed it."""
    reader, writer = conn
    try:
        writer.write(framed_query(qid))
        await writer.drain()
        async with asyncio.timeout(IO_TIMEOUT_S):
            size = await reader.readexactly(2)
            return dns.message.from_wire(await reader.readexactly(int.from_bytes(size)))
    except (asyncio.IncompleteReadError, ConnectionError):
        return None


def is_answer(response: dns.message.Message | None, qid: int) -> bool:
    return (
        response is not None
        and response.id == qid
        and response.rcode() == dns.rcode.NOERROR
        and response.answer[0].rdtype == dns.rdatatype.A
    )


async def hang_up(conn: Connection) -> None:
    writer = conn[1]
    writer.close()
    with contextlib.suppress(ConnectionError):
        await writer.wait_closed()


@pytest.fixture
async def connections() -> AsyncIterator[list[Connection]]:
    """Connections the test opens; each is closed at the end."""
    opened: list[Connection] = []
    yield opened
    for conn in opened:
        await hang_up(conn)


async def hold(port: int, source: str, count: int, opened: list[Connection]) -> None:
    """Open ``count`` connections from ``source``, each proven served (so counted) by an answer."""
    for i in range(count):
        conn = await connect(port, source)
        opened.append(conn)
        assert is_answer(await ask(conn, i), i), (source, i)


async def test_one_source_over_its_limit_is_closed_others_are_served(start_router, connections):
    router = await start_router()
    port = router.config.dns.listen.port
    limit = router.config.dns.tcp_connections_per_source
    await hold(port, "127.0.0.1", limit, connections)

    extra = await connect(port, "127.0.0.1")
    connections.append(extra)
    refused = await ask(extra, 999)
    other = await connect(port, "127.0.0.2")
    connections.append(other)
    served = await ask(other, 1000)

    assert refused is None
    assert is_answer(served, 1000)
    assert router.metrics.tcp_refused.labels("per_source")._value.get() == 1
    assert router.tcp_limit.held("127.0.0.1") == limit
    for i, conn in enumerate(connections[:limit]):  # the ones it holds are still served
        assert is_answer(await ask(conn, 2000 + i), 2000 + i)


async def test_a_source_gets_its_place_back_when_a_connection_ends(start_router, connections):
    router = await start_router(tcp_connections_per_source=2)
    port = router.config.dns.listen.port
    await hold(port, "127.0.0.1", 2, connections)
    await hang_up(connections.pop(0))

    answered = False
    for attempt in range(100):  # the router sees the hang-up a moment later: retry, bounded
        conn = await connect(port, "127.0.0.1")
        connections.append(conn)
        if is_answer(await ask(conn, attempt), attempt):
            answered = True
            break
        await asyncio.sleep(0.02)
    assert answered
    assert router.tcp_limit.held("127.0.0.1") == 2


async def test_the_total_limit_still_holds_across_sources(start_router, connections):
    router = await start_router()
    port = router.config.dns.listen.port
    per_source = router.config.dns.tcp_connections_per_source
    sources = [f"127.0.0.{10 + i}" for i in range(MAX_TCP_CONNECTIONS // per_source)]
    for source in sources:
        await hold(port, source, per_source, connections)
    assert len(router.tcp_limit) == MAX_TCP_CONNECTIONS

    late = await connect(port, "127.0.0.200")  # a fresh source, over the total
    connections.append(late)

    assert await ask(late, 1) is None
    assert router.metrics.tcp_refused.labels("total")._value.get() == 1
    assert router.metrics.tcp_refused.labels("per_source")._value.get() == 0
