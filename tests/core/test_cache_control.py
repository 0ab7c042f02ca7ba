"""Cache-Control parsing (RFC 9111 §5.2), CDN-Cache-Control precedence (RFC 9213 §2.1),
Pragma (RFC 9111 §5.4) and stale-* extensions (RFC 5861)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, strategies as st

from cdn_core.cache_control import (
    MAX_DELTA_SECONDS,
    CacheControl,
    parse_cache_control,
    request_cache_control,
    response_cache_control,
    targeted_cache_control,
)
from cdn_core.http import Headers


class TestParseDirectives:
    def test_absent_field_has_no_directives(self):
        assert parse_cache_control(None) == CacheControl()
        assert parse_cache_control("") == CacheControl()

    def test_boolean_directives(self):
        cc = parse_cache_control(
            "no-store, no-cache, private, public, must-revalidate, proxy-revalidate, immutable, "
            "no-transform, only-if-cached"
        )
        assert cc.no_store and cc.no_cache and cc.private and cc.public
        assert cc.must_revalidate and cc.proxy_revalidate and cc.immutable
        assert cc.no_transform and cc.only_if_cached

    def test_numeric_directives(self):
        cc = parse_cache_control(
            "max-age=60, s-maxage=30, stale-while-revalidate=5, stale-if-error=600, min-fresh=2"
        )
        assert (cc.max_age, cc.s_maxage) == (60, 30)
        assert (cc.stale_while_revalidate, cc.stale_if_error, cc.min_fresh) == (5, 600, 2)

    def test_names_are_case_insensitive_and_whitespace_tolerated(self):
        assert parse_cache_control("MAX-AGE = 5 ,  Public").max_age == 5
        assert parse_cache_control("MAX-AGE = 5 ,  Public").public

    def test_quoted_delta_seconds_are_accepted(self):
        assert parse_cache_control('max-age="42"').max_age == 42

    def test_first_occurrence_wins(self):
        assert parse_cache_control("max-age=3, max-age=9").max_age == 3

    def test_huge_delta_is_capped(self):
        assert parse_cache_control("max-age=99999999999999").max_age == MAX_DELTA_SECONDS

    def test_unknown_directives_and_empty_members_are_ignored(self):
        cc = parse_cache_control(',, foo="a,b", bar, max-age=7,')
        assert cc.max_age == 7

    def test_quoted_pair_and_unterminated_quote_do_not_crash(self):
        assert parse_cache_control('foo="a\\"b", max-age=1').max_age == 1
        assert parse_cache_control('"weird') == CacheControl()
        assert parse_cache_control("=5, max-age=2").max_age == 2


class TestInvalidValues:
    def test_invalid_max_age_means_stale(self):
        assert parse_cache_control("max-age=abc").max_age == 0
        assert parse_cache_control("max-age=-1").max_age == 0
        assert parse_cache_control("max-age").max_age == 0
        assert parse_cache_control("s-maxage=1.5").s_maxage == 0

    def test_non_ascii_digits_are_invalid(self):
        assert parse_cache_control("max-age=\u0663").max_age == 0

    def test_invalid_stale_directives_are_ignored(self):
        cc = parse_cache_control("stale-while-revalidate=x, stale-if-error, min-fresh=-3")
        assert cc.stale_while_revalidate is None
        assert cc.stale_if_error is None
        assert cc.min_fresh is None


class TestQualifiedDirectives:
    def test_no_cache_with_field_names(self):
        cc = parse_cache_control('no-cache="Set-Cookie, X-Foo"')
        assert cc.no_cache
        assert cc.no_cache_fields == ("set-cookie", "x-foo")

    def test_private_with_field_names(self):
        cc = parse_cache_control('private="x-user", max-age=5')
        assert cc.private and cc.private_fields == ("x-user",)
        assert cc.max_age == 5

    def test_empty_qualifier(self):
        assert parse_cache_control('private=""').private_fields == ()


class TestMaxStale:
    def test_without_value_is_infinite(self):
        assert parse_cache_control("max-stale").max_stale == math.inf

    def test_with_value(self):
        assert parse_cache_control("max-stale=5").max_stale == 5

    def test_invalid_value_is_ignored(self):
        assert parse_cache_control("max-stale=soon").max_stale is None


class TestCdnCacheControlPrecedence:
    def test_cdn_cache_control_wins(self):
        headers = Headers({"cache-control": "no-store", "cdn-cache-control": "max-age=600"})
        cc = response_cache_control(headers)
        assert cc.max_age == 600 and not cc.no_store

    def test_cache_control_used_without_targeted_field(self):
        assert response_cache_control(Headers({"cache-control": "max-age=5"})).max_age == 5

    def test_empty_targeted_field_is_ignored(self):
        headers = Headers({"cache-control": "max-age=5", "cdn-cache-control": " , "})
        assert targeted_cache_control(headers) is None
        assert response_cache_control(headers).max_age == 5


class TestRequestDirectives:
    def test_pragma_no_cache_without_cache_control(self):
        assert request_cache_control(Headers({"pragma": "no-cache"})).no_cache

    def test_pragma_ignored_when_cache_control_present(self):
        headers = Headers({"pragma": "no-cache", "cache-control": "max-age=5"})
        assert not request_cache_control(headers).no_cache

    def test_no_pragma(self):
        assert request_cache_control(Headers()) == CacheControl()

    def test_request_cache_control(self):
        assert request_cache_control(Headers({"cache-control": "only-if-cached"})).only_if_cached


@given(st.text(max_size=80))
def test_parsing_never_raises(value):
    assert isinstance(parse_cache_control(value), CacheControl)


class TestMemoisedParsing:
    def test_equal_values_share_one_frozen_result(self):
        assert parse_cache_control("max-age=60, public") is parse_cache_control(
            "max-age=60, public"
        )

    def test_long_values_parse_the_same_without_the_memo(self):
        padding = ", ".join(f"x-ext-{i}" for i in range(60))
        value = f'{padding}, max-age=60, no-cache="set-cookie"'
        assert len(value) > 256
        cc = parse_cache_control(value)
        assert cc.max_age == 60 and cc.no_cache_fields == ("set-cookie",)
        assert cc == parse_cache_control("max-age=60, no-cache=set-cookie")

    def test_long_targeted_field_with_only_separators_is_ignored(self):
        headers = Headers({"cache-control": "max-age=5", "cdn-cache-control": " ," * 200})
        assert targeted_cache_control(headers) is None

    def test_unknown_directive_alone_still_makes_the_targeted_field_apply(self):
        headers = Headers({"cache-control": "max-age=5", "cdn-cache-control": "x-unknown"})
        assert targeted_cache_control(headers) == CacheControl()
        assert response_cache_control(headers).max_age is None

    def test_pragma_without_no_cache(self):
        assert request_cache_control(Headers({"pragma": "x-other"})) == CacheControl()


class TestInvalidTargetedField:
    """RFC 9213 §2.1 and RFC 8941: CDN-Cache-Control is a Structured Field Dictionary; one that
    fails to parse, or whose delta directive has the wrong type, is ignored as a whole."""

    @pytest.mark.parametrize(
        "value",
        [
            "max-age=10000, &&&&&",
            'max-age="10000"',
            "max-age=10000.0",
            "max-age=-1",
            "max-age=?1",
            "max-age=(10000)",
            's-maxage=10, stale-if-error="60"',
        ],
    )
    def test_falls_back_to_cache_control(self, value: str) -> None:
        headers = Headers({"cache-control": "no-store", "cdn-cache-control": value})
        assert targeted_cache_control(headers) is None
        assert response_cache_control(headers).no_store

    def test_a_valid_one_still_applies(self) -> None:
        headers = Headers(
            {
                "cache-control": "no-store",
                "cdn-cache-control": "max-age=600, stale-while-revalidate=30, must-revalidate",
            }
        )
        cc = response_cache_control(headers)
        assert (cc.no_store, cc.max_age, cc.stale_while_revalidate) == (False, 600, 30)
        assert cc.must_revalidate

    def test_a_huge_delta_is_capped(self) -> None:
        headers = Headers({"cdn-cache-control": "max-age=999999999999999"})
        cc = targeted_cache_control(headers)
        assert cc is not None and cc.max_age == MAX_DELTA_SECONDS

    def test_an_empty_value_is_ignored(self) -> None:
        headers = Headers({"cache-control": "max-age=5", "cdn-cache-control": ""})
        assert targeted_cache_control(headers) is None

    def test_a_long_invalid_value_is_ignored_too(self) -> None:
        headers = Headers({"cache-control": "max-age=5", "cdn-cache-control": "a, " * 100 + "&"})
        assert targeted_cache_control(headers) is None
