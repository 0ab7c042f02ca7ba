"""The config contract of DESIGN.md: eager validation, dotted key paths, units, unknown keys."""

from __future__ import annotations

import copy
import ipaddress
from typing import Any

import pytest

from cdn_core.config import (
    CacheConfig,
    ClientNetwork,
    ControlPlaneConfig,
    DnsConfig,
    HostPort,
    LabConfig,
    NodeConfig,
    OriginConfig,
    OverlayConfig,
    ProbeConfig,
    ProxyConfig,
    Role,
    RoutingPolicy,
    ShieldPolicy,
    load_config,
)
from cdn_core.config_fields import FieldDefaults
from cdn_core.errors import ConfigError
from cdn_core.units import parse_duration, parse_size

BASE: dict[str, Any] = {
    "cluster": "demo",
    "control_plane": "redis://127.0.0.1:6379/0",
    "secret_file": "cluster.key",
    "dns": {"zone": "cdn.test", "listen": "127.0.0.1:5353", "ttl_s": 20},
    "origins": [
        {
            "name": "site",
            "hostnames": ["www.cdn.test"],
            "url": "http://127.0.0.1:9000",
            "shield_policy": "nearest",
        }
    ],
    "nodes": [
        {
            "name": "edge-eu-1",
            "role": "edge",
            "region": "eu",
            "listen": "127.0.1.1:8080",
            "admin": "127.0.1.1:9080",
        },
        {
            "name": "shield-eu-1",
            "role": "shield",
            "region": "eu",
            "listen": "127.0.2.1:8080",
            "admin": "127.0.2.1:9080",
        },
    ],
    "client_networks": [
        {
            "name": "eu-users",
            "region": "eu",
            "prefixes": ["127.10.0.0/16"],
            "probe": "127.10.0.1:7000",
        }
    ],
    "cache": {"memory_bytes": "256MiB"},
}


