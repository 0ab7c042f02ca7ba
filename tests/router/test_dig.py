"""The router queried with ISC dig (Debian package dnsutils), over UDP and TCP."""

from __future__ import annotations

import asyncio
import shutil

import pytest

pytestmark = pytest.mark.timeout(60)


async def dig(port: int, *args: str) -> str:
    binary = shutil.which("dig")
    assert binary is not None, "dig is missing: apt-get install dnsutils"
    proc = await asyncio.create_subprocess_exec(
        binary,
        "@127.0.0.1",
        "-p",
        str(port),
        "+tries=1",
        "+time=3",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 0, err.decode()
    return out.decode()


async def test_dig_answers(start_router):
    router = await start_router()
    port = router.config.dns.listen.port
    out = await dig(port, "www.cdn.test", "A")
    assert "status: NOERROR" in out
    assert "flags: qr aa rd" in out
    assert "127.0.1.1" in out
    out = await dig(port, "+tcp", "cdn.test", "SOA")
    assert "ns.cdn.test. hostmaster.cdn.test." in out
    out = await dig(port, "missing.cdn.test", "A")
    assert "status: NXDOMAIN" in out and "SOA" in out
    out = await dig(port, "www.example.org", "A")
    assert "status: REFUSED" in out


async def test_dig_client_subnet_and_badvers(start_router):
    router = await start_router()
    port = router.config.dns.listen.port
    out = await dig(port, "+subnet=127.10.5.0/24", "www.cdn.test", "A")
    assert "CLIENT-SUBNET: 127.10.5.0/24/24" in out
    assert "127.0.1.2" in out
    out = await dig(port, "+edns=1", "+noednsnegotiation", "www.cdn.test", "A")
    assert "status: BADVERS" in out
