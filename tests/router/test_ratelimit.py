"""Per-source token buckets, with an injected clock; and a flood against a running router."""

from __future__ import annotations

import asyncio
import socket

import dns.message
import pytest

from router.ratelimit import RateLimiter


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class TestTokenBucket:
    def test_burst_then_drop_then_refill(self):
        clock = FakeClock()
        limiter = RateLimiter(8, 3, clock=clock)
        assert [limiter.allow("a") for _ in range(4)] == [True, True, True, False]
        clock.now += 0.125  # one token back at 8/s
        assert limiter.allow("a")
        assert not limiter.allow("a")

    def test_sources_are_independent(self):
        limiter = RateLimiter(1, 1, clock=FakeClock())
        assert limiter.allow("a")
        assert not limiter.allow("a")
        assert limiter.allow("b")

    def test_table_is_bounded(self):
        limiter = RateLimiter(1, 1, clock=FakeClock(), max_sources=3)
        for source in "abcdef":
            limiter.allow(source)
        assert len(limiter) == 3

    @pytest.mark.parametrize(("rate", "burst"), [(0, 1), (1, 0.5)])
    def test_bad_settings_are_rejected(self, rate, burst):
        with pytest.raises(ValueError, match="rate_qps"):
            RateLimiter(rate, burst, clock=FakeClock())


def flood(port: int, count: int) -> int:
    query = dns.message.make_query("www.cdn.test", "A").to_wire()
    answered = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.5)
        for _ in range(count):
            sock.sendto(query, ("127.0.0.1", port))
        try:
            for _ in range(count):
                sock.recv(65535)
                answered += 1
        except TimeoutError:
            pass
    return answered


async def test_flood_from_one_source_is_limited(start_router):
    clock = FakeClock()  # frozen: no refill during the flood
    router = await start_router(clock=clock, rate_limit_qps=5, rate_limit_burst=10)
    answered = await asyncio.to_thread(flood, router.config.dns.listen.port, 50)
    assert answered == 10
    assert router.metrics.dropped.labels("rate_limited")._value.get() == 40
    clock.now += 1.0  # five tokens later
    assert await asyncio.to_thread(flood, router.config.dns.listen.port, 8) == 5