def doc(**changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(BASE)
    data.update(changes)
    return data


def error_of(data: dict[str, Any]) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_config(data)
    return info.value


class TestDefaults:
    """Each default is written once, on its dataclass field: what the loaders apply for an
    absent key is exactly that."""

    def test_absent_keys_take_the_dataclass_defaults(self) -> None:
        minimal = doc(dns={"zone": "cdn.test", "listen": "127.0.0.1:5353"}, cache={}, lab={})
        del minimal["origins"][0]["shield_policy"]
        config = load_config(minimal)
        assert config.dns == DnsConfig(zone="cdn.test", listen=HostPort("127.0.0.1", 5353))
        assert config.origins[0] == OriginConfig(
            name="site", hostnames=("www.cdn.test",), url="http://127.0.0.1:9000"
        )
        assert config.nodes[0] == NodeConfig(
            name="edge-eu-1",
            role=Role.EDGE,
            region="eu",
            listen=HostPort("127.0.1.1", 8080),
            admin=HostPort("127.0.1.1", 9080),
            public_address="127.0.1.1",
        )
        assert config.client_networks[0] == ClientNetwork(
            name="eu-users",
            region="eu",
            prefixes=(ipaddress.ip_network("127.10.0.0/16"),),
            probe=HostPort("127.10.0.1", 7000),
        )
        assert (config.cache, config.proxy, config.probe) == (
            CacheConfig(),
            ProxyConfig(),
            ProbeConfig(),
        )
        assert (config.controlplane, config.overlay, config.lab) == (
            ControlPlaneConfig(),
            OverlayConfig(),
            LabConfig(),
        )

    def test_field_defaults_name_only_declared_defaults(self) -> None:
        defaults = FieldDefaults(DnsConfig)
        assert defaults.ttl_s == 20
        with pytest.raises(AttributeError, match="zone"):
            _ = defaults.zone


class TestValidConfig:
    def test_the_design_example_loads(self) -> None:
        config = load_config(doc(), base_dir="/etc/cdn")

        assert config.cluster == "demo"
        assert config.secret_file == "/etc/cdn/cluster.key"
        assert config.dns.listen == HostPort("127.0.0.1", 5353)
        assert config.origins[0].shield_policy is ShieldPolicy.NEAREST
        assert config.nodes[0].role is Role.EDGE
        assert config.nodes[0].public_address == "127.0.1.1"
        assert config.client_networks[0].prefixes == (ipaddress.ip_network("127.10.0.0/16"),)
        assert config.cache.memory_bytes == 256 * 1024**2
        assert config.dns.policy is RoutingPolicy.LATENCY

    def test_lookups(self) -> None:
        config = load_config(doc())

        assert config.node("shield-eu-1").role is Role.SHIELD
        assert config.origin_for_host("WWW.cdn.test.") is config.origins[0]
        assert config.origin_for_host("evil.test") is None
        assert [n.name for n in config.nodes_with_role(Role.EDGE)] == ["edge-eu-1"]
        with pytest.raises(ConfigError, match="no node of that name"):
            config.node("nope")

    def test_durations_and_sizes_in_sections(self) -> None:
        config = load_config(
            doc(
                proxy={"connect_timeout": "250ms", "max_header_bytes": "8KiB"},
                probe={"interval": "500ms"},
            )
        )

        assert config.proxy.connect_timeout_s == 0.25
        assert config.proxy.max_header_bytes == 8192
        assert config.probe.interval_s == 0.5

    def test_ipv6_addresses(self) -> None:
        data = doc()
        data["nodes"][0]["listen"] = "[::1]:8080"
        data["nodes"][0]["admin"] = "[::1]:9080"

        config = load_config(data)

        assert config.nodes[0].listen == HostPort("::1", 8080)
        assert str(config.nodes[0].listen) == "[::1]:8080"

    def test_lab_section(self) -> None:
        data = doc(lab={"intra_region_rtt_ms": 3, "rtt_ms": {"eu-us": 80}})
        data["nodes"][1]["region"] = "us"

        config = load_config(data)

        assert config.lab is not None
        assert config.lab.rtt_between("eu", "eu") == 3
        assert config.lab.rtt_between("us", "eu") == 80

    def test_bind_differs_from_advertised(self) -> None:
        data = doc()
        data["nodes"][0]["bind"] = "127.0.101.1:18080"

        node = load_config(data).nodes[0]

        assert node.listen_bind == HostPort("127.0.101.1", 18080)
        assert node.admin_listen_bind == node.admin


class TestBadConfig:
    @pytest.mark.parametrize(
        ("change", "key"),
        [
            ({"cluster": ""}, "cluster"),
            ({"bogus": 1}, "bogus"),
            ({"control_plane": "http://x"}, "control_plane"),
            ({"dns": {"zone": "cdn.test"}}, "dns.listen"),
            ({"dns": {"zone": "cdn.test", "listen": "127.0.0.1"}}, "dns.listen"),
            ({"dns": {"zone": "cdn.test", "listen": "127.0.0.1:99999"}}, "dns.listen"),
            ({"dns": {"zone": "cdn.test", "listen": "127.0.0.1:53", "ttl": 5}}, "dns.ttl"),
            ({"cache": {"memory_bytes": "lots"}}, "cache.memory_bytes"),
            (
                {"cache": {"memory_bytes": "1MiB", "max_object_bytes": "2MiB"}},
                "cache.max_object_bytes",
            ),
            ({"proxy": {"connect_timeout": "soon"}}, "proxy.connect_timeout"),
            ({"probe": {"interval": "5s"}}, "probe.interval"),
            ({"origins": []}, "origins"),
        ],
    )
    def test_error_names_the_key(self, change: dict[str, Any], key: str) -> None:
        error = error_of(doc(**change))

        assert error.key == key
        assert str(error).startswith(f"{key}:")

    def test_bad_value_in_array_table_names_the_index(self) -> None:
        data = doc()
        data["nodes"][1]["role"] = "cache"

        error = error_of(data)

        assert error.key == "nodes[1].role"
        assert error.value == "cache"
        assert "edge | shield" in error.why

    def test_unknown_key_in_array_table(self) -> None:
        data = doc()
        data["origins"][0]["shield"] = "x"

        assert error_of(data).key == "origins[0].shield"

    def test_bad_prefix(self) -> None:
        data = doc()
        data["client_networks"][0]["prefixes"] = ["127.10.0.0/40"]

        assert error_of(data).key == "client_networks[0].prefixes"

    def test_duplicate_node_names(self) -> None:
        data = doc()
        data["nodes"][1]["name"] = "edge-eu-1"

        assert error_of(data).key == "nodes[1].name"

    def test_two_nodes_on_one_address(self) -> None:
        data = doc()
        data["nodes"][1]["listen"] = "127.0.1.1:8080"

        error = error_of(data)
        assert error.key == "nodes[1].listen"
        assert "nodes[0].listen" in error.why

    def test_edges_on_different_ports(self) -> None:
        data = doc()
        data["nodes"][1]["role"] = "edge"
        data["nodes"][1]["listen"] = "127.0.2.1:8081"

        assert "same port" in error_of(data).why

    def test_no_edge(self) -> None:
        data = doc()
        data["nodes"] = data["nodes"][1:]

        assert error_of(data).key == "nodes"

    def test_hostname_served_twice(self) -> None:
        data = doc()
        data["origins"].append(dict(data["origins"][0], name="other"))

        assert error_of(data).key == "origins[1].hostnames"

    def test_bad_url(self) -> None:
        data = doc()
        data["origins"][0]["url"] = "ftp://127.0.0.1"

        assert error_of(data).key == "origins[0].url"

    def test_lab_pair_of_unknown_regions(self) -> None:
        assert error_of(doc(lab={"rtt_ms": {"eu-mars": 80}})).key == "lab.rtt_ms.eu-mars"

    def test_boolean_is_not_a_number(self) -> None:
        error = error_of(doc(dns={"zone": "cdn.test", "listen": "127.0.0.1:53", "ttl_s": True}))
        assert error.key == "dns.ttl_s"


class TestMoreValidConfig:
    @pytest.mark.parametrize(
        ("url", "address"),
        [
            ("http://127.0.0.1", HostPort("127.0.0.1", 80)),
            ("https://127.0.0.1", HostPort("127.0.0.1", 443)),
            ("https://127.0.0.1:8443/", HostPort("127.0.0.1", 8443)),
        ],
    )
    def test_origin_address_defaults_the_port_by_scheme(self, url: str, address: HostPort) -> None:
        data = doc()
        data["origins"][0]["url"] = url

        origin = load_config(data).origins[0]

        assert origin.address == address
        assert origin.url == url.rstrip("/")

    @pytest.mark.parametrize(
        ("probe", "address", "probe_url"),
        [
            ("http://127.10.0.1/ping", HostPort("127.10.0.1", 80), "http://127.10.0.1/ping"),
            ("http://127.10.0.1:7000", HostPort("127.10.0.1", 7000), "http://127.10.0.1:7000"),
            ("127.10.0.1:7000", HostPort("127.10.0.1", 7000), None),
        ],
    )
    def test_probe_is_host_port_or_url(
        self, probe: str, address: HostPort, probe_url: str | None
    ) -> None:
        data = doc()
        data["client_networks"][0]["probe"] = probe

        network = load_config(data).client_networks[0]

        assert network.probe == address
        assert network.probe_url == probe_url

    def test_addresses_are_normalised(self) -> None:
        data = doc(dns=dict(BASE["dns"], ns_address="0:0::1"))
        data["nodes"][0]["public_address"] = "127.0.1.9"

        config = load_config(data)

        assert config.dns.ns_address == "::1"
        assert config.nodes[0].public_address == "127.0.1.9"

    def test_durations_that_may_be_zero(self) -> None:
        config = load_config(
            doc(
                cache={"max_heuristic": "1h", "stale_grace": 0},
                controlplane={"shield_ack_wait": "0s"},
            )
        )

        assert config.cache.max_heuristic_s == 3600.0
        assert config.cache.stale_grace_s == 0.0
        assert config.controlplane.shield_ack_wait_s == 0.0

    def test_overlay_tls_paths_resolve_against_the_config_dir(self) -> None:
        tls = {"ca_file": "ca.pem", "cert_file": "/abs/node.pem", "key_file": "keys/node.key"}

        config = load_config(doc(overlay={"tls": tls, "hop_limit": 2}), base_dir="/etc/cdn")

        assert config.overlay.tls is not None
        assert config.overlay.tls.ca_file == "/etc/cdn/ca.pem"
        assert config.overlay.tls.cert_file == "/abs/node.pem"
        assert config.overlay.tls.key_file == "/etc/cdn/keys/node.key"
        assert config.overlay.hop_limit == 2
        assert load_config(doc()).overlay.tls is None


DNS = BASE["dns"]


class TestMoreBadConfig:
    @pytest.mark.parametrize(
        ("change", "key", "why"),
        [
            ({"cache": 5}, "cache", "expected a table"),
            ({"dns": None}, "dns", "expected a table"),
            ({"cluster": "a b"}, "cluster", "expected a name"),
            ({"dns": dict(DNS, ttl_s=-1)}, "dns.ttl_s", "from 0 to 86400"),
            ({"dns": dict(DNS, answers=17)}, "dns.answers", "from 1 to 16"),
            ({"dns": dict(DNS, switch_margin_ms="x")}, "dns.switch_margin_ms", "expected a number"),
            ({"dns": dict(DNS, overload_spill_share=2)}, "dns.overload_spill_share", "0 to 1"),
            ({"dns": dict(DNS, switch_margin_ms=-1)}, "dns.switch_margin_ms", "0 to any"),
            ({"dns": dict(DNS, zone="bad_zone!")}, "dns.zone", "expected a DNS hostname"),
            ({"dns": dict(DNS, ns_address="::g")}, "dns.ns_address", "does not appear"),
            ({"proxy": {"connect_timeout": 0}}, "proxy.connect_timeout", "above zero"),
            ({"origins": {"name": "site"}}, "origins", "array of tables"),
            (
                {"controlplane": {"heartbeat_interval": "3s", "node_ttl": "3s"}},
                "controlplane.node_ttl",
                "must exceed controlplane.heartbeat_interval",
            ),
            ({"overlay": {"tls": {"ca_file": "ca.pem"}}}, "overlay.tls.cert_file", "is required"),
            ({"overlay": {"tls": "on"}}, "overlay.tls", "expected a table"),
        ],
    )
    def test_error_names_the_key_and_why(self, change: dict[str, Any], key: str, why: str) -> None:
        error = error_of(doc(**change))

        assert error.key == key
        assert why in error.why

    def test_root_must_be_a_table(self) -> None:
        with pytest.raises(ConfigError) as info:
            load_config([])  # type: ignore[arg-type]
        assert (info.value.key, info.value.why) == ("<root>", "expected a table")

    def test_missing_dns_section(self) -> None:
        data = doc()
        del data["dns"]

        error = error_of(data)

        assert (error.key, error.value, error.why) == ("dns", None, "is required")

    @pytest.mark.parametrize(
        ("hostnames", "why"),
        [("www.cdn.test", "expected a list"), ([], "at least 1 item")],
    )
    def test_hostnames_must_be_a_non_empty_list(self, hostnames: object, why: str) -> None:
        data = doc()
        data["origins"][0]["hostnames"] = hostnames

        error = error_of(data)

        assert error.key == "origins[0].hostnames"
        assert why in error.why

    def test_url_with_a_bad_port(self) -> None:
        data = doc()
        data["origins"][0]["url"] = "http://127.0.0.1:99999"

        error = error_of(data)

        assert error.key == "origins[0].url"
        assert "port" in error.why

    def test_probe_url_must_be_http(self) -> None:
        data = doc()
        data["client_networks"][0]["probe"] = "ftp://127.10.0.1"

        assert error_of(data).key == "client_networks[0].probe"


class TestUnits:
    @pytest.mark.parametrize(
        ("text", "size"),
        [
            ("256MiB", 256 * 1024**2),
            ("1.5GB", 1_500_000_000),
            ("4096", 4096),
            (10, 10),
            ("8 KiB", 8192),
        ],
    )
    def test_sizes(self, text: object, size: int) -> None:
        assert parse_size(text) == size

    @pytest.mark.parametrize(
        ("text", "seconds"),
        [("30s", 30.0), ("250ms", 0.25), ("2m", 120.0), (1.5, 1.5), ("1h", 3600.0)],
    )
    def test_durations(self, text: object, seconds: float) -> None:
        assert parse_duration(text) == seconds

    @pytest.mark.parametrize("bad", ["-1", "12 parsecs", "", True, None, -3, [1]])
    def test_bad_sizes(self, bad: object) -> None:
        with pytest.raises(ValueError):
            parse_size(bad)

    @pytest.mark.parametrize("bad", ["fast", "3 weeks", True, None, -1.0])
    def test_bad_durations(self, bad: object) -> None:
        with pytest.raises(ValueError):
            parse_duration(bad)
