"""The overlay authentication tag (cdn_core.overlay_auth): HMAC-SHA256, skew, replay, tampering."""

from __future__ import annotations

from hypothesis import given, strategies as st

from cdn_core.http import Headers
from cdn_core.overlay_auth import (
    AUTH_HEADER,
    NODE_HEADER,
    ROUTE_HEADER,
    TIME_HEADER,
    AuthFailure,
    Invalid,
    Valid,
    parse_route,
    sign,
    verify,
)

SECRET = b"0123456789abcdef-cluster-secret"
NOW = 1_800_000_000.0
REQUEST = {"method": "GET", "host": "www.cdn.test", "target": "/a?b=1"}


def signed(**overrides: object) -> Headers:
    args: dict[str, object] = {**REQUEST, "node": "edge-1", "route": ("shield-1",), "now": NOW}
    args.update(overrides)
    return sign(SECRET, **args)  # type: ignore[arg-type]


def check(
    headers: Headers, *, now: float = NOW, secret: bytes = SECRET, **request: str
) -> Valid | Invalid:
    fields = {**REQUEST, **request}
    return verify(
        secret,
        headers,
        method=fields["method"],
        host=fields["host"],
        target=fields["target"],
        now=now,
        max_skew_s=30.0,
        known_nodes={"edge-1", "shield-1"},
    )


class TestValid:
    def test_round_trip(self) -> None:
        assert check(signed()) == Valid(node="edge-1", route=("shield-1",), timestamp=NOW)

    def test_within_skew_both_ways(self) -> None:
        assert isinstance(check(signed(), now=NOW + 29.0), Valid)
        assert isinstance(check(signed(), now=NOW - 29.0), Valid)

    def test_host_and_method_case_do_not_matter(self) -> None:
        assert isinstance(check(signed(), host="WWW.cdn.test", method="get"), Valid)

    def test_empty_route(self) -> None:
        verdict = check(signed(route=()))
        assert isinstance(verdict, Valid) and verdict.route == ()

    def test_unknown_nodes_allowed_without_a_list(self) -> None:
        headers = signed(node="stranger")
        verdict = verify(SECRET, headers, **REQUEST, now=NOW, max_skew_s=30.0)
        assert isinstance(verdict, Valid)


class TestInvalid:
    def test_missing(self) -> None:
        assert check(Headers()) == Invalid(reason=AuthFailure.MISSING)
        assert check(signed().without(AUTH_HEADER)) == Invalid(reason=AuthFailure.MISSING)

    def test_replay_of_an_old_timestamp(self) -> None:
        assert check(signed(), now=NOW + 31.0) == Invalid(reason=AuthFailure.EXPIRED)

    def test_timestamp_from_the_future(self) -> None:
        assert check(signed(), now=NOW - 31.0) == Invalid(reason=AuthFailure.FUTURE)

    def test_wrong_secret(self) -> None:
        assert check(signed(), secret=b"another-secret-of-16+") == Invalid(
            reason=AuthFailure.BAD_TAG
        )

    def test_unknown_node(self) -> None:
        assert check(signed(node="mallory")) == Invalid(reason=AuthFailure.UNKNOWN_NODE)

    def test_tampered_target_method_host(self) -> None:
        bad = Invalid(reason=AuthFailure.BAD_TAG)
        assert check(signed(), target="/other") == bad
        assert check(signed(), method="POST") == bad
        assert check(signed(), host="evil.test") == bad

    def test_tampered_route_node_time(self) -> None:
        headers = signed()
        for name, value in (
            (ROUTE_HEADER, "shield-2"),
            (NODE_HEADER, "shield-1"),
            (TIME_HEADER, f"{NOW + 1:.3f}"),
        ):
            assert check(headers.with_set(name, value)) == Invalid(reason=AuthFailure.BAD_TAG)

    def test_malformed_fields(self) -> None:
        headers = signed()
        tag = headers.get(AUTH_HEADER)
        assert tag is not None
        for name, value in (
            (TIME_HEADER, "yesterday"),
            (TIME_HEADER, "nan"),
            (TIME_HEADER, "inf"),
            (AUTH_HEADER, "v1=" + tag[3:]),  # the version that signed the route only
            (AUTH_HEADER, tag[3:]),
            (AUTH_HEADER, tag[:-1]),
        ):
            assert check(headers.with_set(name, value)) == Invalid(reason=AuthFailure.MALFORMED)

    def test_non_hex_tag_of_right_length(self) -> None:
        headers = signed().with_set(AUTH_HEADER, "v2=" + "zé" * 32)
        assert check(headers) == Invalid(reason=AuthFailure.BAD_TAG)


