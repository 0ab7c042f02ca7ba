"""Hostile requests to a node admin listener's ``POST /purge``, sent as raw bytes on loopback.

Each case of the table gets its exact 4xx status, purges nothing, leaves no trace of the
cluster secret in any log record, and the listener still applies a valid signed purge right
after it. A Bearer token from a remote peer cannot be sent from here (every peer is loopback):
``tests/controlplane/test_admin_auth.py`` covers that refusal as a pure function.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import hmac
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

import controlplane.admin
from controlplane.admin import MAX_BODY_BYTES, sign_admin_request
from tests.controlplane.harness import SECRET, AdminListener, admin_listener, raw_exchange

SECRET_B64 = base64.b64encode(SECRET)
BODY = json.dumps({"kind": "tag", "values": ["product-1"]}).encode()
AFTER = json.dumps({"kind": "tag", "values": ["after-the-attack"]}).encode()


@pytest.fixture
async def admin(tmp_path: Path, redis_url: str, cluster_name: str) -> AsyncIterator[AdminListener]:
    async with admin_listener(tmp_path, redis_url, cluster_name) as listener:
        yield listener


def message(
    body: bytes,
    *headers: bytes,
    length: bool = True,
    method: bytes = b"POST",
) -> bytes:
    lines = [method + b" /purge HTTP/1.1", b"Host: admin", *headers]
    if length:
        lines.append(b"Content-Length: %d" % len(body))
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def signed(body: bytes, *, now: float | None = None) -> bytes:
    value = sign_admin_request(SECRET, "POST", "/purge", body, now=now or time.time())
    return b"Authorization: " + value.encode()


def hmac_auth(stamp: str, sig: str) -> bytes:
    return f"Authorization: CDN-HMAC t={stamp},sig={sig}".encode()


def sig_for(stamp: str, body: bytes = BODY) -> str:
    return hmac.new(SECRET, f"{stamp}\nPOST\n/purge\n".encode() + body, hashlib.sha256).hexdigest()


def now() -> str:
    return str(int(time.time()))


def bearer(token: bytes) -> bytes:
    return b"Authorization: Bearer " + token


def signed_body(body: bytes) -> bytes:
    return message(body, signed(body))


def chunked(body: bytes, size: int = 4096) -> bytes:
    pieces = [body[i : i + size] for i in range(0, len(body), size)]
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"


@dataclass(frozen=True)
class Case:
    build: Callable[[], bytes]  # called when the test runs: timestamps are fresh
    status: int
    # Refused by aiohttp's parser before any handler runs; aiohttp.server logs that at ERROR,
    # quoting the offending line (see test_a_parser_refusal_does_not_log_the_secret).
    by_parser: bool = False


CASES: dict[str, Case] = {
    "header-over-512": Case(
        lambda: message(BODY, b"Authorization: Bearer" + b" " * 600 + SECRET), 401
    ),
    "header-over-aiohttp-limit": Case(lambda: message(BODY, bearer(b"x" * 9000)), 400, True),
    "huge-t": Case(lambda: message(BODY, hmac_auth("9" * 5000, sig_for(now()))), 401),
    "t-13-digits": Case(
        lambda: message(BODY, hmac_auth(now().zfill(13), sig_for(now().zfill(13)))), 401
    ),
    "negative-t": Case(lambda: message(BODY, hmac_auth("-" + now(), sig_for("-" + now()))), 401),
    "unicode-digit-t": Case(lambda: message(BODY, hmac_auth("١٢٣", sig_for("١٢٣"))), 401),
    "stale-t": Case(lambda: message(BODY, signed(BODY, now=time.time() - 3600)), 401),
    "non-hex-sig": Case(lambda: message(BODY, hmac_auth(now(), "x" * 64)), 401),
    "non-ascii-sig": Case(lambda: message(BODY, hmac_auth(now(), sig_for(now())[:-2] + "ß")), 401),
    "duplicate-sig": Case(
        lambda: message(BODY, signed(BODY) + b",sig=" + sig_for(now()).encode()), 401
    ),
    "duplicate-authorization": Case(lambda: message(BODY, bearer(SECRET_B64), signed(BODY)), 401),
    "bearer-non-ascii": Case(lambda: message(BODY, bearer(SECRET + "ü".encode())), 401),
    "bearer-latin1-bytes": Case(lambda: message(BODY, bearer(b"\xe9\xe8" + SECRET_B64)), 401),
    "bearer-nul": Case(lambda: message(BODY, bearer(b"not-the-secret\x00")), 400, True),
    "bearer-unpadded-base64": Case(lambda: message(BODY, bearer(SECRET_B64.rstrip(b"="))), 401),
    "nested-100k-signed": Case(lambda: signed_body(b"[" * 100_000 + b"]" * 100_000), 413),
    "nested-30k-signed": Case(lambda: signed_body(b"[" * 30_000 + b"]" * 30_000), 400),
    "nested-in-values-signed": Case(
        lambda: signed_body(b'{"kind":"tag","values":' + b"[" * 2000 + b"]" * 2000 + b"}"), 400
    ),
    "5000-values": Case(
        lambda: signed_body(json.dumps({"kind": "tag", "values": ["v"] * 5000}).encode()), 400
    ),
    "9k-value": Case(
        lambda: signed_body(json.dumps({"kind": "tag", "values": ["v" * 9216]}).encode()), 400
    ),
    "lone-surrogate": Case(lambda: signed_body(b'{"kind":"tag","values":["\\udc80"]}'), 400),
    "huge-number": Case(lambda: signed_body(b"1" * 20_000), 400),
    "non-utf8-body": Case(lambda: signed_body(b'{"kind":"tag","values":["\xc0\xaf"]}'), 400),
    "utf16-body": Case(lambda: signed_body(BODY.decode().encode("utf-16")), 400),
    "body-over-cap": Case(lambda: signed_body(BODY + b" " * MAX_BODY_BYTES), 413),
    "announced-terabyte": Case(
        lambda: message(b"", signed(b""), b"Content-Length: 1099511627776", length=False), 413
    ),
    "chunked-over-cap": Case(
        lambda: message(
            chunked(BODY + b" " * 2 * MAX_BODY_BYTES),
            bearer(SECRET_B64),
            b"Transfer-Encoding: chunked",
            length=False,
        ),
        413,
    ),
    "gzip-bomb": Case(
        lambda: message(
            gzip.compress(b" " * 10_000_000), bearer(SECRET_B64), b"Content-Encoding: gzip"
        ),
        415,
    ),
    "bad-content-length": Case(
        lambda: message(BODY, bearer(SECRET_B64), b"Content-Length: 1e3", length=False), 400, True
    ),
    "length-and-chunked": Case(
        lambda: message(
            chunked(BODY), bearer(SECRET_B64), b"Transfer-Encoding: chunked", length=True
        ),
        400,
        True,
    ),
    "get-purge": Case(lambda: message(b"", bearer(SECRET_B64), method=b"GET"), 405),
}


async def follow_up_purge(admin: AdminListener) -> None:
    """A valid signed purge is applied: the listener survived and only it was logged."""
    response = await raw_exchange(admin.host, admin.port, signed_body(AFTER))
    assert response.status == 200, response.body
    entries = await admin.cluster.store.read_purges("0-0")
    assert [e.rule.values for e in entries if e.rule] == [("after-the-attack",)]
    assert len(entries) == 1


def assert_secret_not_logged(caplog: pytest.LogCaptureFixture, *, parser_error: bool) -> None:
    """No record holds the secret; none is an error unless aiohttp's parser refused the request."""
    for record in caplog.records:
        text = caplog.handler.format(record)
        assert SECRET.decode() not in text and SECRET_B64.decode() not in text, record
        assert parser_error or record.levelno < logging.ERROR, text


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
async def test_hostile_admin_request(
    admin: AdminListener, caplog: pytest.LogCaptureFixture, case: Case
) -> None:
    caplog.set_level(logging.DEBUG)

    response = await raw_exchange(admin.host, admin.port, case.build())

    assert response.status == case.status, response.body
    assert await admin.purges() == 0
    await follow_up_purge(admin)
    assert_secret_not_logged(caplog, parser_error=case.by_parser)


async def test_a_stalled_body_times_out(
    admin: AdminListener, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setattr(controlplane.admin, "BODY_READ_TIMEOUT_S", 0.3)
    head = message(b"", bearer(SECRET_B64), b"Content-Length: %d" % len(BODY), length=False)

    response = await raw_exchange(admin.host, admin.port, head + BODY[:3], timeout_s=5)

    assert response.status == 408
    await follow_up_purge(admin)
    assert_secret_not_logged(caplog, parser_error=False)


async def test_a_parser_refusal_does_not_log_the_secret(
    admin: AdminListener, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)

    response = await raw_exchange(admin.host, admin.port, message(BODY, bearer(SECRET + b"\x00")))

    assert response.status == 400
    await follow_up_purge(admin)
    assert_secret_not_logged(caplog, parser_error=True)


def test_the_table_is_big_enough() -> None:
    assert len(CASES) >= 15
