"""CacheStore: variants per key, the byte bound and evictions, invalidation, purges."""

from __future__ import annotations

from typing import Any

import pytest

from cdn_core.entry import StoredEntry
from cdn_core.eviction import LruPolicy
from cdn_core.purge import PurgeKind, PurgeRule
from cdn_core.testing import EPOCH, make_entry, make_request
from edge.store import CacheStore, object_size


def entry(target: str = "/a", *, host: str = "www.cdn.test", **kwargs: Any) -> StoredEntry:
    return make_entry(request=make_request(target, host=host, **kwargs.pop("req", {})), **kwargs)


def rule(kind: PurgeKind, *values: str, soft: bool = False) -> PurgeRule:
    return PurgeRule(id="p1", kind=kind, values=values, soft=soft)


class TestVariants:
    def test_variants_of_one_key_live_side_by_side(self) -> None:
        store = CacheStore(1 << 20)
        en = entry(headers={"vary": "accept-language"}, req={"headers": {"accept-language": "en"}})
        fr = entry(headers={"vary": "accept-language"}, req={"headers": {"accept-language": "fr"}})
        assert store.put(en, b"hello") and store.put(fr, b"bonjour")
        assert len(store.candidates(en.key)) == 2
        assert store.body(en) == b"hello"
        assert store.body(fr) == b"bonjour"
        assert len(store) == 2

    def test_put_of_the_same_variant_replaces_it(self) -> None:
        store = CacheStore(1 << 20)
        store.put(entry(), b"old")
        store.put(entry(), b"new body")
        (stored,) = store.candidates(entry().key)
        assert store.body(stored) == b"new body"
        assert store.used_bytes == object_size(stored, b"new body")

    def test_replace_head_keeps_the_body(self) -> None:
        store = CacheStore(1 << 20)
        old = entry(headers={"etag": '"1"'})
        store.put(old, b"body")
        new = entry(headers={"etag": '"1"', "cache-control": "max-age=9"})
        assert store.replace_head(new)
        (stored,) = store.candidates(old.key)
        assert stored.response.headers.get("cache-control") == "max-age=9"
        assert store.body(stored) == b"body"
        assert not store.replace_head(entry("/missing"))


class TestBounds:
    def test_bytes_stay_within_capacity_and_evictions_are_counted(self) -> None:
        evicted: list[int] = []
        store = CacheStore(20_000, policy=LruPolicy(20_000), on_evict=evicted.append)
        for i in range(10):
            store.put(entry(f"/o{i}"), b"x" * 4000)
            assert store.used_bytes <= 20_000
        assert store.evictions == sum(evicted) > 0
        assert len(store) == len([i for i in range(10) if store.candidates(f"www.cdn.test/o{i}")])

    def test_object_larger_than_the_cache_is_not_admitted(self) -> None:
        store = CacheStore(10_000)
        assert not store.put(entry(), b"x" * 20_000)
        assert store.candidates(entry().key) == ()


class TestInvalidationAndPurge:
    def test_invalidate_removes_every_variant(self) -> None:
        store = CacheStore(1 << 20)
        store.put(entry(headers={"vary": "x"}, req={"headers": {"x": "1"}}), b"1")
        store.put(entry(headers={"vary": "x"}, req={"headers": {"x": "2"}}), b"2")
        assert store.invalidate("www.cdn.test/a") == 2
        assert len(store) == 0 and store.used_bytes == 0

    @pytest.mark.parametrize(
        ("purge", "left"),
        [
            (rule(PurgeKind.URL, "www.cdn.test/a"), {"/b", "/img/c"}),
            (rule(PurgeKind.PREFIX, "www.cdn.test/img/"), {"/a", "/b"}),
            (rule(PurgeKind.TAG, "blue"), {"/b"}),
            (rule(PurgeKind.ALL, "www.cdn.test"), set()),
        ],
    )
    def test_hard_purges_remove_what_they_match(self, purge: PurgeRule, left: set[str]) -> None:
        store = CacheStore(1 << 20)
        store.put(entry("/a", headers={"surrogate-key": "blue"}), b"a")
        store.put(entry("/b"), b"b")
        store.put(entry("/img/c", headers={"cache-tag": "blue, green"}), b"c")
        store.purge(purge, now=EPOCH)
        kept = {t for t in ("/a", "/b", "/img/c") if store.candidates(f"www.cdn.test{t}")}
        assert kept == left
        assert len(store) == len(left)

    def test_soft_purge_marks_stale_and_keeps_the_body(self) -> None:
        store = CacheStore(1 << 20)
        store.put(entry("/a"), b"a")
        assert store.purge(rule(PurgeKind.URL, "www.cdn.test/a", soft=True), now=EPOCH + 5) == 1
        (stored,) = store.candidates("www.cdn.test/a")
        assert stored.stale_at == EPOCH + 5
        assert store.body(stored) == b"a"

    def test_tag_index_follows_replacements(self) -> None:
        store = CacheStore(1 << 20)
        store.put(entry("/a", headers={"surrogate-key": "old"}), b"a")
        store.put(entry("/a", headers={"surrogate-key": "new"}), b"a")
        assert store.purge(rule(PurgeKind.TAG, "old"), now=EPOCH) == 0
        assert store.purge(rule(PurgeKind.TAG, "new"), now=EPOCH) == 1

    def test_drop_all(self) -> None:
        store = CacheStore(1 << 20)
        for i in range(5):
            store.put(entry(f"/{i}"), b"x")
        assert store.drop_all() == 5
        assert len(store) == 0 and store.used_bytes == 0
