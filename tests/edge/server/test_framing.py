"""The framing rules as pure decisions (RFC 9112 §2.3, §3.2, §6.1, §6.3; RFC 9110 §10.1.1).

What llhttp refuses by itself is tested over sockets in ``test_bad_requests.py``; here are the
rules :mod:`edge.server.framing` adds, decided on a parsed head with no I/O.
"""

from __future__ import annotations

import httptools
import pytest

from edge.server.framing import (
    Framing,
    HeadBudget,
    Refusal,
    decide_framing,
    refusal_for_parser_error,
)
from edge.server.limits import ServerLimits

HOST = (b"Host", b"a")


def decide(*fields: tuple[bytes, bytes], version: str = "1.1", upgrade: bool = False):
    return decide_framing(version, [HOST, *fields], upgrade=upgrade, max_body_bytes=1000)


class TestAccepted:
    def test_no_body(self) -> None:
        assert decide() == Framing(None, False, False, b"a")

    def test_content_length(self) -> None:
        framing = decide((b"content-length", b" 12 "))
        assert isinstance(framing, Framing)
        assert framing.content_length == 12
        assert framing.body_exists

    def test_zero_length_is_no_body(self) -> None:
        framing = decide((b"Content-Length", b"0"))
        assert isinstance(framing, Framing)
        assert not framing.body_exists

    @pytest.mark.parametrize("value", [b"chunked", b"CHUNKED", b" chunked ", b", chunked"])
    def test_chunked(self, value: bytes) -> None:
        framing = decide((b"Transfer-Encoding", value))
        assert isinstance(framing, Framing)
        assert framing.chunked and framing.body_exists

    def test_expect_continue_with_a_body(self) -> None:
        framing = decide((b"Content-Length", b"3"), (b"Expect", b"100-Continue"))
        assert isinstance(framing, Framing)
        assert framing.expect_continue

    def test_expect_continue_ignored_without_body_or_on_http10(self) -> None:
        assert decide((b"Expect", b"100-continue")) == Framing(None, False, False, b"a")
        framing = decide((b"Content-Length", b"3"), (b"Expect", b"100-continue"), version="1.0")
        assert isinstance(framing, Framing)
        assert not framing.expect_continue

    def test_http10_without_host(self) -> None:
        assert decide_framing("1.0", [], upgrade=False, max_body_bytes=10) == Framing(
            None, False, False, b""
        )

    def test_bodyless_upgrade_is_a_plain_request(self) -> None:
        assert isinstance(decide((b"Upgrade", b"h2c"), upgrade=True), Framing)


class TestRefused:
    @pytest.mark.parametrize(
        ("fields", "status"),
        [
            ([(b"Content-Length", b"3"), (b"Transfer-Encoding", b"chunked")], 400),
            ([(b"Content-Length", b"3"), (b"Content-Length", b"3")], 400),
            ([(b"Content-Length", b"3"), (b"Content-Length", b"4")], 400),
            ([(b"Content-Length", b"3, 3")], 400),
            ([(b"Content-Length", b"+3")], 400),
            ([(b"Content-Length", b"")], 400),
            ([(b"Content-Length", b"9" * 19)], 400),
            ([(b"Content-Length", b"1001")], 413),
            ([(b"Transfer-Encoding", b"gzip")], 400),
            ([(b"Transfer-Encoding", b"chunked, gzip")], 400),
            ([(b"Transfer-Encoding", b"chunked, chunked")], 400),
            ([(b"Transfer-Encoding", b"chunked;q=1")], 400),
            ([(b"Transfer-Encoding", b"")], 400),
            ([(b"Transfer-Encoding", b"gzip, chunked")], 501),
            ([(b"Transfer-Encoding", b"gzip"), (b"Transfer-Encoding", b"chunked")], 501),
            ([(b"Expect", b"the-unexpected")], 417),
            ([(b"Expect", b"100-continue, x")], 417),
            ([(b"Expect", b"100-continue"), (b"Expect", b"100-continue")], 417),
            ([(b"Host", b"b")], 400),
        ],
    )
    def test_status(self, fields: list[tuple[bytes, bytes]], status: int) -> None:
        refusal = decide(*fields)
        assert isinstance(refusal, Refusal)
        assert refusal.status == status
        assert refusal.close

    def test_transfer_encoding_on_http10(self) -> None:
        refusal = decide((b"Transfer-Encoding", b"chunked"), version="1.0")
        assert refusal == Refusal(400, "Transfer-Encoding in an HTTP/1.0 request")

    @pytest.mark.parametrize("version", ["2.0", "0.9", "1.2"])
    def test_other_versions(self, version: str) -> None:
        refusal = decide(version=version)
        assert isinstance(refusal, Refusal)
        assert refusal.status == 505

    def test_http11_without_host(self) -> None:
        refusal = decide_framing("1.1", [], upgrade=False, max_body_bytes=10)
        assert isinstance(refusal, Refusal)
        assert refusal.status == 400

    def test_upgrade_with_a_body(self) -> None:
        refusal = decide((b"Content-Length", b"5"), upgrade=True)
        assert isinstance(refusal, Refusal)
        assert refusal.status == 400

    def test_body_text(self) -> None:
        assert Refusal(400, "invalid Content-Length").body() == (
            b"400 Bad Request: invalid Content-Length\n"
        )


class TestParserErrors:
    @pytest.mark.parametrize(
        ("request_bytes", "status"),
        [
            (b"GET / HTTP/1.2\r\n\r\n", 505),
            (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505),
            (b"G@T / HTTP/1.1\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n", 400),
        ],
    )
    def test_status(self, request_bytes: bytes, status: int) -> None:
        parser = httptools.HttpRequestParser(object())
        with pytest.raises(httptools.HttpParserError) as caught:
            parser.feed_data(request_bytes)
        assert refusal_for_parser_error(caught.value).status == status


class TestHeadBudget:
    limits = ServerLimits(max_line_bytes=100, max_field_bytes=50, max_fields=3, max_head_bytes=150)

    def test_target_over_the_line_limit(self) -> None:
        budget = HeadBudget(self.limits)
        assert budget.add_target(60) is None
        refusal = budget.add_target(41)
        assert refusal is not None and refusal.status == 414

    def test_field_over_the_field_limit(self) -> None:
        budget = HeadBudget(self.limits)
        assert budget.add_field(10, 36) is None  # 50 with ": " and CRLF
        refusal = budget.add_field(10, 37)
        assert refusal is not None and refusal.status == 431

    def test_too_many_fields(self) -> None:
        budget = HeadBudget(self.limits)
        for _ in range(3):
            assert budget.add_field(1, 1) is None
        refusal = budget.add_field(1, 1)
        assert refusal is not None and refusal.status == 431

    def test_head_over_the_total(self) -> None:
        budget = HeadBudget(self.limits)
        assert budget.add_target(90) is None
        assert budget.add_field(10, 30) is None
        refusal = budget.add_field(10, 30)
        assert refusal is not None and refusal.status == 431

    def test_pending_counts_toward_the_line_then_the_field(self) -> None:
        budget = HeadBudget(self.limits)
        refusal = budget.add_pending(101)
        assert refusal is not None and refusal.status == 414
        budget.reset()
        budget.add_target(5)
        refusal = budget.add_pending(51)
        assert refusal is not None and refusal.status == 431

    def test_a_completed_field_replaces_its_pending_bytes(self) -> None:
        budget = HeadBudget(self.limits)
        budget.add_target(5)
        assert budget.add_pending(40) is None
        assert budget.add_field(5, 40) is None
        assert budget.pending == 0
