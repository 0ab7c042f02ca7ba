"""Validation (RFC 9111 §4.3): conditional requests upstream (§4.3.1), freshening stored
responses with 304 (§4.3.4, §3.2) or with a 200 to HEAD (§4.3.5), and answering client
conditionals from cache (§4.3.2, RFC 9110 §13.1.1-2)."""

from __future__ import annotations

import pytest

from cdn_core import cache_policy, validation
from cdn_core.cache_policy import CacheOptions, Hit, Miss, Revalidate, decide_lookup
from cdn_core.entry import StoredEntry
from cdn_core.http import Headers, ResponseHead
from cdn_core.httpdate import format_http_date
from cdn_core.testing import EPOCH, make_entry, make_request, make_response
from cdn_core.validation import (
    HeadFreshen,
    HeadInvalidate,
    HeadMismatch,
    HeadUpdate,
    can_freshen,
    conditional_headers,
    freshen,
    freshen_from_head,
    is_not_modified,
)

OPTIONS = CacheOptions()
LAST_MODIFIED = format_http_date(EPOCH - 3600)


class TestConditionalHeaders:
    def test_etag_and_last_modified(self):
        entry = make_entry(headers={"etag": 'W/"a"', "last-modified": LAST_MODIFIED})
        assert conditional_headers(entry) == Headers(
            [("if-none-match", 'W/"a"'), ("if-modified-since", LAST_MODIFIED)]
        )

    def test_no_validators(self):
        assert conditional_headers(make_entry()) == Headers()


class TestFreshen:
    def entry(self) -> StoredEntry:
        return make_entry(
            headers={
                "cache-control": "max-age=10",
                "etag": '"a"',
                "content-length": "5",
                "age": "3",
                "x-old": "1",
            },
            response_time=EPOCH,
            body_size=5,
        )

    def test_304_makes_entry_fresh_again(self):
        entry = self.entry()
        now = EPOCH + 100
        not_modified = make_response(
            304, headers={"cache-control": "max-age=60", "etag": '"a"'}, date=now
        )
        updated = freshen(entry, not_modified, request_time=now - 1, response_time=now)
        decision = decide_lookup(make_request(), [updated], now=now + 5, options=OPTIONS)
        assert isinstance(decision, Hit) and decision.age_s == 6
        assert updated.response.status == 200
        assert updated.response.headers.get("cache-control") == "max-age=60"
        assert updated.response.headers.get("x-old") == "1"

    def test_content_length_and_hop_by_hop_not_updated(self):
        not_modified = make_response(
            304,
            headers={
                "content-length": "0",
                "connection": "x-hop",
                "x-hop": "1",
                "keep-alive": "5",
                "set-cookie": "a=b",
            },
        )
        updated = freshen(self.entry(), not_modified, request_time=EPOCH, response_time=EPOCH)
        headers = updated.response.headers
        assert headers.get("content-length") == "5"
        assert not {"x-hop", "keep-alive", "connection", "set-cookie"} & headers.names()

    def test_missing_age_and_date_restart_age(self):
        updated = freshen(
            self.entry(), make_response(304), request_time=EPOCH + 50, response_time=EPOCH + 50
        )
        assert "age" not in updated.response.headers
        assert updated.response.headers.get("date") == format_http_date(EPOCH + 50)

    def test_age_from_304_kept(self):
        not_modified = make_response(304, headers={"age": "7"}, date=EPOCH + 50)
        updated = freshen(
            self.entry(), not_modified, request_time=EPOCH + 50, response_time=EPOCH + 50
        )
        assert updated.response.headers.get("age") == "7"

    def test_clears_soft_purge(self):
        entry = self.entry().soft_purged(now=EPOCH)
        updated = freshen(entry, make_response(304), request_time=EPOCH, response_time=EPOCH)
        assert updated.stale_at is None

    def test_surrogate_keys_replaced_only_when_sent(self):
        entry = make_entry(headers={"surrogate-key": "old"})
        kept = freshen(entry, make_response(304), request_time=EPOCH, response_time=EPOCH)
        assert kept.surrogate_keys == {"old"}
        replaced = freshen(
            entry,
            make_response(304, headers={"surrogate-key": "new"}),
            request_time=EPOCH,
            response_time=EPOCH,
        )
        assert replaced.surrogate_keys == {"new"}
        assert "surrogate-key" not in replaced.response.headers

    def test_can_freshen_by_etag(self):
        entry = make_entry(headers={"etag": '"a"'})
        assert can_freshen(entry, make_response(304))
        assert can_freshen(entry, make_response(304, headers={"etag": 'W/"a"'}))
        assert not can_freshen(entry, make_response(304, headers={"etag": '"b"'}))
        assert not can_freshen(make_entry(), make_response(304, headers={"etag": '"a"'}))


