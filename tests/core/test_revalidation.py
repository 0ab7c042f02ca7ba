"""Validation (RFC 9111 §4.3): conditional requests upstream (§4.3.1), freshening stored
responses with 304 (§4.3.4, §3.2), answering client conditionals from cache (§4.3.2,
RFC 9110 §13.1.1-2), and stale-if-error (RFC 5861 §4, RFC 9111 §4.2.4)."""

from __future__ import annotations

from cdn_core.cache_policy import (
    CacheOptions,
    Hit,
    can_freshen,
    can_serve_stale_on_error,
    conditional_headers,
    decide_lookup,
    freshen,
    is_not_modified,
)
from cdn_core.entry import StoredEntry
from cdn_core.http import Headers
from cdn_core.httpdate import format_http_date
from cdn_core.testing import EPOCH, make_entry, make_request, make_response

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


class TestStaleIfError:
    def stale(self, cc: str) -> StoredEntry:
        return make_entry(headers={"cache-control": cc}, response_time=EPOCH)

    def test_within_stale_if_error(self):
        entry = self.stale("max-age=10, stale-if-error=60")
        assert can_serve_stale_on_error(entry, make_request(), now=EPOCH + 70)
        assert not can_serve_stale_on_error(entry, make_request(), now=EPOCH + 71)

    def test_without_directive(self):
        entry = self.stale("max-age=10")
        assert not can_serve_stale_on_error(entry, make_request(), now=EPOCH + 11)

    def test_fresh_entry_can_be_served(self):
        entry = self.stale("max-age=10")
        assert can_serve_stale_on_error(entry, make_request(), now=EPOCH + 5)

    def test_request_stale_if_error_and_max_stale(self):
        entry = self.stale("max-age=10")
        for cc in ("stale-if-error=100", "max-stale=100", "max-stale"):
            request = make_request(headers={"cache-control": cc})
            assert can_serve_stale_on_error(entry, request, now=EPOCH + 50), cc

    def test_grace_from_options(self):
        entry = self.stale("max-age=10")
        options = CacheOptions(stale_grace_s=30)
        assert can_serve_stale_on_error(entry, make_request(), now=EPOCH + 40, options=options)
        assert not can_serve_stale_on_error(entry, make_request(), now=EPOCH + 41, options=options)

    def test_never_over_revalidation_directives(self):
        for cc in ("must-revalidate", "proxy-revalidate", "no-cache"):
            entry = self.stale(f"max-age=10, stale-if-error=600, {cc}")
            assert not can_serve_stale_on_error(entry, make_request(), now=EPOCH + 20), cc

    def test_soft_purged_entry_counts_from_purge(self):
        entry = make_entry(
            headers={"cache-control": "max-age=600, stale-if-error=60"}, stale_at=EPOCH + 10
        )
        assert can_serve_stale_on_error(entry, make_request(), now=EPOCH + 70)
        assert not can_serve_stale_on_error(entry, make_request(), now=EPOCH + 71)
