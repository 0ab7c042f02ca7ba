"""What a node forwards upstream (cdn_core.forwarding).

RFC 9112 §6 and RFC 9110 §9.3.1 (framing is computed per hop, never copied), RFC 9112 §3.2.2
(Host), RFC 9110 §7.6.1 (hop-by-hop), RFC 9110 §12.5.5 (Vary), and the unkeyed fields that
poison caches.
"""

from __future__ import annotations

from hypothesis import given, strategies as st

from cdn_core.forwarding import UNKEYED_CLIENT_FIELDS, upstream_fields, vary_with, without_framing
from cdn_core.http import Headers


def forward(headers: dict[str, str] | list[tuple[str, str]], **kwargs: object) -> Headers:
    args: dict[str, object] = {
        "host": "www.cdn.test",
        "via": "1.1 edge-1",
        "client_ip": "127.10.0.9",
        "from_user": True,
    }
    args.update(kwargs)
    return upstream_fields(Headers(headers), **args)  # type: ignore[arg-type]


class TestFraming:
    def test_client_framing_is_never_copied(self) -> None:
        sent = forward({"content-length": "62", "transfer-encoding": "chunked", "accept": "*/*"})
        assert "content-length" not in sent
        assert "transfer-encoding" not in sent
        assert sent.get("accept") == "*/*"

    def test_without_framing(self) -> None:
        fields = Headers({"Content-Length": "3", "Transfer-Encoding": "chunked", "a": "1"})
        assert without_framing(fields) == Headers({"a": "1"})

    def test_hop_by_hop_and_expect_stay_here(self) -> None:
        sent = forward(
            {"connection": "x-hop", "x-hop": "1", "keep-alive": "5", "expect": "100-continue"}
        )
        assert sent.names() == {"host", "via", "x-forwarded-for", "x-forwarded-proto"}


class TestHost:
    def test_the_matched_hostname_replaces_the_clients(self) -> None:
        sent = forward({"host": "evil.example"}, host="www.cdn.test")
        assert sent.get_all("host") == ["www.cdn.test"]

    def test_a_shield_sends_the_hops_host_too(self) -> None:
        sent = forward({"host": "www.cdn.test:8080"}, from_user=False)
        assert sent.get_all("host") == ["www.cdn.test"]


class TestUnkeyed:
    def test_every_unkeyed_field_of_a_user_is_dropped(self) -> None:
        sent = forward([(name, "evil") for name in sorted(UNKEYED_CLIENT_FIELDS)])
        assert sent.get_all("x-forwarded-for") == ["127.10.0.9"]
        assert sent.get_all("x-forwarded-proto") == ["http"]
        left = sent.names() & UNKEYED_CLIENT_FIELDS
        assert left == {"x-forwarded-for", "x-forwarded-proto"}
        assert "evil" not in repr(sent)

    def test_without_a_client_address_no_forwarded_for_is_invented(self) -> None:
        sent = forward({"x-forwarded-for": "203.0.113.9"}, client_ip=None)
        assert "x-forwarded-for" not in sent

    def test_underscored_names_are_dropped_unless_passed_by_that_name(self) -> None:
        """CGI, WSGI and PHP read X_Forwarded_Host as X-Forwarded-Host."""
        sent = forward({"x_forwarded_host": "evil", "x-custom_id": "1", "x-ok": "1"})
        assert sent.get("x-ok") == "1"
        assert "x_forwarded_host" not in sent and "x-custom_id" not in sent
        assert forward({"x-custom_id": "1"}, passed=("x-custom_id",)).get("x-custom_id") == "1"

    def test_a_passed_field_goes_through(self) -> None:
        sent = forward({"x-forwarded-host": "shop.example"}, passed=("x-forwarded-host",))
        assert sent.get("x-forwarded-host") == "shop.example"

    def test_a_shield_keeps_what_the_edge_set(self) -> None:
        edge_set = {"x-forwarded-for": "127.10.0.9", "x-forwarded-proto": "http", "via": "1.1 e"}
        sent = forward(edge_set, from_user=False, via="1.1 shield-1", client_ip="127.0.1.1")
        assert sent.get("x-forwarded-for") == "127.10.0.9"
        assert sent.get("via") == "1.1 e, 1.1 shield-1"

    def test_via_is_appended(self) -> None:
        assert forward({"via": "1.0 proxy"}).get("via") == "1.0 proxy, 1.1 edge-1"


class TestVaryWith:
    def test_adds_missing_names(self) -> None:
        headers = Headers({"vary": "Accept-Encoding"})
        assert vary_with(headers, ("x-forwarded-host",)).get("vary") == (
            "Accept-Encoding, x-forwarded-host"
        )

    def test_already_listed_any_case(self) -> None:
        headers = Headers({"vary": "X-Forwarded-Host"})
        assert vary_with(headers, ("x-forwarded-host",)) is headers

    def test_star_stays(self) -> None:
        headers = Headers({"vary": "*"})
        assert vary_with(headers, ("x-forwarded-host",)) is headers

    def test_no_vary_and_no_names(self) -> None:
        headers = Headers({"a": "1"})
        assert vary_with(headers, ()) is headers
        assert vary_with(headers, ("x-a",)).get("vary") == "x-a"


@given(
    fields=st.lists(
        st.tuples(
            st.sampled_from(
                [*sorted(UNKEYED_CLIENT_FIELDS), "content-length", "host", "accept", "x-a"]
            ),
            st.text(max_size=10),
        ),
        max_size=8,
    )
)
def test_users_never_choose_host_framing_or_unkeyed_fields(fields: list[tuple[str, str]]) -> None:
    sent = forward(fields)
    assert sent.get_all("host") == ["www.cdn.test"]
    assert "content-length" not in sent
    assert sent.get_all("x-forwarded-for") == ["127.10.0.9"]
    for name in UNKEYED_CLIENT_FIELDS - {"x-forwarded-for", "x-forwarded-proto"}:
        assert name not in sent
