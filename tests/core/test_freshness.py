"""Freshness lifetime (RFC 9111 §4.2.1), heuristic freshness (§4.2.2), age (§4.2.3),
HTTP-date (RFC 9110 §5.6.7), Expires (§5.3) and CDN-Cache-Control precedence (RFC 9213)."""

from __future__ import annotations

import dataclasses

from hypothesis import given, strategies as st

from cdn_core.cache_options import CacheOptions
from cdn_core.freshness import age_and_ttl, current_age, is_fresh, remaining_ttl_s
from cdn_core.http import Headers, ResponseHead
from cdn_core.httpdate import format_http_date, parse_http_date
from cdn_core.lifetime import freshness_lifetime, has_explicit_freshness, head_freshness
from cdn_core.testing import EPOCH, FakeClock, make_entry, make_response

OPTIONS = CacheOptions()
DAY = 86400.0


def lifetime(
    status: int = 200,
    *,
    options: CacheOptions = OPTIONS,
    received_at: float | None = None,
    **headers: str,
) -> float:
    fields = {k.replace("_", "-"): v for k, v in headers.items()}
    return freshness_lifetime(
        make_response(status, headers=fields), options=options, received_at=received_at
    )


class TestHttpDate:
    def test_imf_fixdate(self):
        assert parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT") == 784111777.0

    def test_obsolete_formats(self):
        assert parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT") == 784111777.0
        assert parse_http_date("Sun Nov  6 08:49:37 1994") == 784111777.0

    def test_rfc850_two_digit_year_after_2000(self):
        assert parse_http_date("Friday, 06-Nov-26 08:49:37 GMT") == parse_http_date(
            "Fri, 06 Nov 2026 08:49:37 GMT"
        )

    def test_any_case_of_weekday_month_and_zone(self):
        """RFC 9110 §5.6.7: recipients parse dates leniently."""
        for value in (
            "sun, 06 nov 1994 08:49:37 gmt",
            "SUN, 06 NOV 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 08:49:37 gMT",
            "sunday, 06-NOV-94 08:49:37 Gmt",
        ):
            assert parse_http_date(value) == 784111777.0, value

    def test_another_zone_is_invalid(self):
        for value in ("Sun, 06 Nov 1994 08:49:37 UTC", "Sun, 06 Nov 1994 08:49:37 +0000"):
            assert parse_http_date(value) is None

    def test_round_trip(self):
        assert parse_http_date(format_http_date(EPOCH)) == EPOCH
        assert format_http_date(784111777.0) == "Sun, 06 Nov 1994 08:49:37 GMT"

    def test_invalid_dates_are_none(self):
        for value in (
            None,
            "0",
            "-1",
            "garbage",
            "Sun, 06 Nov 1994 08:49:37 +0100",
            "Sun, 06 Foo 1994 08:49:37 GMT",
            "Sun, 31 Feb 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 25:49:37 GMT",
            "Sun, 06 Nov 1994 08:61:37 GMT",
            "Sun, 06 Nov 1994 08:49:99 GMT",
            "Sun, 01 Jan 0000 00:00:00 GMT",
        ):
            assert parse_http_date(value) is None, value

    def test_padded_long_value_still_parses(self):
        value = " " * 40 + "Sun, 06 Nov 1994 08:49:37 GMT" + " " * 40
        assert parse_http_date(value) == 784111777.0
        assert parse_http_date("x" * 100) is None

    @given(st.text(max_size=40))
    def test_never_raises(self, value):
        parsed = parse_http_date(value)
        assert parsed is None or isinstance(parsed, float)


class TestExplicitLifetime:
    def test_s_maxage_wins_in_shared_cache(self):
        assert lifetime(cache_control="max-age=10, s-maxage=99") == 99

    def test_s_maxage_ignored_by_private_cache(self):
        private = CacheOptions(shared=False)
        assert lifetime(cache_control="max-age=10, s-maxage=99", options=private) == 10

    def test_max_age_beats_expires(self):
        date = format_http_date(EPOCH)
        expires = format_http_date(EPOCH + 500)
        assert lifetime(cache_control="max-age=10", date=date, expires=expires) == 10

    def test_expires_minus_date(self):
        date, expires = format_http_date(EPOCH), format_http_date(EPOCH + 500)
        assert lifetime(date=date, expires=expires) == 500

    def test_expires_in_the_past_is_zero(self):
        date, expires = format_http_date(EPOCH), format_http_date(EPOCH - 500)
        assert lifetime(date=date, expires=expires) == 0

    def test_invalid_expires_means_already_expired(self):
        assert lifetime(date=format_http_date(EPOCH), expires="0") == 0
        bad_zone = format_http_date(EPOCH + 500).replace("GMT", "PST")
        assert lifetime(date=format_http_date(EPOCH), expires=bad_zone) == 0

    def test_expires_in_another_case_still_counts(self):
        expires = format_http_date(EPOCH + 500).lower()  # "sun, ... gmt"
        assert lifetime(date=format_http_date(EPOCH), expires=expires) == 500

    def test_expires_uses_receipt_time_without_date(self):
        assert lifetime(expires=format_http_date(EPOCH + 30), received_at=EPOCH) == 30

    def test_expires_without_any_date_is_zero(self):
        assert lifetime(expires=format_http_date(EPOCH + 30)) == 0

    def test_has_explicit_freshness(self):
        assert has_explicit_freshness(make_response(headers={"expires": "0"}), options=OPTIONS)
        shared_only = make_response(headers={"cache-control": "s-maxage=5"})
        assert has_explicit_freshness(shared_only, options=OPTIONS)
        assert not has_explicit_freshness(shared_only, options=CacheOptions(shared=False))
        assert not has_explicit_freshness(make_response(), options=OPTIONS)


