"""The sample production deployment: its config validates, its systemd units are complete."""

from __future__ import annotations

import configparser
import ipaddress
import shlex
import tomllib
from pathlib import Path
from typing import Any

import pytest

from cdn_core.config import Config, Role, load_config
from cdn_core.errors import ConfigError
from infra.monitoring.scrape import scrape_config

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION = ROOT / "infra" / "production"
SYSTEMD = ROOT / "infra" / "systemd"
DOCUMENTATION = [
    ipaddress.ip_network(n)
    for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32")
]


def document() -> dict[str, Any]:
    with open(PRODUCTION / "cdn.toml", "rb") as file:
        return tomllib.load(file)


def production() -> Config:
    return load_config(document(), base_dir=str(PRODUCTION))


def is_documentation(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    return any(ip in network for network in DOCUMENTATION)


def test_the_sample_validates_with_absolute_paths_under_etc_cdn() -> None:
    config = production()

    assert config.secret_file == "/etc/cdn/cluster.key"
    assert config.overlay.tls is not None
    for path in (config.overlay.tls.ca_file, config.overlay.tls.cert_file):
        assert path.startswith("/etc/cdn/tls/")
    assert config.controlplane.state_dir == "/var/lib/cdn"


def in_documentation(prefix: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
    first, last = prefix.network_address, prefix.broadcast_address
    return any(first in d and last in d for d in DOCUMENTATION)


def test_three_regions_shields_in_two_and_one_port_per_role() -> None:
    config = production()

    edges, shields = config.nodes_with_role(Role.EDGE), config.nodes_with_role(Role.SHIELD)
    assert {n.region for n in edges} == {"eu", "us", "ap"}
    assert len({n.region for n in shields}) >= 2
    assert len({n.listen for n in config.nodes}) == len(config.nodes)
    assert {n.listen.port for n in edges} == {80}
    assert len({n.listen.port for n in shields}) == 1
    assert {c.region for c in config.client_networks} == {"eu", "us", "ap"}


def test_every_address_is_a_documentation_address() -> None:
    config = production()

    hosts = [config.dns.listen.host, *(c.probe.host for c in config.client_networks)]
    hosts += [a.host for n in config.nodes for a in (n.listen, n.admin)]
    hosts += [n.public_address for n in config.nodes]
    assert all(is_documentation(h) for h in hosts), hosts
    prefixes = [p for c in config.client_networks for p in c.prefixes]
    assert all(in_documentation(p) for p in prefixes), prefixes
    assert {p.version for p in prefixes} == {4, 6}


def test_the_router_gives_ns_glue_for_the_delegation() -> None:
    config = production()

    assert config.dns.admin is not None
    assert not ipaddress.ip_address(config.dns.ns_address or config.dns.listen.host).is_unspecified
    assert config.dns.listen.port == 53


def test_a_broken_copy_of_the_sample_is_refused_naming_the_key() -> None:
    data = document()
    data["nodes"][0]["listen"] = "192.0.2.11:8080"  # edges must share one port

    with pytest.raises(ConfigError) as caught:
        load_config(data, base_dir=str(PRODUCTION))

    assert caught.value.key == "nodes"


def test_the_scrape_config_of_the_sample_covers_every_node() -> None:
    config = production()

    jobs = scrape_config(config)["scrape_configs"]

    count = sum(len(s["targets"]) for job in jobs for s in job["static_configs"])
    assert count == len(config.nodes) + 1


# -- systemd units ------------------------------------------------------------------------------


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=True, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string((SYSTEMD / name).read_text(), source=name)
    return parser


UNITS = {
    "cdn-edge@.service": ["edge", "--config", "${CDN_CONFIG}", "--node", "%i"],
    "cdn-shield@.service": ["shield", "--config", "${CDN_CONFIG}", "--node", "%i"],
    "cdn-router.service": ["router", "--config", "${CDN_CONFIG}"],
}
REQUIRED_SERVICE_KEYS = {
    "ExecStart",
    "EnvironmentFile",
    "Restart",
    "RestartSec",
    "NoNewPrivileges",
    "ProtectSystem",
    "LimitNOFILE",
    "User",
    "AmbientCapabilities",
}


@pytest.mark.parametrize("name", sorted(UNITS))
def test_unit_parses_with_the_required_keys(name: str) -> None:
    parsed = unit(name)

    assert set(parsed.sections()) == {"Unit", "Service", "Install"}
    service = parsed["Service"]
    assert set(service) >= REQUIRED_SERVICE_KEYS, REQUIRED_SERVICE_KEYS - set(service)
    assert service["NoNewPrivileges"] == "yes"
    assert service["ProtectSystem"] == "strict"
    assert service["Restart"] in {"always", "on-failure"}
    assert int(service["LimitNOFILE"]) >= 65536
    assert service["EnvironmentFile"] == "/etc/cdn/cdn.env"
    assert "StartLimitBurst" in parsed["Unit"] and "After" in parsed["Unit"]
    assert parsed["Install"]["WantedBy"] == "multi-user.target"


@pytest.mark.parametrize(("name", "arguments"), sorted(UNITS.items()))
def test_unit_runs_the_cdn_command_for_its_role(name: str, arguments: list[str]) -> None:
    argv = shlex.split(unit(name)["Service"]["ExecStart"])

    assert Path(argv[0]).name == "cdn" and Path(argv[0]).is_absolute()
    assert argv[1:] == arguments


def test_the_environment_file_names_the_config() -> None:
    lines = (SYSTEMD / "cdn.env").read_text().splitlines()

    settings = dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))
    assert settings == {"CDN_CONFIG": "/etc/cdn/cdn.toml"}


def test_the_readme_covers_each_deployment_step() -> None:
    text = (PRODUCTION / "README.md").read_text().lower()

    for topic in ("install", "cluster.key", "tls", "systemctl", "glue", "prometheus", "purge"):
        assert topic in text, topic
    assert "cdn status" in text and "capacity" in text
