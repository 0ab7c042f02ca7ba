"""The WAN emulator: real relays on 127.0.0.1, real echo servers, lower-bound timing only."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
import uvloop

from cdn_core.config import LabConfig
from infra.wan import (
    LatencyMatrix,
    Link,
    LinkState,
    WanEmulator,
    WanError,
    link_state,
    links_between,
    rtt_ms_from_text,
)
from infra.wan_control import (
    fetch_wan_state,
    parse_wan_command,
    send_wan_command,
    start_wan_control,
)
from tests.conftest import free_port

REGIONS = frozenset({"eu", "us", "ap"})
LIMIT_S = 20.0
StreamHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
FLOAT_SLACK_S = 1e-6  # loop times are floats: t0 + 0.04 + 0.04 - t0 may print as 0.0799999


def make_matrix() -> LatencyMatrix:
    lab = LabConfig(
        intra_region_rtt_ms=2.0,
        rtt_ms={frozenset({"eu", "us"}): 80.0, frozenset({"us", "ap"}): 140.0},
    )
    return LatencyMatrix.from_lab(lab, REGIONS)


def link_to(port: int, *, src: str = "eu", dst: str = "us", target: str = "echo") -> Link:
    return Link(
        from_region=src,
        to_region=dst,
        target=target,
        upstream_host="127.0.0.1",
        upstream_port=port,
    )


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.write_eof()
        await writer.drain()
    writer.close()


async def _count_then_reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Reads until EOF (the client's half-close), then answers with the byte count."""
    received = await reader.read()
    writer.write(f"got {len(received)}".encode())
    await writer.drain()
    writer.close()


@contextlib.asynccontextmanager
async def serving(handler: StreamHandler) -> AsyncIterator[int]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5):
                await server.wait_closed()


@pytest.fixture
async def echo_port() -> AsyncIterator[int]:
    async with serving(_echo) as port:
        yield port


@pytest.fixture
async def wan() -> AsyncIterator[WanEmulator]:
    emulator = WanEmulator(make_matrix(), window_bytes=256 * 1024)
    yield emulator
    await emulator.close()


