"""A refused request head never reaches the node's log (edge.log_redaction)."""

from __future__ import annotations

import logging

import pytest
from aiohttp.http_exceptions import BadHttpMessage, LineTooLong

from edge.log_redaction import redacted
from tests.edge.conftest import EdgeUnderTest, Origin
from tests.edge.test_bad_input import raw_exchange

SECRET = b"do-not-log-this-cluster-secret"


@pytest.mark.parametrize(
    "field",
    [
        b"Authorization: Bearer " + SECRET + b"\x00",
        b"Cookie: session=" + SECRET + b"\x01",
        b"Authorization : Bearer " + SECRET,
        b"X-Long: " + SECRET + b"x" * 9000,
    ],
    ids=["nul", "control", "space-before-colon", "too-long"],
)
async def test_a_refused_field_is_not_logged(
    origin: Origin, edge: EdgeUnderTest, caplog: pytest.LogCaptureFixture, field: bytes
) -> None:
    caplog.set_level(logging.DEBUG)
    status, _ = await raw_exchange(
        edge, b"GET / HTTP/1.1\r\nHost: www.cdn.test\r\n" + field + b"\r\n\r\n"
    )
    assert status in (400, 431)
    assert caplog.records, "the refusal is still logged"
    assert SECRET.decode() not in caplog.text
    assert origin.hits == {}


def test_redacted_keeps_the_kind_and_drops_the_input() -> None:
    exc = BadHttpMessage("Invalid header value char: b'Authorization: Bearer s3cret' ^")
    assert redacted(exc) == "Invalid header value char"
    assert "s3cret" not in redacted(LineTooLong(b"Cookie: s3cret...", 100))
