"""Storing responses in a shared cache (RFC 9111 §3): methods, understood statuses, no-store,
private (§5.2.2.7), Authorization (§3.5), Set-Cookie, Vary: * (§4.1), heuristic freshness
(§4.2.2), stored head (§3.1: hop-by-hop removed, Date added per RFC 9110 §6.6.1),
CDN-Cache-Control (RFC 9213) and surrogate keys."""

from __future__ import annotations

from cdn_core import cache_policy, storability
from cdn_core.cache_options import CacheOptions
from cdn_core.http import Headers, RequestHead, ResponseHead
from cdn_core.httpdate import format_http_date
from cdn_core.storability import DontStore, NoStoreReason, Store, StoreDecision, decide_store
from cdn_core.testing import EPOCH, make_request, make_response

OPTIONS = CacheOptions(max_object_bytes=1000)
CACHEABLE = {"cache-control": "max-age=60"}


def store(
    response: ResponseHead,
    request: RequestHead | None = None,
    *,
    body_size: int | None = 10,
    options: CacheOptions = OPTIONS,
) -> StoreDecision:
    return decide_store(
        request or make_request(),
        response,
        request_time=EPOCH - 1,
        response_time=EPOCH,
        body_size=body_size,
        options=options,
    )


def refused(reason: NoStoreReason, hit_for_miss: bool) -> DontStore:
    return DontStore(reason=reason, hit_for_miss=hit_for_miss)


class TestStore:
    def test_explicit_max_age(self):
        decision = store(make_response(headers=CACHEABLE, date=EPOCH))
        assert isinstance(decision, Store)
        assert decision.ttl_s == 59  # one second of response delay already counts as age
        entry = decision.entry
        assert (entry.key, entry.host, entry.target, entry.method) == (
            "example.com/",
            "example.com",
            "/",
            "GET",
        )
        assert (entry.request_time, entry.response_time, entry.body_size) == (EPOCH - 1, EPOCH, 10)

    def test_heuristically_cacheable_status_with_last_modified(self):
        headers = {"last-modified": format_http_date(EPOCH - 1000)}
        decision = store(make_response(headers=headers, date=EPOCH))
        assert isinstance(decision, Store) and 98 <= decision.ttl_s <= 100

    def test_stale_but_revalidatable(self):
        decision = store(make_response(headers={"cache-control": "max-age=0", "etag": '"a"'}))
        assert isinstance(decision, Store) and decision.ttl_s <= 0

    def test_no_cache_with_validator_is_stored(self):
        decision = store(make_response(headers={"cache-control": "no-cache", "etag": '"a"'}))
        assert isinstance(decision, Store)

    def test_stale_if_error_only_is_stored(self):
        response = make_response(headers={"cache-control": "max-age=0, stale-if-error=60"})
        assert isinstance(store(response), Store)

    def test_understood_status_with_explicit_freshness(self):
        assert isinstance(store(make_response(302, headers=CACHEABLE)), Store)

    def test_headers_object_accepted_by_builder(self):
        decision = store(make_response(headers=Headers(CACHEABLE)))
        assert isinstance(decision, Store)

    def test_target_normalised_in_entry(self):
        request = make_request("http://example.com/a%2fb?x=%7e")
        decision = store(make_response(headers=CACHEABLE), request)
        assert isinstance(decision, Store)
        assert decision.entry.target == "/a%2Fb?x=~"
        assert decision.entry.key == "example.com/a%2Fb?x=~"

    def test_unknown_body_size(self):
        decision = store(make_response(headers=CACHEABLE), body_size=None)
        assert isinstance(decision, Store) and decision.entry.body_size == 0

    def test_cdn_cache_control_overrides_no_store(self):
        response = make_response(
            headers={"cache-control": "no-store", "cdn-cache-control": "max-age=60"}
        )
        decision = store(response)
        assert isinstance(decision, Store)
        assert decision.entry.response.headers.get("cdn-cache-control") == "max-age=60"

    def test_private_cache_stores_private(self):
        response = make_response(headers={"cache-control": "private, max-age=60"})
        assert isinstance(store(response, options=CacheOptions(shared=False)), Store)


