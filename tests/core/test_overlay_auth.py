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
            (AUTH_HEADER, "v2=" + tag[3:]),
            (AUTH_HEADER, tag[3:]),
            (AUTH_HEADER, tag[:-1]),
        ):
            assert check(headers.with_set(name, value)) == Invalid(reason=AuthFailure.MALFORMED)

    def test_non_hex_tag_of_right_length(self) -> None:
        headers = signed().with_set(AUTH_HEADER, "v1=" + "zé" * 32)
        assert check(headers) == Invalid(reason=AuthFailure.BAD_TAG)


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