class TestClientConditionals:
    entry = make_entry(headers={"etag": '"a"', "last-modified": LAST_MODIFIED})

    def test_if_none_match_weak_comparison(self):
        for value in ('"a"', 'W/"a"', '"x", "a"', "*"):
            request = make_request(headers={"if-none-match": value})
            assert is_not_modified(request, self.entry), value

    def test_if_none_match_mismatch(self):
        request = make_request(headers={"if-none-match": '"b"'})
        assert not is_not_modified(request, self.entry)

    def test_if_none_match_against_entry_without_etag(self):
        request = make_request(headers={"if-none-match": '"a"'})
        assert not is_not_modified(request, make_entry())

    def test_if_none_match_wins_over_if_modified_since(self):
        request = make_request(
            headers={"if-none-match": '"b"', "if-modified-since": format_http_date(EPOCH)}
        )
        assert not is_not_modified(request, self.entry)

    def test_if_modified_since(self):
        newer = make_request(headers={"if-modified-since": format_http_date(EPOCH)})
        older = make_request(headers={"if-modified-since": format_http_date(EPOCH - 7200)})
        assert is_not_modified(newer, self.entry)
        assert not is_not_modified(older, self.entry)

    def test_if_modified_since_falls_back_to_date(self):
        entry = make_entry(response_time=EPOCH)
        request = make_request(headers={"if-modified-since": format_http_date(EPOCH)})
        assert is_not_modified(request, entry)
        assert not is_not_modified(request, make_entry(date=False))

    def test_invalid_if_modified_since_ignored(self):
        request = make_request(headers={"if-modified-since": "yesterday"})
        assert not is_not_modified(request, self.entry)

    def test_no_conditionals(self):
        assert not is_not_modified(make_request(), self.entry)

    def test_only_for_get_head_and_stored_200(self):
        headers = {"if-none-match": "*"}
        assert is_not_modified(make_request(method="HEAD", headers=headers), self.entry)
        assert not is_not_modified(make_request(method="POST", headers=headers), self.entry)
        not_found = make_entry(status=404, headers={"etag": '"a"'})
        assert not is_not_modified(make_request(headers=headers), not_found)


