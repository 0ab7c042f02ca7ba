"""Reusing stored responses (RFC 9111 §4): cache keys and Vary (§4.1), freshness (§4.2),
request directives (§5.2.1), response directives (§5.2.2), Authorization (§3.5),
stale-while-revalidate (RFC 5861 §3) and soft purge."""

from __future__ import annotations

from hypothesis import given, strategies as st

from cdn_core.cache_key import (
    ABSENT,
    key_of,
    normalize_host,
    normalize_target,
    primary_key,
    variant_of,
    vary_fields,
)
from cdn_core.cache_policy import (
    CacheOptions,
    Hit,
    LookupDecision,
    Miss,
    MissReason,
    OnlyIfCachedMiss,
    Revalidate,
    RevalidateReason,
    ServeStale,
    decide_lookup,
    select_variant,
)
from cdn_core.cache_status import Forward
from cdn_core.entry import StoredEntry
from cdn_core.http import Headers, RequestHead
from cdn_core.testing import EPOCH, make_entry, make_request

OPTIONS = CacheOptions()
ETAG = {"etag": '"v1"'}


def lookup(
    request: RequestHead,
    *entries: StoredEntry,
    now: float = EPOCH,
    options: CacheOptions = OPTIONS,
) -> LookupDecision:
    return decide_lookup(request, list(entries), now=now, options=options)


def fresh(**extra: str) -> StoredEntry:
    return make_entry(headers={"cache-control": "max-age=60", **ETAG, **extra})


class TestPrimaryKey:
    def test_host_lower_case_without_port(self):
        assert primary_key(make_request("/a", host="Example.COM:8080")) == "example.com/a"

    def test_ipv6_host(self):
        assert normalize_host("[::1]:8080") == "[::1]"
        assert normalize_host("[::1") == "[::1"

    def test_trailing_dot_dropped(self):
        assert normalize_host("example.com.") == "example.com"

    def test_percent_encoding_normalised(self):
        assert normalize_target("/a%2fb%7e%41?q=%3d") == "/a%2Fb~A?q=%3D"

    def test_absolute_form_reduced(self):
        assert normalize_target("http://other.example/x?y=1") == "/x?y=1"
        assert normalize_target("http://other.example") == "/"

    def test_fragment_dropped_and_slash_added(self):
        assert normalize_target("/a#frag") == "/a"
        assert normalize_target("a") == "/a"
        assert normalize_target("*") == "*"

    def test_query_kept(self):
        assert key_of("h", "/p?b=2&a=1") == "h/p?b=2&a=1"

    @given(st.text(max_size=30), st.text(max_size=30))
    def test_normalisation_is_idempotent(self, host, target):
        once_host, once_target = normalize_host(host), normalize_target(target)
        assert normalize_host(once_host) == once_host
        assert normalize_target(once_target) == once_target


class TestVaryKey:
    def test_no_vary(self):
        assert vary_fields(Headers()) == ()

    def test_fields_lower_cased_and_deduplicated(self):
        headers = Headers(
            [("vary", "Accept-Language, accept-encoding"), ("vary", "ACCEPT-language")]
        )
        assert vary_fields(headers) == ("accept-language", "accept-encoding")

    def test_star(self):
        assert vary_fields(Headers({"vary": "Accept, *"})) is None

    def test_selecting_values_normalised(self):
        request = Headers([("accept-encoding", "gzip ,  br"), ("accept-encoding", "zstd")])
        assert variant_of(request, ["accept-encoding"]) == (("accept-encoding", "gzip,br,zstd"),)

    def test_absent_differs_from_empty(self):
        assert variant_of(Headers(), ["accept"]) == (("accept", ABSENT),)
        assert variant_of(Headers({"accept": ""}), ["accept"]) == (("accept", ""),)


