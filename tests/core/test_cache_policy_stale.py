"""Serving stale content when upstream fails (RFC 5861 §4 stale-if-error, RFC 9111 §4.2.4)."""

from __future__ import annotations

from cdn_core.cache_policy import CacheOptions, can_serve_stale_on_error
from cdn_core.entry import StoredEntry
from cdn_core.testing import EPOCH, make_entry, make_request


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