class TestFreshenFromHead:
    """RFC 9111 §4.3.5: a 200 to HEAD freshens the stored GET response when it matches."""

    validators = {"etag": '"a"', "last-modified": LAST_MODIFIED}

    def entry(self, **headers: str) -> StoredEntry:
        fields = {"cache-control": "max-age=10", "content-length": "5", **headers}
        return make_entry(headers=fields, response_time=EPOCH, body_size=5)

    def update(self, entry: StoredEntry, response: ResponseHead) -> HeadUpdate | None:
        return freshen_from_head(
            entry, response, request_time=EPOCH + 99, response_time=EPOCH + 100
        )

    def head(self, status: int = 200, /, **headers: str) -> ResponseHead:
        fields = {"cache-control": "max-age=60", **headers}
        return make_response(status, headers=fields, date=EPOCH + 100)

    def invalidated(self, entry: StoredEntry, response: ResponseHead) -> HeadMismatch:
        update = self.update(entry, response)
        assert isinstance(update, HeadInvalidate)
        assert update.entry == entry.soft_purged(now=EPOCH + 100)
        return update.reason

    def test_matching_head_makes_entry_fresh_again(self):
        entry = self.entry(**self.validators, **{"x-old": "1"})
        update = self.update(entry, self.head(**self.validators, **{"content-length": "5"}))
        assert isinstance(update, HeadFreshen)
        fresh = update.entry
        assert fresh.response.status == 200
        assert fresh.response.headers.get("cache-control") == "max-age=60"
        assert fresh.response.headers.get("x-old") == "1"
        assert (fresh.request_time, fresh.response_time) == (EPOCH + 99, EPOCH + 100)
        decision = decide_lookup(make_request(), [fresh], now=EPOCH + 105, options=OPTIONS)
        assert isinstance(decision, Hit) and decision.age_s == 6  # 1 s of response delay

    def test_freshen_rules_of_section_3_2_apply(self):
        entry = self.entry(etag='"a"').soft_purged(now=EPOCH + 50)
        response = self.head(
            etag='W/"a"', **{"set-cookie": "a=b", "surrogate-key": "k", "keep-alive": "5"}
        )
        update = self.update(entry, response)
        assert isinstance(update, HeadFreshen)
        headers = update.entry.response.headers
        assert update.entry.stale_at is None
        assert update.entry.surrogate_keys == {"k"}
        assert not {"set-cookie", "surrogate-key", "keep-alive"} & headers.names()
        assert headers.get("etag") == 'W/"a"'

    @pytest.mark.parametrize(
        "fields",
        [
            {"etag": '"a"'},
            {"last-modified": LAST_MODIFIED},
            {"last-modified": "Tuesday, 14-Nov-23 21:13:20 GMT"},  # same date, RFC 850 form
            {"content-length": "5"},
            {"content-length": "5, 5"},  # RFC 9110 §8.6: identical values count as one
            {"etag": '"a"', "vary": "Accept-Language, accept-encoding"},
        ],
    )
    def test_each_received_validator_must_match(self, fields):
        entry = self.entry(**self.validators, vary="Accept-Encoding, Accept-Language")
        assert isinstance(self.update(entry, self.head(**fields)), HeadFreshen)

    @pytest.mark.parametrize(
        ("stored", "fields", "reason"),
        [
            ({"etag": '"a"'}, {"etag": '"b"'}, HeadMismatch.ETAG),
            ({}, {"etag": '"a"'}, HeadMismatch.ETAG),
            ({"etag": '"a"'}, {"etag": '"a"', "last-modified": LAST_MODIFIED}, "last-modified"),
            ({"last-modified": LAST_MODIFIED}, {"last-modified": "yesterday"}, "last-modified"),
            ({"last-modified": "yesterday"}, {"last-modified": LAST_MODIFIED}, "last-modified"),
            ({"etag": '"a"'}, {"etag": '"a"', "content-length": "6"}, "content-length"),
            ({"etag": '"a"'}, {"content-length": "5, 6"}, "content-length"),
            ({"etag": '"a"'}, {"content-length": "five"}, "content-length"),
            ({"etag": '"a"'}, {"content-length": ""}, "content-length"),
            ({"etag": '"a"'}, {"etag": '"a"', "vary": "accept"}, HeadMismatch.VARY),
            ({"etag": '"a"'}, {"etag": '"a"', "vary": "*"}, HeadMismatch.VARY),
            ({"etag": '"a"'}, {"etag": '"a"', "cache-control": "no-store"}, "no-store"),
            ({"etag": '"a"'}, {}, HeadMismatch.NO_EVIDENCE),
        ],
    )
    def test_mismatch_marks_the_stored_response_stale(self, stored, fields, reason):
        response = make_response(headers=fields, date=EPOCH + 100)
        assert self.invalidated(self.entry(**stored), response) is HeadMismatch(reason)

    def test_invalidated_entry_is_revalidated_or_refetched(self):
        for stored, expected in (({"etag": '"a"'}, Revalidate), ({}, Miss)):
            entry = self.entry(**stored)
            update = self.update(entry, self.head(**{"content-length": "9"}))
            assert isinstance(update, HeadInvalidate)
            decision = decide_lookup(
                make_request(), [update.entry], now=EPOCH + 101, options=OPTIONS
            )
            assert isinstance(decision, expected)

    def test_stored_non_200_is_never_freshened(self):
        entry = make_entry(status=404, headers={"etag": '"a"'}, response_time=EPOCH)
        assert self.invalidated(entry, self.head(etag='"a"')) is HeadMismatch.STATUS

    def test_earlier_soft_purge_is_kept(self):
        entry = self.entry(etag='"a"').soft_purged(now=EPOCH + 20)
        update = self.update(entry, self.head(etag='"b"'))
        assert isinstance(update, HeadInvalidate) and update.entry.stale_at == EPOCH + 20

    @pytest.mark.parametrize("status", [204, 206, 304, 404, 500])
    def test_only_a_200_says_anything(self, status):
        assert self.update(self.entry(etag='"a"'), self.head(status, etag='"b"')) is None


def test_cache_policy_re_exports_validation():
    names = (
        "HeadFreshen",
        "HeadInvalidate",
        "HeadMismatch",
        "can_freshen",
        "conditional_headers",
        "freshen",
        "freshen_from_head",
        "is_not_modified",
    )
    for name in names:
        assert getattr(cache_policy, name) is getattr(validation, name), name
