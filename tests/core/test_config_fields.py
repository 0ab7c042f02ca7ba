"""The config table reader: keys read are remembered, others refused; errors name the key."""

from __future__ import annotations

import pytest

from cdn_core.config_fields import (
    HostPort,
    Section,
    host_header,
    host_port,
    integer,
    passed_field,
    section,
)
from cdn_core.errors import ConfigError


class TestSection:
    def test_an_unread_key_is_refused_by_name(self) -> None:
        with pytest.raises(ConfigError) as info, section({"a": 1, "zz": 2}, "t") as s:
            s.get("a", integer(0), 0)

        assert info.value.key == "t.zz"
        assert info.value.why == "unknown key"

    def test_a_converter_error_names_the_dotted_key_and_value(self) -> None:
        s = Section({"listen": "nowhere"}, "dns")

        with pytest.raises(ConfigError) as info:
            s.need("listen", host_port)

        assert info.value.key == "dns.listen"
        assert info.value.value == "nowhere"

    def test_a_nested_config_error_passes_through_unchanged(self) -> None:
        inner = ConfigError("dns.listen.port", 0, "too small")

        def convert(value: object) -> int:
            raise inner

        with pytest.raises(ConfigError) as info:
            Section({"listen": 0}, "dns").need("listen", convert)

        assert info.value is inner

    def test_root_keys_have_no_prefix(self) -> None:
        s = Section({"listen": "127.0.0.1:53"}, "")

        assert s.need("listen", host_port) == HostPort("127.0.0.1", 53)
        assert s.key("other") == "other"


class TestHostHeader:
    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            ("Origin.Example", "origin.example"),
            ("origin.example:8080", "origin.example:8080"),
            ("[2001:DB8::1]:443", "[2001:db8::1]:443"),
        ],
    )
    def test_hostnames_and_ip_literals_with_an_optional_port(self, value, expected) -> None:
        assert host_header(value) == expected

    @pytest.mark.parametrize("bad", ["origin example", "origin.example:http", "a/b", "[::1"])
    def test_anything_else_is_refused(self, bad) -> None:
        with pytest.raises(ValueError, match="Host value"):
            host_header(bad)


class TestPassedField:
    def test_a_token_is_lower_cased(self) -> None:
        assert passed_field("X-Client-Region") == "x-client-region"

    def test_a_non_token_is_refused(self) -> None:
        with pytest.raises(ValueError, match="header field name"):
            passed_field("x client")

    @pytest.mark.parametrize("computed", ["Connection", "x-overlay-route", "content-length"])
    def test_fields_each_node_computes_cannot_be_passed(self, computed) -> None:
        with pytest.raises(ValueError, match="computed by each node"):
            passed_field(computed)