async def ping(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> float:
    """One small round trip through the relay, in loop time (the clock the relay delays by)."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    writer.write(b"ping")
    await writer.drain()
    assert await reader.readexactly(4) == b"ping"
    return loop.time() - started + FLOAT_SLACK_S


async def transfer(host: str, port: int, payload: bytes, chunk: int = 65536) -> bytes:
    """Sends ``payload`` through an echo path while reading the echo back."""
    reader, writer = await asyncio.open_connection(host, port)

    async def send() -> None:
        for i in range(0, len(payload), chunk):
            writer.write(payload[i : i + chunk])
            await writer.drain()
        writer.write_eof()

    sender = asyncio.create_task(send())
    try:
        echoed = await reader.read()
        await sender
    finally:
        sender.cancel()
        writer.close()
    return echoed


async def is_cut(reader: asyncio.StreamReader) -> bool:
    """True when the connection ends (EOF or reset) instead of carrying data."""
    try:
        data = await reader.read(100)
    except ConnectionError:
        return True
    return data == b""


class TestMatrix:
    def test_rtt_from_lab_and_intra_region(self):
        matrix = make_matrix()
        assert matrix.rtt_between("us", "eu") == 80.0
        assert matrix.rtt_between("eu", "eu") == 2.0
        assert matrix.rtt_between("eu", "ap") == 0.0

    def test_with_rtt_is_symmetric_and_leaves_the_original(self):
        matrix = make_matrix()
        changed = matrix.with_rtt("us", "eu", 300)
        assert changed.rtt_between("eu", "us") == 300.0
        assert matrix.rtt_between("eu", "us") == 80.0

    def test_intra_region_override(self):
        assert make_matrix().with_rtt("ap", "ap", 9).rtt_between("ap", "ap") == 9.0

    def test_down_and_up(self):
        matrix = make_matrix().with_down("eu", "us", True)
        assert matrix.is_down("us", "eu")
        assert not matrix.with_down("us", "eu", False).is_down("eu", "us")

    @pytest.mark.parametrize("bad", [-1, 10_001, float("nan"), "300", True, None])
    def test_bad_rtt_is_refused(self, bad):
        with pytest.raises(WanError, match="rtt_ms"):
            make_matrix().with_rtt("eu", "us", bad)

    def test_unknown_region_is_refused(self):
        with pytest.raises(WanError, match="unknown region 'mars'"):
            make_matrix().with_rtt("eu", "mars", 10)

    def test_links_between_touches_both_directions_only(self):
        links = [
            link_to(1, src="eu", dst="us", target="edge-us-1"),
            link_to(2, src="us", dst="eu", target="edge-eu-1"),
            link_to(3, src="eu", dst="ap", target="edge-ap-1"),
            link_to(4, src="eu", dst="eu", target="edge-eu-1"),
        ]
        touched = links_between(links, "us", "eu")
        assert [link.name for link in touched] == ["eu->us:edge-us-1", "us->eu:edge-eu-1"]
        assert [link.name for link in links_between(links, "eu", "eu")] == ["eu->eu:edge-eu-1"]

    def test_link_state(self):
        matrix = make_matrix().with_down("eu", "us", True)
        state = link_state(matrix, link_to(1))
        assert state == LinkState(rtt_ms=80.0, down=True)
        assert state.one_way_s == 0.04

    def test_to_json(self):
        shown = make_matrix().with_down("us", "eu", True).to_json()
        assert shown["regions"] == ["ap", "eu", "us"]
        assert shown["rtt_ms"]["eu-us"] == 80.0
        assert shown["rtt_ms"]["eu-eu"] == 2.0
        assert shown["down"] == ["eu-us"]

    @pytest.mark.parametrize(("text", "ms"), [("300ms", 300.0), ("0.3s", 300.0), ("250", 250.0)])
    def test_rtt_from_text(self, text, ms):
        assert rtt_ms_from_text(text) == pytest.approx(ms)

    @pytest.mark.parametrize("text", ["fast", "-5ms", "1h", "3 parsecs"])
    def test_bad_rtt_text(self, text):
        with pytest.raises(WanError):
            rtt_ms_from_text(text)


class TestCommandParsing:
    def test_rtt_and_down(self):
        command = parse_wan_command({"a": "eu", "b": "us", "rtt_ms": 300, "down": False})
        assert (command.rtt_ms, command.down) == (300.0, False)

    @pytest.mark.parametrize(
        ("body", "message"),
        [
            ([], "JSON object"),
            ({"a": "eu", "b": "us"}, "give 'rtt_ms'"),
            ({"a": "eu", "b": "us", "rtt": 3}, "unknown key"),
            ({"a": "", "b": "us", "down": True}, "'a' must be"),
            ({"a": "eu", "b": 7, "down": True}, "'b' must be"),
            ({"a": "eu", "b": "us", "down": "yes"}, "'down' must be"),
            ({"a": "eu", "b": "us", "rtt_ms": -3}, "rtt_ms must be"),
        ],
    )
    def test_bad_commands(self, body, message):
        with pytest.raises(WanError, match=message):
            parse_wan_command(body)


class TestRelay:
    async def test_large_transfer_arrives_intact_and_in_order(self, wan, echo_port):
        relay = await wan.add_link(link_to(echo_port), listen_host="127.0.0.1")
        payload = os.urandom(3 * 1024 * 1024) + bytes(range(256)) * 4096
        async with asyncio.timeout(LIMIT_S):
            echoed = await transfer("127.0.0.1", relay.listen_port, payload)
        assert echoed == payload
        assert relay.bytes_relayed == 2 * len(payload)

    async def test_rtt_change_mid_transfer_keeps_order(self, wan, echo_port):
        relay = await wan.add_link(link_to(echo_port), listen_host="127.0.0.1")
        payload = os.urandom(2 * 1024 * 1024)
        async with asyncio.timeout(LIMIT_S):
            task = asyncio.create_task(transfer("127.0.0.1", relay.listen_port, payload, 4096))
            for rtt in (200, 0, 100, 1):
                await asyncio.sleep(0.05)
                wan.set_rtt("eu", "us", rtt)
            echoed = await task
        assert echoed == payload

    async def test_delay_is_applied_and_changes_at_run_time(self, wan, echo_port):
        relay = await wan.add_link(link_to(echo_port), listen_host="127.0.0.1")
        async with asyncio.timeout(LIMIT_S):
            reader, writer = await asyncio.open_connection("127.0.0.1", relay.listen_port)
            assert await ping(reader, writer) >= 0.080
            assert wan.set_rtt("us", "eu", 300) == ("eu->us:echo",)
            assert relay.state.rtt_ms == 300.0
            assert await ping(reader, writer) >= 0.300
            writer.close()

    async def test_half_close_is_relayed(self, wan):
        async with serving(_count_then_reply) as port:
            relay = await wan.add_link(link_to(port), listen_host="127.0.0.1")
            async with asyncio.timeout(LIMIT_S):
                reader, writer = await asyncio.open_connection("127.0.0.1", relay.listen_port)
                writer.write(b"x" * 100_000)
                writer.write_eof()
                assert await reader.read() == b"got 100000"
                writer.close()
            await wan.close()

    async def test_down_cuts_existing_and_refuses_new_connections_up_restores(self, wan, echo_port):
        relay = await wan.add_link(link_to(echo_port), listen_host="127.0.0.1")
        async with asyncio.timeout(LIMIT_S):
            reader, writer = await asyncio.open_connection("127.0.0.1", relay.listen_port)
            await ping(reader, writer)
            assert wan.set_down("eu", "us", True) == ("eu->us:echo",)
            assert await is_cut(reader)
            writer.close()
            reader, writer = await asyncio.open_connection("127.0.0.1", relay.listen_port)
            assert await is_cut(reader)
            writer.close()
            wan.set_down("us", "eu", False)
            reader, writer = await asyncio.open_connection("127.0.0.1", relay.listen_port)
            assert await ping(reader, writer) >= 0.080
            writer.close()

    async def test_unrelated_links_are_untouched(self, wan, echo_port):
        eu_us = await wan.add_link(link_to(echo_port), listen_host="127.0.0.1")
        eu_ap = await wan.add_link(link_to(echo_port, dst="ap"), listen_host="127.0.0.1")
        wan.set_down("eu", "us", True)
        assert eu_us.state.down
        assert not eu_ap.state.down
        async with asyncio.timeout(LIMIT_S):
            reader, writer = await asyncio.open_connection("127.0.0.1", eu_ap.listen_port)
            await ping(reader, writer)
            writer.close()

    async def test_unreachable_target_closes_the_client(self, wan):
        relay = await wan.add_link(link_to(free_port()), listen_host="127.0.0.1")
        async with asyncio.timeout(LIMIT_S):
            reader, writer = await asyncio.open_connection("127.0.0.1", relay.listen_port)
            writer.write(b"hello")
            assert await is_cut(reader)
            writer.close()

    async def test_target_reset_reaches_the_client(self, wan):
        async def reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read(5)
            transport = writer.transport
            assert isinstance(transport, asyncio.Transport)
            transport.abort()

        async with serving(reset) as port:
            relay = await wan.add_link(link_to(port), listen_host="127.0.0.1")
            async with asyncio.timeout(LIMIT_S):
                reader, writer = await asyncio.open_connection("127.0.0.1", relay.listen_port)
                writer.write(b"hello")
                assert await is_cut(reader)
                writer.close()
            await wan.close()

    async def test_add_link_refuses_duplicates_and_unknown_regions(self, wan, echo_port):
        await wan.add_link(link_to(echo_port), listen_host="127.0.0.1")
        with pytest.raises(WanError, match="exists already"):
            await wan.add_link(link_to(echo_port), listen_host="127.0.0.1")
        with pytest.raises(WanError, match="unknown region"):
            await wan.add_link(link_to(echo_port, dst="mars"), listen_host="127.0.0.1")
        with pytest.raises(WanError, match="no WAN link"):
            wan.relay("eu->ap:nothing")

    async def test_close_leaves_nothing_listening(self, echo_port):
        emulator = WanEmulator(make_matrix())
        relay = await emulator.add_link(link_to(echo_port), listen_host="127.0.0.1")
        reader, writer = await asyncio.open_connection("127.0.0.1", relay.listen_port)
        await emulator.close()
        assert await is_cut(reader)
        writer.close()
        with pytest.raises(OSError):
            await asyncio.open_connection("127.0.0.1", relay.listen_port)


def test_relay_runs_on_uvloop():
    async def scenario() -> tuple[bytes, bytes, float]:
        async with serving(_echo) as port:
            emulator = WanEmulator(make_matrix(), window_bytes=128 * 1024)
            try:
                relay = await emulator.add_link(link_to(port), listen_host="127.0.0.1")
                payload = os.urandom(2 * 1024 * 1024)
                async with asyncio.timeout(LIMIT_S):
                    echoed = await transfer("127.0.0.1", relay.listen_port, payload)
                    reader, writer = await asyncio.open_connection("127.0.0.1", relay.listen_port)
                    elapsed = await ping(reader, writer)
                    writer.close()
            finally:
                await emulator.close()
        return payload, echoed, elapsed

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        payload, echoed, elapsed = runner.run(scenario())
    assert echoed == payload
    assert elapsed >= 0.080


class TestControlEndpoint:
    async def test_set_rtt_down_and_up_over_http(self, wan, echo_port):
        relay = await wan.add_link(link_to(echo_port), listen_host="127.0.0.1")
        runner, url = await start_wan_control(wan)
        try:
            answer = await send_wan_command(url, "eu", "us", rtt_ms=250)
            assert answer["changed_links"] == ["eu->us:echo"]
            assert relay.state.rtt_ms == 250.0
            state = await fetch_wan_state(url)
            assert state["rtt_ms"]["eu-us"] == 250.0
            assert state["links"][0]["name"] == "eu->us:echo"
            await send_wan_command(url, "us", "eu", down=True)
            assert relay.state.down
            assert (await fetch_wan_state(url))["down"] == ["eu-us"]
            await send_wan_command(url, "us", "eu", down=False)
            assert not relay.state.down
        finally:
            await runner.cleanup()

    async def test_bad_commands_are_refused_with_the_reason(self, wan):
        runner, url = await start_wan_control(wan)
        try:
            with pytest.raises(WanError, match="unknown region 'mars'"):
                await send_wan_command(url, "eu", "mars", rtt_ms=10)
            with pytest.raises(WanError, match="give 'rtt_ms'"):
                await send_wan_command(url, "eu", "us")
            async with (
                aiohttp.ClientSession() as session,
                session.post(url + "/wan", data=b"{not json") as response,
            ):
                assert response.status == 400
                assert "not JSON" in (await response.json())["error"]
            assert wan.matrix == make_matrix()
        finally:
            await runner.cleanup()

    async def test_no_endpoint_is_a_clear_error(self):
        with pytest.raises(WanError, match="no WAN control endpoint"):
            await send_wan_command(f"http://127.0.0.1:{free_port()}", "eu", "us", down=True)


async def test_http_keep_alive_through_a_relay(wan):
    """The lab's real use: an HTTP client reaching the demo origin over a WAN link."""
    from aiohttp import web

    from infra.demo_origin import build_catalogue, build_demo_origin, object_body

    runner = web.AppRunner(build_demo_origin(objects=50))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        origin_port = runner.addresses[0][1]
        link = link_to(origin_port, dst="eu", target="origin")
        relay = await wan.add_link(link, listen_host="127.0.0.1")
        biggest = max(build_catalogue(50), key=lambda obj: obj.size_bytes)
        url = f"http://127.0.0.1:{relay.listen_port}/obj/{biggest.id}"
        async with asyncio.timeout(LIMIT_S), aiohttp.ClientSession() as session:
            for _ in range(3):
                async with session.get(url) as response:
                    assert await response.read() == object_body(biggest)
        assert relay.connections_accepted == 1  # one kept-alive connection carried all three
    finally:
        await runner.cleanup()
