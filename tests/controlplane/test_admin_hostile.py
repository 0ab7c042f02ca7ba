"""Hostile input to ``POST /purge``: every field bounded, 401/400/413, nothing purged, no leak.

Requests go as raw bytes to a real admin listener on loopback, so header bytes that no HTTP
client would send (non-ASCII, repeated fields) reach the server as written.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

import controlplane.admin
from controlplane.admin import MAX_BODY_BYTES, sign_admin_request

from .harness import SECRET, AdminListener, admin_listener, raw_exchange

SECRET_B64 = base64.b64encode(SECRET)
BODY = json.dumps({"kind": "tag", "values": ["product-1"], "soft": True}).encode()
HIGH_SECRET = bytes(range(0x80, 0x100, 3))  # binary, but no control characters
CONTROL_SECRET = bytes(range(0, 0x100, 7)) + b"\x00\xff secret-tail"


@pytest.fixture
async def admin(tmp_path: Path, redis_url: str, cluster_name: str) -> AsyncIterator[AdminListener]:
    async with admin_listener(tmp_path, redis_url, cluster_name) as listener:
        yield listener


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)
    return caplog


def request(body: bytes, *headers: bytes, length: bool = True) -> bytes:
    lines = [b"POST /purge HTTP/1.1", b"Host: admin", *headers]
    if length:
        lines.append(b"Content-Length: %d" % len(body))
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def auth(value: bytes | str) -> bytes:
    return b"Authorization: " + (value.encode() if isinstance(value, str) else value)


def signed(body: bytes, secret: bytes = SECRET) -> bytes:
    return auth(sign_admin_request(secret, "POST", "/purge", body, now=time.time()))


def bearer(token: bytes = SECRET_B64) -> bytes:
    return auth(b"Bearer " + token)


def sig(stamp: str, body: bytes = BODY) -> str:
    """HMAC-SHA256 over exactly ``stamp`` as written (whatever its characters)."""
    message = f"{stamp}\nPOST\n/purge\n".encode() + body
    return hmac.new(SECRET, message, hashlib.sha256).hexdigest()


def fragments(value: bytes) -> list[str]:
    """Pieces of a credential that must not show up in a log: each end of each ASCII run."""
    runs = re.findall(rb"[\x21-\x7e]{12,}", value)
    return [piece.decode() for run in runs for piece in (run[:12], run[-12:])]


def assert_no_leak(caplog: pytest.LogCaptureFixture, credential: bytes = b"") -> None:
    forbidden = [SECRET.decode(), SECRET_B64.decode(), *fragments(credential)]
    for record in caplog.records:
        text = caplog.handler.format(record) + repr(record.args)
        assert not [f for f in forbidden if f in text], record
        assert record.levelno < logging.WARNING, record


async def assert_nothing_purged(admin: AdminListener) -> None:
    await asyncio.sleep(0.1)  # a purge that slipped through would reach the log and the cache
    assert await admin.purges() == 0
    assert admin.cluster.caches["edge-1"].events == []


def now() -> str:
    return str(int(time.time()))


ARABIC_DIGITS = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")


def hmac_header(stamp: str, signature: str, extra: str = "") -> bytes:
    return f"CDN-HMAC t={stamp},sig={signature}{extra}".encode()


def fresh() -> tuple[str, str]:
    """A current timestamp and its valid signature over BODY (made when the test runs)."""
    t = now()
    return t, sig(t)


def unicode_digits() -> bytes:
    arabic = now().translate(ARABIC_DIGITS)  # int() reads these digits; the header must not
    return hmac_header(arabic, sig(arabic))


def over_12_digits() -> bytes:
    padded = now().rjust(13, "0")  # the same instant, 13 digits
    return hmac_header(padded, sig(padded))


def negative() -> bytes:
    stamp = "-" + now()
    return hmac_header(stamp, sig(stamp))


# Each builds, when the test runs, an Authorization value that must get 401.
HOSTILE_CREDENTIALS: dict[str, Callable[[], bytes]] = {
    "huge-t": lambda: hmac_header("1" * 5000, fresh()[1]),
    "t-over-12-digits": over_12_digits,
    "negative-t": negative,
    "unicode-digit-t": unicode_digits,
    "empty-t": lambda: hmac_header("", fresh()[1]),
    "non-ascii-sig": lambda: hmac_header(fresh()[0], fresh()[1][:-1] + "é"),
    "non-hex-sig": lambda: hmac_header(now(), "g" * 64),
    "short-sig": lambda: hmac_header(*fresh())[:-1],
    "long-sig": lambda: hmac_header(*fresh(), "0"),
    "duplicate-sig": lambda: hmac_header(*fresh(), ",sig=" + fresh()[1]),
    "duplicate-t": lambda: hmac_header(now() + ",t=" + now(), sig(now())),
    "extra-param": lambda: hmac_header(*fresh(), ",nonce=1"),
    "quoted-sig": lambda: hmac_header(fresh()[0], f'"{fresh()[1]}"'),
    "no-sig": lambda: f"CDN-HMAC t={now()}".encode(),
    "wrong-sig": lambda: hmac_header(now(), "0" * 64),
    "oversized-header": lambda: b"Bearer" + b" " * 600 + SECRET,
    "bearer-non-ascii": lambda: b"Bearer " + SECRET + "é".encode(),
    "bearer-non-ascii-b64": lambda: b"Bearer " + SECRET_B64 + b"\xff",
    "bearer-raw-bytes": lambda: b"Bearer \x80\x81\xfe\xff" + SECRET,
    "bearer-unpadded": lambda: b"Bearer " + SECRET_B64.rstrip(b"="),
    "bearer-empty": lambda: b"Bearer ",
    "bearer-other": lambda: b"Bearer " + base64.b64encode(b"another-secret-0123456789"),
    "basic": lambda: b"Basic " + base64.b64encode(b"admin:" + SECRET),
}


@pytest.mark.parametrize("build", HOSTILE_CREDENTIALS.values(), ids=HOSTILE_CREDENTIALS.keys())
async def test_hostile_credentials_are_401(
    admin: AdminListener, logs: pytest.LogCaptureFixture, build: Callable[[], bytes]
) -> None:
    credential = build()

    response = await raw_exchange(admin.host, admin.port, request(BODY, auth(credential)))

    assert response.status == 401
    assert b"WWW-Authenticate: CDN-HMAC" in response.headers
    await assert_nothing_purged(admin)
    assert_no_leak(logs, credential)
    assert any("refused" in r.getMessage() for r in logs.records)


async def test_two_authorization_headers_are_401(
    admin: AdminListener, logs: pytest.LogCaptureFixture
) -> None:
    response = await raw_exchange(admin.host, admin.port, request(BODY, bearer(), signed(BODY)))

    assert response.status == 401
    await assert_nothing_purged(admin)
    assert_no_leak(logs)


GOOD_CREDENTIALS: dict[str, Callable[[], bytes]] = {
    "bearer-base64": lambda: b"Bearer " + SECRET_B64,  # base64 of the secret's bytes
    "bearer-printable": lambda: b"Bearer " + SECRET,  # a printable secret as it is
    "bearer-case": lambda: b"bearer  " + SECRET_B64 + b" ",  # case-insensitive scheme, spaces
    "hmac-upper-hex": lambda: f"cdn-hmac t={now()}, sig={sig(now()).upper()}".encode(),
}


@pytest.mark.parametrize("build", GOOD_CREDENTIALS.values(), ids=GOOD_CREDENTIALS.keys())
async def test_well_formed_credentials_are_accepted(
    admin: AdminListener, logs: pytest.LogCaptureFixture, build: Callable[[], bytes]
) -> None:
    credential = build()

    response = await raw_exchange(admin.host, admin.port, request(BODY, auth(credential)))

    assert response.status == 200, response.body
    assert await admin.purges() == 1
    assert_no_leak(logs, credential)


@pytest.mark.parametrize(
    ("secret", "raw_status"),
    [(HIGH_SECRET, 401), (CONTROL_SECRET, 400)],  # aiohttp's parser refuses NUL, 400
    ids=["high-bytes", "control-bytes"],
)
async def test_a_binary_secret_is_given_as_base64(
    tmp_path: Path,
    redis_url: str,
    cluster_name: str,
    logs: pytest.LogCaptureFixture,
    secret: bytes,
    raw_status: int,
) -> None:
    token = base64.b64encode(secret)
    async with admin_listener(tmp_path, redis_url, cluster_name, secret=secret) as admin:
        raw = await raw_exchange(admin.host, admin.port, request(BODY, bearer(secret)))
        assert raw.status == raw_status
        assert await admin.purges() == 0

        for header in (bearer(token), signed(BODY, secret)):
            response = await raw_exchange(admin.host, admin.port, request(BODY, header))
            assert response.status == 200, response.body
        assert await admin.purges() == 2

    for record in logs.records:
        assert token.decode() not in logs.handler.format(record)
        if raw_status == 401:
            assert repr(secret)[2:-1] not in logs.handler.format(record)


async def test_a_raw_binary_secret_refused_by_the_parser_is_not_logged(
    tmp_path: Path, redis_url: str, cluster_name: str, logs: pytest.LogCaptureFixture
) -> None:
    async with admin_listener(tmp_path, redis_url, cluster_name, secret=CONTROL_SECRET) as admin:
        await raw_exchange(admin.host, admin.port, request(BODY, bearer(CONTROL_SECRET)))

    assert "secret-tail" not in logs.text


def deep(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


@pytest.mark.parametrize(
    "body",
    [
        deep(20_000),
        b'{"kind": "tag", "values": ' + deep(5_000) + b"}",
        b'{"kind": "tag", "values": [[[["x"]]]]}',
        b'{"kind": "tag", "values": ["\xff"]}',
        json.dumps({"kind": "tag", "values": ["x"]}).encode("utf-16"),
        json.dumps({"kind": "tag", "values": ["x"] * 1001}).encode(),
        json.dumps({"kind": "url", "values": ["http://www.cdn.test/" + "a" * 9000]}).encode(),
        b'{"kind": "url", "values": ["http://www.cdn.test/\\ud800"]}',
        b'{"kind": "tag", "values": ["x"], "soft": ' + b"1" * 5000 + b"}",
    ],
    ids=[
        "nested-20k",
        "nested-values-5k",
        "depth-5",
        "non-utf8",
        "utf16",
        "1001-values",
        "9k-value",
        "lone-surrogate",
        "huge-number",
    ],
)
async def test_hostile_signed_bodies_are_400(
    admin: AdminListener, logs: pytest.LogCaptureFixture, body: bytes
) -> None:
    response = await raw_exchange(admin.host, admin.port, request(body, signed(body)))

    assert response.status == 400, response.body
    assert json.loads(response.body)["error"]
    await assert_nothing_purged(admin)
    assert_no_leak(logs)


async def test_brackets_inside_strings_do_not_count_as_nesting(admin: AdminListener) -> None:
    body = json.dumps({"kind": "tag", "values": ["[" * 200, "{[" * 100, '"]'], "soft": True})

    response = await raw_exchange(admin.host, admin.port, request(body.encode(), bearer()))

    assert response.status == 200, response.body


async def test_a_utf8_body_may_start_with_a_bom(admin: AdminListener) -> None:
    body = b"\xef\xbb\xbf" + BODY

    response = await raw_exchange(admin.host, admin.port, request(body, signed(body)))

    assert response.status == 200, response.body


async def test_a_body_at_the_cap_is_read(admin: AdminListener) -> None:
    body = BODY + b" " * (MAX_BODY_BYTES - len(BODY))

    response = await raw_exchange(admin.host, admin.port, request(body, signed(body)))

    assert response.status == 200, response.body


async def test_a_body_over_the_cap_is_413(
    admin: AdminListener, logs: pytest.LogCaptureFixture
) -> None:
    body = BODY + b" " * (MAX_BODY_BYTES + 1 - len(BODY))

    response = await raw_exchange(admin.host, admin.port, request(body, signed(body)))

    assert response.status == 413
    await assert_nothing_purged(admin)
    assert_no_leak(logs)


async def test_a_chunked_body_over_the_cap_is_413(admin: AdminListener) -> None:
    chunk = b"%x\r\n%s\r\n" % (4096, b" " * 4096)
    body = b"%x\r\n%s\r\n" % (len(BODY), BODY) + chunk * 20 + b"0\r\n\r\n"
    chunked = request(body, bearer(), b"Transfer-Encoding: chunked", length=False)

    response = await raw_exchange(admin.host, admin.port, chunked)

    assert response.status == 413
    await assert_nothing_purged(admin)


async def test_an_announced_huge_body_is_refused_unread(admin: AdminListener) -> None:
    headers = request(b"", bearer(), b"Content-Length: 1000000000000", length=False)

    response = await raw_exchange(admin.host, admin.port, headers, timeout_s=5)

    assert response.status == 413
    await assert_nothing_purged(admin)


async def test_a_content_encoded_body_is_415(admin: AdminListener) -> None:
    body = b"not gzip at all"

    response = await raw_exchange(
        admin.host, admin.port, request(body, bearer(), b"Content-Encoding: gzip")
    )

    assert response.status == 415
    await assert_nothing_purged(admin)


async def test_a_stalled_body_is_408(
    admin: AdminListener, logs: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(controlplane.admin, "BODY_READ_TIMEOUT_S", 0.3)
    partial = request(b"", bearer(), b"Content-Length: %d" % len(BODY), length=False) + BODY[:5]

    response = await raw_exchange(admin.host, admin.port, partial, timeout_s=5)

    assert response.status == 408
    await assert_nothing_purged(admin)
    assert_no_leak(logs)


async def test_credentials_are_refused_before_the_body_is_read(admin: AdminListener) -> None:
    headers = request(b"", bearer(b"wrong"), b"Content-Length: 1000", length=False)

    response = await raw_exchange(admin.host, admin.port, headers, timeout_s=5)

    assert response.status == 401