class TestLookupHit:
    def test_fresh_entry_is_hit_with_age(self):
        decision = lookup(make_request(), fresh(), now=EPOCH + 10)
        assert isinstance(decision, Hit)
        assert decision.age_s == 10 and decision.ttl_s == 50

    def test_head_matches_stored_get(self):
        assert isinstance(lookup(make_request(method="HEAD"), fresh()), Hit)

    def test_most_recent_matching_variant_wins(self):
        older = make_entry(headers={"cache-control": "max-age=60"}, response_time=EPOCH - 5)
        newer = make_entry(headers={"cache-control": "max-age=60"}, response_time=EPOCH - 1)
        decision = lookup(make_request(), older, newer)
        assert isinstance(decision, Hit) and decision.entry is newer

    def test_vary_selects_variant(self):
        vary = {"cache-control": "max-age=60", "vary": "Accept-Language"}
        en = make_entry(request=make_request(headers={"accept-language": "en"}), headers=vary)
        fr = make_entry(request=make_request(headers={"accept-language": "fr"}), headers=vary)
        decision = lookup(make_request(headers={"Accept-Language": "fr"}), en, fr)
        assert isinstance(decision, Hit) and decision.entry is fr
        assert select_variant(make_request(headers={"accept-language": "de"}), [en, fr]) is None

    def test_request_max_age_satisfied(self):
        request = make_request(headers={"cache-control": "max-age=30"})
        assert isinstance(lookup(request, fresh(), now=EPOCH + 20), Hit)

    def test_min_fresh_satisfied(self):
        request = make_request(headers={"cache-control": "min-fresh=10"})
        assert isinstance(lookup(request, fresh(), now=EPOCH + 20), Hit)

    def test_authorization_with_public_entry(self):
        entry = make_entry(headers={"cache-control": "public, max-age=60"})
        request = make_request(headers={"authorization": "Bearer x"})
        assert isinstance(lookup(request, entry), Hit)

    def test_authorization_allowed_by_private_cache(self):
        request = make_request(headers={"authorization": "Bearer x"})
        assert isinstance(lookup(request, fresh(), options=CacheOptions(shared=False)), Hit)

    def test_only_if_cached_with_fresh_entry(self):
        request = make_request(headers={"cache-control": "only-if-cached"})
        assert isinstance(lookup(request, fresh()), Hit)

    def test_huge_age_is_capped(self):
        entry = make_entry(headers={"cache-control": "max-age=10", "age": "2147483647"})
        request = make_request(headers={"cache-control": "max-stale"})
        decision = lookup(request, entry, now=EPOCH + 10)
        assert isinstance(decision, ServeStale) and decision.age_s == 2_147_483_648


class TestLookupMiss:
    def test_no_entry(self):
        assert lookup(make_request()) == Miss(reason=MissReason.NO_ENTRY)

    def test_vary_mismatch(self):
        entry = make_entry(
            request=make_request(headers={"accept-language": "en"}),
            headers={"cache-control": "max-age=60", "vary": "accept-language"},
        )
        decision = lookup(make_request(headers={"accept-language": "fr"}), entry)
        assert decision == Miss(reason=MissReason.VARY_MISMATCH)

    def test_unsafe_method_not_looked_up(self):
        assert lookup(make_request(method="POST"), fresh()) == Miss(reason=MissReason.METHOD)

    def test_authorization_without_permission(self):
        request = make_request(headers={"authorization": "Basic eA=="})
        assert lookup(request, fresh()) == Miss(reason=MissReason.AUTHORIZATION)

    def test_stale_without_validators(self):
        entry = make_entry(headers={"cache-control": "max-age=1"})
        assert lookup(make_request(), entry, now=EPOCH + 5) == Miss(reason=MissReason.STALE)

    def test_request_no_cache_without_validators(self):
        entry = make_entry(headers={"cache-control": "max-age=60"})
        request = make_request(headers={"cache-control": "no-cache"})
        assert lookup(request, entry) == Miss(reason=MissReason.REQUEST)

    def test_response_no_cache_without_validators(self):
        entry = make_entry(headers={"cache-control": "no-cache, max-age=60"})
        assert lookup(make_request(), entry) == Miss(reason=MissReason.STALE)

    def test_reasons_map_to_cache_status_forward(self):
        assert MissReason.NO_ENTRY.forward is Forward.URI_MISS
        assert MissReason.VARY_MISMATCH.forward is Forward.VARY_MISS
        assert MissReason.AUTHORIZATION.forward is Forward.BYPASS
        assert MissReason.METHOD.forward is Forward.METHOD
        assert MissReason.REQUEST.forward is Forward.REQUEST
        assert MissReason.STALE.forward is Forward.STALE


class TestLookupRevalidate:
    def test_stale_entry_with_etag(self):
        decision = lookup(make_request(), fresh(), now=EPOCH + 61)
        assert isinstance(decision, Revalidate)
        assert decision.reason is RevalidateReason.STALE
        assert decision.conditional == Headers({"if-none-match": '"v1"'})

    def test_request_no_cache(self):
        request = make_request(headers={"cache-control": "no-cache"})
        decision = lookup(request, fresh())
        assert isinstance(decision, Revalidate) and decision.reason is RevalidateReason.REQUEST

    def test_pragma_no_cache(self):
        decision = lookup(make_request(headers={"pragma": "no-cache"}), fresh())
        assert isinstance(decision, Revalidate) and decision.reason is RevalidateReason.REQUEST

    def test_request_max_age_exceeded(self):
        request = make_request(headers={"cache-control": "max-age=0"})
        decision = lookup(request, fresh(), now=EPOCH + 1)
        assert isinstance(decision, Revalidate) and decision.reason is RevalidateReason.REQUEST

    def test_min_fresh_not_met(self):
        request = make_request(headers={"cache-control": "min-fresh=30"})
        decision = lookup(request, fresh(), now=EPOCH + 40)
        assert isinstance(decision, Revalidate) and decision.reason is RevalidateReason.REQUEST

    def test_response_no_cache_always_validates(self):
        entry = make_entry(headers={"cache-control": "no-cache, max-age=60", **ETAG})
        decision = lookup(make_request(), entry)
        assert isinstance(decision, Revalidate) and decision.reason is RevalidateReason.NO_CACHE

    def test_qualified_no_cache_treated_as_no_cache(self):
        entry = make_entry(headers={"cache-control": 'no-cache="set-cookie", max-age=60', **ETAG})
        decision = lookup(make_request(), entry)
        assert isinstance(decision, Revalidate) and decision.reason is RevalidateReason.NO_CACHE

    def test_soft_purged_entry_is_stale(self):
        entry = fresh().soft_purged(now=EPOCH + 1)
        decision = lookup(make_request(), entry, now=EPOCH + 2)
        assert isinstance(decision, Revalidate) and decision.reason is RevalidateReason.STALE

    def test_revalidate_reason_forward(self):
        assert RevalidateReason.REQUEST.forward is Forward.REQUEST
        assert RevalidateReason.STALE.forward is Forward.STALE
        assert RevalidateReason.NO_CACHE.forward is Forward.STALE


