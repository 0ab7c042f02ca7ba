"""Byte ranges served from a cached full object (RFC 9110 §14.1-14.4, §15.3.7, §15.5.17)
with If-Range (§13.1.5)."""

from __future__ import annotations

from hypothesis import given, strategies as st

from cdn_core.byte_range import (
    FullBody,
    PartialBody,
    RangeDecision,
    Unsatisfiable,
    decide_range,
)
from cdn_core.httpdate import format_http_date
from cdn_core.testing import EPOCH, make_request

ETAG = '"v1"'
LAST_MODIFIED = format_http_date(EPOCH)


def decide(
    range_value: str | None = None,
    *,
    size: int = 100,
    method: str = "GET",
    if_range: str | None = None,
    headers: list[tuple[str, str]] | None = None,
) -> RangeDecision:
    fields = list(headers or [])
    if range_value is not None:
        fields.append(("range", range_value))
    if if_range is not None:
        fields.append(("if-range", if_range))
    request = make_request(method=method, headers=fields)
    return decide_range(request, size=size, entry_etag=ETAG, entry_last_modified=LAST_MODIFIED)


class TestPartial:
    def test_closed_range(self):
        assert decide("bytes=0-9") == PartialBody(start=0, end=9)

    def test_end_clamped_to_size(self):
        assert decide("bytes=90-500") == PartialBody(start=90, end=99)

    def test_open_range(self):
        assert decide("bytes=95-") == PartialBody(start=95, end=99)

    def test_suffix_range(self):
        assert decide("bytes=-10") == PartialBody(start=90, end=99)
        assert decide("bytes=-1000") == PartialBody(start=0, end=99)

    def test_unit_case_and_whitespace(self):
        assert decide("Bytes = 1 - 2") == PartialBody(start=1, end=2)

    def test_content_range_and_length(self):
        part = PartialBody(start=10, end=19)
        assert part.length == 10
        assert part.content_range(100) == "bytes 10-19/100"

    def test_if_range_strong_etag_match(self):
        assert decide("bytes=0-0", if_range=ETAG) == PartialBody(start=0, end=0)

    def test_if_range_date_match(self):
        assert decide("bytes=0-0", if_range=LAST_MODIFIED) == PartialBody(start=0, end=0)


class TestUnsatisfiable:
    def test_start_beyond_end(self):
        assert decide("bytes=100-") == Unsatisfiable()
        assert decide("bytes=100-200") == Unsatisfiable()

    def test_zero_suffix(self):
        assert decide("bytes=-0") == Unsatisfiable()

    def test_empty_object(self):
        assert decide("bytes=-5", size=0) == Unsatisfiable()
        assert decide("bytes=0-", size=0) == Unsatisfiable()

    def test_content_range(self):
        assert Unsatisfiable().content_range(100) == "bytes */100"


class TestFullBody:
    def test_no_range(self):
        assert decide() == FullBody()

    def test_head_and_other_methods_ignore_range(self):
        assert decide("bytes=0-9", method="HEAD") == FullBody()

    def test_multiple_ranges(self):
        assert decide("bytes=0-1,5-6") == FullBody()
        assert decide(headers=[("range", "bytes=0-1"), ("range", "bytes=5-6")]) == FullBody()

    def test_other_unit_or_malformed(self):
        for value in ("items=0-1", "bytes", "bytes=", "bytes=-", "bytes=a-b", "bytes=5-1", "0-1"):
            assert decide(value) == FullBody(), value

    def test_if_range_mismatch(self):
        for value in ('"v2"', 'W/"v1"', format_http_date(EPOCH - 1), "garbage"):
            assert decide("bytes=0-9", if_range=value) == FullBody(), value

    def test_if_range_etag_without_stored_etag(self):
        request = make_request(headers={"range": "bytes=0-9", "if-range": ETAG})
        decision = decide_range(request, size=100, entry_etag=None, entry_last_modified=None)
        assert decision == FullBody()


@given(
    size=st.integers(min_value=0, max_value=10_000),
    first=st.one_of(st.none(), st.integers(min_value=0, max_value=20_000)),
    last=st.one_of(st.none(), st.integers(min_value=0, max_value=20_000)),
)
def test_partial_bodies_stay_inside_the_object(size, first, last):
    spec = f"bytes={'' if first is None else first}-{'' if last is None else last}"
    decision = decide(spec, size=size)
    if isinstance(decision, PartialBody):
        assert 0 <= decision.start <= decision.end < size