class TestStoredHead:
    def test_hop_by_hop_and_surrogate_keys_stripped(self):
        response = make_response(
            headers=[
                ("cache-control", "max-age=60"),
                ("connection", "close, x-conn"),
                ("x-conn", "1"),
                ("keep-alive", "timeout=5"),
                ("transfer-encoding", "chunked"),
                ("surrogate-key", "product-1  home"),
                ("cache-tag", "a,b"),
                ("content-type", "text/plain"),
            ],
            date=EPOCH,
        )
        decision = store(response)
        assert isinstance(decision, Store)
        assert decision.entry.response.headers.names() == {"cache-control", "content-type", "date"}
        assert decision.entry.surrogate_keys == {"product-1", "home", "a", "b"}

    def test_date_added_when_missing_or_invalid(self):
        for headers in (CACHEABLE, {**CACHEABLE, "date": "yesterday"}):
            decision = store(make_response(headers=headers))
            assert isinstance(decision, Store)
            assert decision.entry.response.headers.get("date") == format_http_date(EPOCH)

    def test_set_cookie_stripped_when_public(self):
        response = make_response(
            headers={"cache-control": "public, max-age=60", "set-cookie": "id=1"}
        )
        decision = store(response)
        assert isinstance(decision, Store)
        assert "set-cookie" not in decision.entry.response.headers

    def test_set_cookie_with_s_maxage(self):
        response = make_response(headers={"cache-control": "s-maxage=60", "set-cookie": "id=1"})
        assert isinstance(store(response), Store)

    def test_qualified_private_fields_stripped(self):
        response = make_response(
            headers={"cache-control": 'private="x-user", max-age=60', "x-user": "alice"}
        )
        decision = store(response)
        assert isinstance(decision, Store)
        assert "x-user" not in decision.entry.response.headers

    def test_vary_recorded(self):
        request = make_request(headers={"accept-language": "en", "accept-encoding": "gzip"})
        response = make_response(headers={**CACHEABLE, "vary": "Accept-Language, Accept-Encoding"})
        decision = store(response, request)
        assert isinstance(decision, Store)
        assert decision.entry.vary == ("accept-language", "accept-encoding")
        assert decision.entry.variant == (("accept-language", "en"), ("accept-encoding", "gzip"))

    def test_authorization_with_public(self):
        request = make_request(headers={"authorization": "Bearer t"})
        for cc in ("public, max-age=60", "s-maxage=60", "must-revalidate, max-age=60"):
            response = make_response(headers={"cache-control": cc})
            assert isinstance(store(response, request), Store), cc


class TestDontStore:
    def test_head_and_unsafe_methods(self):
        for method in ("HEAD", "POST", "PUT"):
            request = make_request(method=method)
            decision = store(make_response(headers=CACHEABLE), request)
            assert decision == refused(NoStoreReason.METHOD, False), method

    def test_partial_content_not_stored(self):
        decision = store(make_response(206, headers=CACHEABLE))
        assert decision == refused(NoStoreReason.STATUS, False)

    def test_not_understood_status(self):
        for status in (100, 202, 400):
            decision = store(make_response(status, headers=CACHEABLE))
            assert decision == refused(NoStoreReason.STATUS, True), status

    def test_transient_or_request_specific_status_is_not_hit_for_miss(self):
        for status in (500, 502, 503, 304):
            decision = store(make_response(status, headers=CACHEABLE))
            assert decision == refused(NoStoreReason.STATUS, False), status

    def test_no_cache_without_validators(self):
        response = make_response(headers={"cache-control": "no-cache, max-age=60"})
        assert store(response) == refused(NoStoreReason.NOT_CACHEABLE, True)

    def test_response_no_store(self):
        decision = store(make_response(headers={"cache-control": "no-store, max-age=60"}))
        assert decision == refused(NoStoreReason.NO_STORE, True)

    def test_request_no_store(self):
        request = make_request(headers={"cache-control": "no-store"})
        decision = store(make_response(headers=CACHEABLE), request)
        assert decision == refused(NoStoreReason.REQUEST_NO_STORE, False)

    def test_private_in_shared_cache(self):
        decision = store(make_response(headers={"cache-control": "private, max-age=60"}))
        assert decision == refused(NoStoreReason.PRIVATE, True)

    def test_authorization_without_permission(self):
        request = make_request(headers={"authorization": "Bearer t"})
        decision = store(make_response(headers=CACHEABLE), request)
        assert decision == refused(NoStoreReason.AUTHORIZATION, False)

    def test_set_cookie_not_shared(self):
        response = make_response(headers={**CACHEABLE, "set-cookie": "id=1"})
        assert store(response) == refused(NoStoreReason.SET_COOKIE, True)

    def test_vary_star(self):
        response = make_response(headers={**CACHEABLE, "vary": "*"})
        assert store(response) == refused(NoStoreReason.VARY_STAR, True)

    def test_too_large(self):
        decision = store(make_response(headers=CACHEABLE), body_size=1001)
        assert decision == refused(NoStoreReason.TOO_LARGE, True)

    def test_no_freshness_information_for_other_status(self):
        assert store(make_response(302)) == refused(NoStoreReason.NOT_CACHEABLE, True)

    def test_never_fresh_without_validators(self):
        for headers in ({}, {"cache-control": "max-age=0"}, {"expires": "0"}):
            decision = store(make_response(headers=headers))
            assert decision == refused(NoStoreReason.NOT_CACHEABLE, True), headers

    def test_public_without_any_lifetime_or_validator(self):
        response = make_response(headers={"cache-control": "public"})
        assert store(response) == refused(NoStoreReason.NOT_CACHEABLE, True)


def test_cache_policy_re_exports_the_store_decision():
    for name in ("UNDERSTOOD_STATUSES", "DontStore", "NoStoreReason", "Store", "decide_store"):
        assert getattr(cache_policy, name) is getattr(storability, name), name