class TestCdnCacheControl:
    def test_cdn_cache_control_overrides_cache_control(self):
        assert lifetime(cache_control="max-age=10", cdn_cache_control="max-age=600") == 600

    def test_cdn_cache_control_ignores_expires(self):
        date, expires = format_http_date(EPOCH), format_http_date(EPOCH + 500)
        headers = {"cdn-cache-control": "public", "date": date, "expires": expires}
        response = make_response(headers=headers)
        assert freshness_lifetime(response, options=OPTIONS) == 0
        assert not has_explicit_freshness(response, options=OPTIONS)


class TestHeuristicLifetime:
    def test_fraction_of_time_since_last_modified(self):
        date, modified = format_http_date(EPOCH), format_http_date(EPOCH - 1000)
        assert lifetime(date=date, last_modified=modified) == 100

    def test_capped_by_max_heuristic(self):
        date, modified = format_http_date(EPOCH), format_http_date(EPOCH - 100 * DAY)
        assert lifetime(date=date, last_modified=modified) == DAY

    def test_last_modified_in_the_future_is_zero(self):
        date, modified = format_http_date(EPOCH), format_http_date(EPOCH + 1000)
        assert lifetime(date=date, last_modified=modified) == 0

    def test_only_for_heuristically_cacheable_statuses(self):
        date, modified = format_http_date(EPOCH), format_http_date(EPOCH - 1000)
        assert lifetime(302, date=date, last_modified=modified) == 0
        assert lifetime(404, date=date, last_modified=modified) == 100

    def test_public_allows_heuristic_for_other_statuses(self):
        date, modified = format_http_date(EPOCH), format_http_date(EPOCH - 1000)
        assert lifetime(302, cache_control="public", date=date, last_modified=modified) == 100

    def test_no_validators_no_lifetime(self):
        assert lifetime(date=format_http_date(EPOCH)) == 0
        assert lifetime(last_modified=format_http_date(EPOCH)) == 0


class TestCurrentAge:
    def test_resident_time(self):
        entry = make_entry(response_time=EPOCH)
        assert current_age(entry, now=EPOCH + 42) == 42

    def test_age_header_plus_response_delay(self):
        entry = make_entry(headers={"age": "100"}, request_time=EPOCH - 2, response_time=EPOCH)
        assert current_age(entry, now=EPOCH + 10) == 112

    def test_apparent_age_from_date(self):
        entry = make_entry(headers={"date": format_http_date(EPOCH - 30)}, response_time=EPOCH)
        assert current_age(entry, now=EPOCH) == 30

    def test_date_in_future_gives_no_negative_age(self):
        entry = make_entry(headers={"date": format_http_date(EPOCH + 30)}, response_time=EPOCH)
        assert current_age(entry, now=EPOCH) == 0

    def test_without_date_uses_response_time(self):
        entry = make_entry(date=False, response_time=EPOCH)
        assert current_age(entry, now=EPOCH + 5) == 5

    def test_invalid_or_repeated_age_header(self):
        assert current_age(make_entry(headers={"age": "abc"}), now=EPOCH) == 0
        assert current_age(make_entry(headers={"age": "7, 9"}), now=EPOCH) == 7

    def test_clock_going_backwards_is_clamped(self):
        assert current_age(make_entry(response_time=EPOCH), now=EPOCH - 100) == 0