FORWARDED = Headers(
    [
        ("x-forwarded-for", "127.10.0.9"),
        ("x-forwarded-proto", "http"),
        ("accept", "text/html"),
        ("accept", "image/png"),
        ("via", "1.1 edge-1.ovl"),
        ("cdn-loop", "edge-1.ovl"),
    ]
)


def received(fields: Headers) -> Headers:
    """What the next hop receives: the forwarded fields, then the tag over them."""
    return fields.merged(signed(headers=FORWARDED))


class TestSignedFields:
    """The tag covers every end-to-end field (a replay with a field added, changed or removed
    is refused), but not what each hop computes itself: hop-by-hop fields, framing, Host."""

    def test_the_fields_as_sent_verify(self) -> None:
        assert isinstance(check(received(FORWARDED)), Valid)

    def test_an_added_field_is_refused(self) -> None:
        extra = FORWARDED.with_added("x-forwarded-host", "evil.example")
        assert check(received(extra)) == Invalid(reason=AuthFailure.BAD_TAG)

    def test_a_changed_or_removed_field_is_refused(self) -> None:
        bad = Invalid(reason=AuthFailure.BAD_TAG)
        assert check(received(FORWARDED.with_set("x-forwarded-for", "203.0.113.1"))) == bad
        assert check(received(FORWARDED.without("x-forwarded-proto"))) == bad
        swapped = Headers([("accept", "image/png"), ("accept", "text/html")])
        assert check(received(FORWARDED.without("accept").merged(swapped))) == bad

    def test_each_hops_own_fields_are_not_covered(self) -> None:
        own = (
            FORWARDED.with_added("host", "www.cdn.test")
            .with_added("content-length", "0")
            .with_added("connection", "keep-alive, x-hop")
            .with_added("x-hop", "1")
            .with_added("keep-alive", "timeout=5")
        )
        assert isinstance(check(received(own)), Valid)

    def test_outer_whitespace_of_values_does_not_matter(self) -> None:
        padded = Headers((k, f"  {v} " if k == "x-forwarded-proto" else v) for k, v in FORWARDED)
        assert isinstance(check(received(padded)), Valid)


@given(
    fields=st.lists(
        st.tuples(st.from_regex(r"[a-z][a-z0-9-]{0,12}", fullmatch=True), st.text(max_size=20)),
        max_size=6,
    )
)
def test_any_signed_fields_verify_as_received(fields: list[tuple[str, str]]) -> None:
    headers = Headers(fields)
    tag = sign(SECRET, **REQUEST, node="edge-1", route=("shield-1",), headers=headers, now=NOW)
    verdict = check(headers.merged(tag))
    assert isinstance(verdict, Valid)


@given(
    method=st.sampled_from(["GET", "HEAD", "POST"]),
    target=st.text(min_size=1, max_size=60),
    node=st.from_regex(r"[a-z][a-z0-9-]{0,15}", fullmatch=True),
    route=st.lists(st.from_regex(r"[a-z][a-z0-9-]{0,15}", fullmatch=True), max_size=3),
    skew=st.floats(-30, 30),
)
def test_any_signed_request_verifies(
    method: str, target: str, node: str, route: list[str], skew: float
) -> None:
    headers = sign(
        SECRET, method=method, host="h.test", target=target, node=node, route=tuple(route), now=NOW
    )
    verdict = verify(
        SECRET,
        headers,
        method=method,
        host="h.test",
        target=target,
        now=NOW + skew,
        max_skew_s=30.0,
    )
    assert verdict == Valid(node=node, route=tuple(route), timestamp=NOW)


def test_parse_route() -> None:
    assert parse_route(None) == ()
    assert parse_route("") == ()
    assert parse_route(" a , ,b ") == ("a", "b")