class TestLookupServeStale:
    def swr(self, extra: str = "") -> StoredEntry:
        return make_entry(
            headers={"cache-control": f"max-age=10, stale-while-revalidate=30{extra}"}
        )

    def test_within_stale_while_revalidate(self):
        decision = lookup(make_request(), self.swr(), now=EPOCH + 25)
        assert isinstance(decision, ServeStale)
        assert decision.revalidate_in_background and decision.age_s == 25
        assert decision.ttl_s == -15

    def test_beyond_stale_while_revalidate(self):
        assert lookup(make_request(), self.swr(), now=EPOCH + 41) == Miss(reason=MissReason.STALE)

    def test_soft_purged_entry_served_by_swr(self):
        entry = make_entry(
            headers={"cache-control": "max-age=600, stale-while-revalidate=30"}, stale_at=EPOCH
        )
        decision = lookup(make_request(), entry, now=EPOCH + 5)
        assert isinstance(decision, ServeStale) and decision.revalidate_in_background

    def test_must_revalidate_forbids_swr(self):
        decision = lookup(make_request(), self.swr(", must-revalidate"), now=EPOCH + 20)
        assert decision == Miss(reason=MissReason.STALE)

    def test_proxy_revalidate_forbids_swr_in_shared_cache(self):
        entry = self.swr(", proxy-revalidate")
        assert isinstance(lookup(make_request(), entry, now=EPOCH + 20), Miss)
        private = CacheOptions(shared=False)
        assert isinstance(
            lookup(make_request(), entry, now=EPOCH + 20, options=private), ServeStale
        )

    def test_s_maxage_still_allows_origin_swr(self):
        entry = make_entry(headers={"cache-control": "s-maxage=10, stale-while-revalidate=30"})
        assert isinstance(lookup(make_request(), entry, now=EPOCH + 20), ServeStale)

    def test_client_max_stale(self):
        entry = make_entry(headers={"cache-control": "max-age=10"})
        request = make_request(headers={"cache-control": "max-stale=20"})
        decision = lookup(request, entry, now=EPOCH + 25)
        assert isinstance(decision, ServeStale) and not decision.revalidate_in_background
        assert lookup(request, entry, now=EPOCH + 31) == Miss(reason=MissReason.STALE)

    def test_max_stale_without_value(self):
        entry = make_entry(headers={"cache-control": "max-age=10"})
        request = make_request(headers={"cache-control": "max-stale"})
        assert isinstance(lookup(request, entry, now=EPOCH + 10**6), ServeStale)

    def test_max_stale_not_over_must_revalidate_or_s_maxage(self):
        request = make_request(headers={"cache-control": "max-stale"})
        for cc in ("max-age=10, must-revalidate", "s-maxage=10"):
            entry = make_entry(headers={"cache-control": cc})
            assert isinstance(lookup(request, entry, now=EPOCH + 20), Miss), cc


class TestLookupOnlyIfCached:
    request = make_request(headers={"cache-control": "only-if-cached"})

    def test_no_entry(self):
        assert lookup(self.request) == OnlyIfCachedMiss()

    def test_stale_entry(self):
        assert lookup(self.request, fresh(), now=EPOCH + 100) == OnlyIfCachedMiss()

    def test_authorization(self):
        request = make_request(headers={"cache-control": "only-if-cached", "authorization": "x"})
        assert lookup(request, fresh()) == OnlyIfCachedMiss()

    def test_stale_but_swr_served(self):
        entry = make_entry(headers={"cache-control": "max-age=1, stale-while-revalidate=60"})
        assert isinstance(lookup(self.request, entry, now=EPOCH + 5), ServeStale)