class TestIsFresh:
    def test_fresh_until_lifetime_reached(self):
        entry = make_entry(headers={"cache-control": "max-age=60"})
        assert is_fresh(entry, now=EPOCH + 59, options=OPTIONS)
        assert not is_fresh(entry, now=EPOCH + 60, options=OPTIONS)

    def test_age_header_counts(self):
        entry = make_entry(headers={"cache-control": "max-age=60", "age": "50"})
        assert remaining_ttl_s(entry, now=EPOCH, options=OPTIONS) == 10

    def test_soft_purge_ends_freshness(self):
        entry = make_entry(headers={"cache-control": "max-age=600"}, stale_at=EPOCH + 10)
        assert is_fresh(entry, now=EPOCH + 9, options=OPTIONS)
        assert not is_fresh(entry, now=EPOCH + 10, options=OPTIONS)
        assert remaining_ttl_s(entry, now=EPOCH + 15, options=OPTIONS) == -5

    def test_fake_clock_drives_freshness(self):
        clock = FakeClock()
        entry = make_entry(headers={"cache-control": "max-age=5"}, response_time=clock())
        assert is_fresh(entry, now=clock(), options=OPTIONS)
        clock.advance(5)
        assert not is_fresh(entry, now=clock(), options=OPTIONS)


class TestHeadFreshness:
    """What a stored head yields is derived once, when the entry is built (cdn_core.lifetime)."""

    def test_derived_when_the_entry_is_built(self):
        entry = make_entry(headers={"cache-control": "max-age=60", "age": "5"})
        facts = entry.freshness
        assert (facts.lifetime_s(OPTIONS), facts.initial_age_s, facts.cache_control.max_age) == (
            60,
            5,
            60,
        )

    def test_the_lifetime_follows_the_options(self):
        entry = make_entry(headers={"cache-control": "max-age=60, s-maxage=10"})
        assert entry.freshness.lifetime_s(OPTIONS) == 10
        assert entry.freshness.lifetime_s(CacheOptions(shared=False)) == 60

    def test_the_heuristic_follows_the_options(self):
        entry = make_entry(headers={"last-modified": format_http_date(EPOCH - 1000)})
        assert entry.freshness.lifetime_s(OPTIONS) == 100
        assert entry.freshness.lifetime_s(CacheOptions(heuristic_fraction=0.5)) == 500
        assert entry.freshness.lifetime_s(CacheOptions(max_heuristic_s=7)) == 7

    def test_copies_compute_their_own_and_equality_ignores_it(self):
        entry = make_entry(headers={"cache-control": "max-age=60"})
        assert entry.soft_purged(now=EPOCH + 1).freshness == entry.freshness
        older = ResponseHead(status=200, headers=entry.response.headers.with_set("age", "50"))
        assert dataclasses.replace(entry, response=older).freshness.initial_age_s == 50
        assert entry == make_entry(headers={"cache-control": "max-age=60"})
        assert "freshness" not in repr(entry)

    def test_a_head_never_received_has_no_age(self):
        head = ResponseHead(status=200, headers=Headers({"age": "30"}))
        assert head_freshness(head, request_time=None, response_time=None).initial_age_s == 0

    def test_age_and_ttl_together(self):
        entry = make_entry(headers={"cache-control": "max-age=60"}, stale_at=EPOCH + 20)
        assert age_and_ttl(entry, now=EPOCH + 5, options=OPTIONS) == (5, 15)
        assert age_and_ttl(entry, now=EPOCH + 30, options=OPTIONS) == (30, -10)


@given(
    max_age=st.integers(min_value=0, max_value=10**6),
    age_header=st.integers(min_value=0, max_value=10**6),
    t1=st.floats(min_value=-1e6, max_value=1e7),
    dt=st.floats(min_value=0, max_value=1e7),
)
def test_freshness_is_monotone_in_now(max_age, age_header, t1, dt):
    entry = make_entry(headers={"cache-control": f"max-age={max_age}", "age": str(age_header)})
    now1, now2 = EPOCH + t1, EPOCH + t1 + dt
    assert remaining_ttl_s(entry, now=now2, options=OPTIONS) <= remaining_ttl_s(
        entry, now=now1, options=OPTIONS
    )
    if is_fresh(entry, now=now2, options=OPTIONS):
        assert is_fresh(entry, now=now1, options=OPTIONS)


@given(
    age_header=st.one_of(st.none(), st.text(max_size=12), st.integers(0, 10**12).map(str)),
    date_offset=st.floats(min_value=-1e8, max_value=1e8),
    request_offset=st.floats(min_value=-1e4, max_value=1e4),
    now_offset=st.floats(min_value=-1e8, max_value=1e8),
)
def test_age_is_never_negative(age_header, date_offset, request_offset, now_offset):
    headers = {"date": format_http_date(EPOCH + date_offset)}
    if age_header is not None:
        headers["age"] = age_header
    entry = make_entry(headers=headers, request_time=EPOCH + request_offset)
    assert current_age(entry, now=EPOCH + now_offset) >= 0
