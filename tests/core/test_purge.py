"""cdn_core.purge: canonical rules from operator input and matching against cached objects."""

from __future__ import annotations

import pytest

from cdn_core.errors import PurgeError
from cdn_core.purge import PurgeKind, PurgeRule, from_wire, make_rule, matches, to_wire


def rule(kind: str, *values: str, soft: bool = False) -> PurgeRule:
    return make_rule(kind, list(values), soft=soft, id="p1")


class TestMakeRule:
    def test_url_values_become_host_plus_target(self) -> None:
        made = rule("url", "http://WWW.Example.test:8080/a/b?x=1", "https://www.example.test")
        assert made.values == ("www.example.test/a/b?x=1", "www.example.test/")
        assert made.kind is PurgeKind.URL

    def test_all_takes_host_names(self) -> None:
        assert rule("all", "WWW.Example.TEST.").values == ("www.example.test",)

    @pytest.mark.parametrize(
        ("kind", "values", "why"),
        [
            ("bogus", ["x"], "unknown purge kind"),
            ("url", [], "at least one value"),
            ("url", ["/relative/path"], "absolute http"),
            ("url", ["ftp://host/x"], "absolute http"),
            ("url", ["http://host:99999/x"], "bad URL"),
            ("prefix", ["http://bad host/x"], "bad host name"),
            ("tag", ["has space"], "bad surrogate key"),
            ("tag", [""], "non-empty string"),
            ("all", ["not/a/host"], "bad host name"),
        ],
    )
    def test_bad_input_is_a_clear_error(self, kind: str, values: list[str], why: str) -> None:
        with pytest.raises(PurgeError, match=why):
            make_rule(kind, values, soft=False, id="p1")

    def test_too_many_values(self) -> None:
        with pytest.raises(PurgeError, match="at most"):
            make_rule("tag", [f"t{i}" for i in range(1001)], soft=False, id="p1")

    def test_bad_id(self) -> None:
        with pytest.raises(PurgeError, match="bad purge id"):
            make_rule("tag", ["t"], soft=False, id="has space")


class TestMatches:
    def test_url_matches_exactly_including_query(self) -> None:
        r = rule("url", "http://h.test/a?x=1")
        assert matches(r, host="h.test", target="/a?x=1")
        assert not matches(r, host="h.test", target="/a")
        assert not matches(r, host="other.test", target="/a?x=1")

    def test_prefix_matches_everything_under_it(self) -> None:
        r = rule("prefix", "http://h.test/img/")
        assert matches(r, host="h.test", target="/img/a.png")
        assert matches(r, host="h.test", target="/img/")
        assert not matches(r, host="h.test", target="/img")
        assert not matches(r, host="g.test", target="/img/a.png")

    def test_tag_matches_any_surrogate_key(self) -> None:
        r = rule("tag", "product-1", "product-2")
        assert matches(r, host="h.test", target="/x", tags=("a", "product-2"))
        assert not matches(r, host="h.test", target="/x", tags=("product-3",))
        assert not matches(r, host="h.test", target="/x")

    def test_all_matches_the_host(self) -> None:
        r = rule("all", "h.test")
        assert matches(r, host="h.test", target="/anything")
        assert not matches(r, host="g.test", target="/anything")


class TestWire:
    def test_round_trip(self) -> None:
        r = rule("prefix", "http://h.test/a", soft=True)
        assert from_wire(to_wire(r)) == r

    @pytest.mark.parametrize(
        "data",
        [
            {},
            {"id": "p", "kind": "url", "values": "x", "soft": False},
            {"id": "p", "kind": "nope", "values": ["x"], "soft": False},
            {"id": "p", "kind": 3, "values": ["x"], "soft": False},
            {"id": "p", "kind": "tag", "values": [], "soft": False},
            {"id": "p", "kind": "tag", "values": [1], "soft": False},
            {"id": "p", "kind": "tag", "values": ["x"], "soft": "yes"},
        ],
    )
    def test_malformed_is_a_purge_error(self, data: dict[str, object]) -> None:
        with pytest.raises(PurgeError):
            from_wire(data)
