"""Overlay hops (cdn_core.hop): Via and CDN-Loop (RFC 8586), loops, hop limit, unwrapping."""

from __future__ import annotations

from hypothesis import given, strategies as st

from cdn_core.hop import (
    HopOk,
    HopRefusal,
    HopRefused,
    cdn_id,
    cdn_loop_ids,
    check_client_loop,
    check_hop,
    forward_headers,
    is_overlay_header,
    strip_overlay_headers,
)
from cdn_core.http import Headers
from cdn_core.overlay_auth import sign

CLIENT = Headers(
    [
        ("accept", "text/html"),
        ("connection", "keep-alive, x-private"),
        ("x-private", "drop me"),
        ("x-overlay-route", "spoofed"),
        ("cookie", "a=b"),
    ]
)


def through(headers: Headers, *nodes: str) -> Headers:
    for node in nodes:
        headers = forward_headers(headers, cluster="demo", node=node)
    return headers


class TestForward:
    def test_edge_adds_via_loop_and_forwarded_for(self) -> None:
        out = forward_headers(CLIENT, cluster="demo", node="edge-1", client_ip="127.10.0.5")
        assert out.get("via") == "1.1 edge-1.demo"
        assert out.get("cdn-loop") == "edge-1.demo"
        assert out.get("x-forwarded-for") == "127.10.0.5"
        assert "x-private" not in out and "connection" not in out
        assert "x-overlay-route" not in out
        assert out.get("cookie") == "a=b"

    def test_hops_accumulate(self) -> None:
        out = through(CLIENT.with_set("cdn-loop", "other-cdn; v=1"), "edge-1", "relay", "shield")
        assert cdn_loop_ids(out) == ("other-cdn", "edge-1.demo", "relay.demo", "shield.demo")
        assert out.get("via") == "1.1 edge-1.demo, 1.1 relay.demo, 1.1 shield.demo"

    def test_forwarded_for_is_appended(self) -> None:
        out = forward_headers(
            CLIENT.with_set("x-forwarded-for", "10.0.0.1"),
            cluster="demo",
            node="e",
            client_ip="127.0.0.9",
        )
        assert out.get("x-forwarded-for") == "10.0.0.1, 127.0.0.9"


class TestCheck:
    def test_fresh_request_passes(self) -> None:
        assert check_hop(CLIENT, cluster="demo", node="shield", hop_limit=4) == HopOk(hops=0)

    def test_counts_only_this_clusters_hops(self) -> None:
        headers = through(CLIENT.with_set("cdn-loop", "x.other, y"), "edge-1")
        assert check_hop(headers, cluster="demo", node="shield", hop_limit=4) == HopOk(hops=1)

    def test_loop_is_refused_with_508(self) -> None:
        headers = through(CLIENT, "edge-1", "shield", "relay")
        verdict = check_hop(headers, cluster="demo", node="shield", hop_limit=8)
        assert verdict == HopRefused(reason=HopRefusal.LOOP)
        assert verdict.status == 508

    def test_loop_detection_ignores_case_and_parameters(self) -> None:
        headers = CLIENT.with_set("cdn-loop", "foo, Shield.DEMO; x=1")
        assert isinstance(
            check_hop(headers, cluster="demo", node="shield", hop_limit=8), HopRefused
        )

    def test_hop_limit(self) -> None:
        headers = through(CLIENT, "a", "b")
        assert check_hop(headers, cluster="demo", node="c", hop_limit=2) == HopRefused(
            reason=HopRefusal.HOP_LIMIT
        )
        assert check_hop(headers, cluster="demo", node="c", hop_limit=3) == HopOk(hops=2)

    def test_client_loop_through_the_origin(self) -> None:
        clean = strip_overlay_headers(through(CLIENT, "edge-1"), cluster="demo")
        assert check_client_loop(clean, cluster="demo") == HopRefused(reason=HopRefusal.LOOP)
        assert check_client_loop(CLIENT, cluster="demo") == HopOk(hops=0)


class TestStrip:
    def test_origin_sees_no_overlay_field_nor_node_name(self) -> None:
        wrapped = forward_headers(CLIENT, cluster="demo", node="edge-1", client_ip="127.10.0.5")
        wrapped = through(wrapped, "shield-1").merged(
            sign(b"s" * 16, method="GET", host="h", target="/", node="shield-1", now=1.0)
        )
        clean = strip_overlay_headers(wrapped, cluster="demo")
        assert not any(is_overlay_header(name) for name in clean.names())
        assert clean.get("via") == "1.1 demo"
        assert clean.get("cdn-loop") == "demo"
        assert clean.get("x-forwarded-for") == "127.10.0.5"
        assert "edge-1" not in repr(clean) and "shield-1" not in repr(clean)

    def test_keeps_foreign_via_and_loop_entries(self) -> None:
        headers = CLIENT.with_set("via", "1.0 fred").with_set("cdn-loop", "other; a=b")
        clean = strip_overlay_headers(through(headers, "edge-1"), cluster="demo")
        assert clean.get("via") == "1.0 fred, 1.1 demo"
        assert clean.get("cdn-loop") == "other; a=b, demo"

    def test_direct_from_an_edge_adds_forwarded_for(self) -> None:
        clean = strip_overlay_headers(CLIENT, cluster="demo", client_ip="127.10.0.5")
        assert clean.get("x-forwarded-for") == "127.10.0.5"
        assert "x-overlay-route" not in clean and "x-private" not in clean


def test_engine_via_is_not_doubled_and_node_names_are_stripped() -> None:
    engine = CLIENT.with_set("via", "1.0 proxy, 1.1 edge-1")
    out = forward_headers(engine, cluster="demo", node="edge-1")
    assert out.get("via") == "1.0 proxy, 1.1 edge-1"
    clean = strip_overlay_headers(out, cluster="demo", nodes=("edge-1", "shield-1"))
    assert clean.get("via") == "1.0 proxy, 1.1 demo"


def test_cdn_loop_ids_skip_empty_members() -> None:
    headers = Headers([("CDN-Loop", "A.demo; x=1, , b"), ("cdn-loop", ",c,")])

    assert cdn_loop_ids(headers) == ("a.demo", "b", "c")
    assert cdn_loop_ids(Headers([("cdn-loop", " , ;p=1")])) == ()


def test_cdn_id() -> None:
    assert cdn_id("demo", "edge-1") == "edge-1.demo"
    assert cdn_id("demo") == "demo"


@given(st.lists(st.from_regex(r"[a-z][a-z0-9-]{0,10}", fullmatch=True), max_size=6))
def test_strip_is_idempotent_and_clean(nodes: list[str]) -> None:
    once = strip_overlay_headers(through(CLIENT, *nodes), cluster="demo")
    assert strip_overlay_headers(once, cluster="demo") == once
    assert not any(is_overlay_header(n) for n in once.names())
