"""Invalidation (RFC 9111 §4.4): unsafe methods with a non-error response invalidate the
target URI and same-host Location / Content-Location; soft purge marks an entry stale."""

from __future__ import annotations

from cdn_core.cache_policy import invalidated_keys
from cdn_core.testing import EPOCH, make_entry, make_request, make_response


def keys(
    method: str = "POST",
    status: int = 200,
    target: str = "/items",
    headers: dict[str, str] | None = None,
) -> tuple[str, ...]:
    request = make_request(target, method=method)
    return invalidated_keys(request, make_response(status, headers=headers))


class TestInvalidates:
    def test_unsafe_methods_invalidate_target(self):
        for method in ("POST", "PUT", "DELETE", "PATCH"):
            assert keys(method) == ("example.com/items",), method

    def test_redirect_status_counts_as_non_error(self):
        assert keys(status=303) == ("example.com/items",)

    def test_relative_location_and_content_location(self):
        headers = {"location": "/items/7?x=1", "content-location": "items/8"}
        assert keys(status=201, headers=headers) == (
            "example.com/items",
            "example.com/items/7?x=1",
            "example.com/items/8",
        )

    def test_absolute_location_on_same_host_any_port(self):
        headers = {"location": "http://EXAMPLE.com:8080/a"}
        assert keys(headers=headers) == ("example.com/items", "example.com/a")

    def test_location_without_path(self):
        assert keys(headers={"location": "http://example.com"}) == (
            "example.com/items",
            "example.com/",
        )

    def test_duplicates_removed(self):
        assert keys(headers={"location": "/items", "content-location": "/items"}) == (
            "example.com/items",
        )

    def test_asterisk_target(self):
        assert keys("OPTIONS", target="*") == ()
        request = make_request("*", method="POST")
        response = make_response(headers={"location": "/x"})
        assert invalidated_keys(request, response) == ("example.com*", "example.com/x")


class TestDoesNotInvalidate:
    def test_safe_methods(self):
        for method in ("GET", "HEAD", "OPTIONS", "TRACE"):
            assert keys(method) == (), method

    def test_error_responses(self):
        for status in (400, 404, 500, 503, 100):
            assert keys(status=status) == (), status

    def test_other_host_locations_ignored(self):
        headers = {"location": "http://other.example/a", "content-location": "//evil.example/b"}
        assert keys(headers=headers) == ("example.com/items",)

    def test_location_without_host_ignored(self):
        assert keys(headers={"location": "mailto:x@example.com"}) == ("example.com/items",)


class TestSoftPurge:
    def test_soft_purge_sets_stale_at(self):
        entry = make_entry()
        purged = entry.soft_purged(now=EPOCH + 5)
        assert purged.stale_at == EPOCH + 5
        assert purged.is_soft_purged(now=EPOCH + 5)
        assert not purged.is_soft_purged(now=EPOCH + 4)
        assert not entry.is_soft_purged(now=EPOCH + 100)

    def test_earlier_soft_purge_kept(self):
        purged = make_entry().soft_purged(now=EPOCH)
        assert purged.soft_purged(now=EPOCH + 10) is purged

    def test_future_soft_purge_brought_forward(self):
        entry = make_entry(stale_at=EPOCH + 100)
        assert entry.soft_purged(now=EPOCH).stale_at == EPOCH
