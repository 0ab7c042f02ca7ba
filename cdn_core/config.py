"""The overlay's one configuration file, validated eagerly into a frozen dataclass tree.

:func:`load_config` is pure: it takes the parsed TOML mapping (and the directory that relative
paths are resolved against) and returns a :class:`Config`, or raises :class:`ConfigError` naming
the dotted key path and the bad value. An unknown key is an error, never silently ignored.
Sizes accept ``"256MiB"`` and durations ``"30s"`` / ``"250ms"``. Every default is written once,
on its dataclass field; the loaders read it from there (a default instance, or
:class:`~cdn_core.config_fields.FieldDefaults` for sections with required keys).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from cdn_core import config_fields as read
from cdn_core.config_fields import HostPort as HostPort, IPNetwork as IPNetwork
from cdn_core.errors import ConfigError


class Role(enum.Enum):
    EDGE = "edge"
    SHIELD = "shield"


class ShieldPolicy(enum.Enum):
    NEAREST = "nearest"
    HASH = "hash"
    NONE = "none"


class RoutingPolicy(enum.Enum):
    LATENCY = "latency"
    ROUND_ROBIN = "round-robin"


@dataclass(frozen=True, slots=True, kw_only=True)
class DnsConfig:
    zone: str
    listen: HostPort
    ttl_s: int = 20
    answers: int = 1
    admin: HostPort | None = None
    policy: RoutingPolicy = RoutingPolicy.LATENCY
    switch_margin_ms: float = 5.0
    switch_margin_ratio: float = 0.1
    overload_spill_share: float = 0.5
    stale_after_s: float = 10.0
    rate_limit_qps: float = 2000.0
    rate_limit_burst: float = 4000.0
    tcp_connections_per_source: int = 16
    ns_address: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class OriginConfig:
    name: str
    hostnames: tuple[str, ...]
    url: str
    shield_policy: ShieldPolicy = ShieldPolicy.NEAREST
    probe_path: str = "/"
    # The Host sent to the origin; None sends the hostname the request was matched to.
    host_header: str | None = None
    # Request fields users may send to this origin although they are not in the cache key
    # (cdn_core.forwarding): each is added to the Vary of the responses stored.
    pass_headers: tuple[str, ...] = ()

    @property
    def address(self) -> HostPort:
        parts = urlsplit(self.url)
        default = 443 if parts.scheme == "https" else 80
        return HostPort(parts.hostname or "", parts.port or default)


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeConfig:
    name: str
    role: Role
    region: str
    listen: HostPort
    admin: HostPort
    public_address: str
    capacity_rps: float | None = None
    # Where the sockets really bind, when it differs from the advertised address (NAT, a load
    # balancer, or the lab's WAN relays); and the source address of outgoing connections.
    bind: HostPort | None = None
    admin_bind: HostPort | None = None
    source_address: str | None = None

    @property
    def listen_bind(self) -> HostPort:
        return self.bind or self.listen

    @property
    def admin_listen_bind(self) -> HostPort:
        return self.admin_bind or self.admin


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientNetwork:
    name: str
    region: str
    prefixes: tuple[IPNetwork, ...]
    probe: HostPort
    # ``probe = "http://host:port/path"`` probes with an HTTP request (an application round
    # trip, which also crosses user-space relays); ``"host:port"`` times a TCP connect.
    probe_url: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CacheConfig:
    memory_bytes: int = 256 * 1024**2
    max_object_bytes: int = 64 * 1024**2
    heuristic_fraction: float = 0.1
    max_heuristic_s: float = 86400.0
    hit_for_miss_s: float = 120.0
    coalesce_wait_s: float = 10.0
    stale_grace_s: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class ProxyConfig:
    connect_timeout_s: float = 3.0
    first_byte_timeout_s: float = 15.0
    between_bytes_timeout_s: float = 10.0
    max_header_bytes: int = 16 * 1024
    max_request_body_bytes: int = 16 * 1024**2
    upstream_pool_size: int = 100
    keepalive_timeout_s: float = 30.0
    # The per-upstream circuit breaker (cdn_core.breaker): open after this many failures in a
    # row (0 turns it off), for breaker_open_s, then let one trial request through.
    breaker_failures: int = 5
    breaker_open_s: float = 10.0


@dataclass(frozen=True, slots=True, kw_only=True)
class ProbeConfig:
    interval_s: float = 1.0
    timeout_s: float = 1.0
    window: int = 8
    down_after: int = 3
    up_after: int = 2


@dataclass(frozen=True, slots=True, kw_only=True)
class ControlPlaneConfig:
    heartbeat_interval_s: float = 1.0
    node_ttl_s: float = 3.0
    purge_log_maxlen: int = 100_000
    purge_wait_timeout_s: float = 5.0
    shield_ack_wait_s: float = 2.0
    state_dir: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TlsConfig:
    ca_file: str
    cert_file: str
    key_file: str


@dataclass(frozen=True, slots=True, kw_only=True)
class OverlayConfig:
    switch_margin_ms: float = 5.0
    switch_margin_ratio: float = 0.1
    detour_margin_ms: float = 20.0
    degraded_loss: float = 0.2
    hop_limit: int = 4
    auth_max_skew_s: float = 30.0
    tls: TlsConfig | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class LabConfig:
    """The ``[lab]`` section: the emulated WAN of ``cdn lab`` (round-trip times in ms)."""

    intra_region_rtt_ms: float = 4.0
    rtt_ms: Mapping[frozenset[str], float] = field(default_factory=dict)
    origin_region: str = ""
    redis: str = "auto"

    def rtt_between(self, a: str, b: str) -> float:
        if a == b:
            return self.intra_region_rtt_ms
        return self.rtt_ms.get(frozenset((a, b)), 0.0)


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    cluster: str
    control_plane: str
    secret_file: str
    dns: DnsConfig
    origins: tuple[OriginConfig, ...]
    nodes: tuple[NodeConfig, ...]
    client_networks: tuple[ClientNetwork, ...] = ()
    cache: CacheConfig = CacheConfig()
    proxy: ProxyConfig = ProxyConfig()
    probe: ProbeConfig = ProbeConfig()
    controlplane: ControlPlaneConfig = ControlPlaneConfig()
    overlay: OverlayConfig = OverlayConfig()
    lab: LabConfig | None = None

    def node(self, name: str) -> NodeConfig:
        for node in self.nodes:
            if node.name == name:
                return node
        known = ", ".join(n.name for n in self.nodes)
        raise ConfigError("nodes", name, f"no node of that name (known: {known})")

    def nodes_with_role(self, role: Role) -> tuple[NodeConfig, ...]:
        return tuple(n for n in self.nodes if n.role is role)

    def origin_for_host(self, host: str) -> OriginConfig | None:
        name = host.lower().rstrip(".")
        for origin in self.origins:
            if name in origin.hostnames:
                return origin
        return None


# -- the sections ----------------------------------------------------------------------------


def _load_dns(data: object) -> DnsConfig:
    d = read.FieldDefaults(DnsConfig)
    with read.section(data, "dns") as s:
        return DnsConfig(
            zone=s.need("zone", read.hostname),
            listen=s.need("listen", read.host_port),
            ttl_s=s.get("ttl_s", read.integer(0, 86400), d.ttl_s),
            answers=s.get("answers", read.integer(1, 16), d.answers),
            admin=s.get("admin", read.host_port, d.admin),
            policy=s.get("policy", read.one_of(RoutingPolicy), d.policy),
            switch_margin_ms=s.get("switch_margin_ms", read.number(0), d.switch_margin_ms),
            switch_margin_ratio=s.get(
                "switch_margin_ratio", read.number(0, 10), d.switch_margin_ratio
            ),
            overload_spill_share=s.get(
                "overload_spill_share", read.number(0, 1), d.overload_spill_share
            ),
            stale_after_s=s.get("stale_after", read.positive_duration, d.stale_after_s),
            rate_limit_qps=s.get("rate_limit_qps", read.number(1), d.rate_limit_qps),
            rate_limit_burst=s.get("rate_limit_burst", read.number(1), d.rate_limit_burst),
            # at most the router's total of 256 open TCP connections
            tcp_connections_per_source=s.get(
                "tcp_connections_per_source", read.integer(1, 256), d.tcp_connections_per_source
            ),
            ns_address=s.get("ns_address", read.ip, d.ns_address),
        )


def _load_origin(path: str, data: object) -> OriginConfig:
    d = read.FieldDefaults(OriginConfig)
    with read.section(data, path) as s:
        return OriginConfig(
            name=s.need("name", read.name),
            hostnames=s.need("hostnames", read.list_of(read.hostname)),
            url=s.need("url", read.url),
            shield_policy=s.get("shield_policy", read.one_of(ShieldPolicy), d.shield_policy),
            probe_path=s.get("probe_path", read.non_empty_str, d.probe_path),
            host_header=s.get("host_header", read.host_header, d.host_header),
            pass_headers=s.get("pass_headers", read.list_of(read.passed_field), d.pass_headers),
        )


def _load_node(path: str, data: object) -> NodeConfig:
    d = read.FieldDefaults(NodeConfig)
    with read.section(data, path) as s:
        listen = s.need("listen", read.host_port)
        return NodeConfig(
            name=s.need("name", read.name),
            role=s.need("role", read.one_of(Role)),
            region=s.need("region", read.name),
            listen=listen,
            admin=s.need("admin", read.host_port),
            public_address=s.get("public_address", read.ip, listen.host),
            capacity_rps=s.get("capacity_rps", read.number(1), d.capacity_rps),
            bind=s.get("bind", read.host_port, d.bind),
            admin_bind=s.get("admin_bind", read.host_port, d.admin_bind),
            source_address=s.get("source_address", read.ip, d.source_address),
        )


def _load_client_network(path: str, data: object) -> ClientNetwork:
    d = read.FieldDefaults(ClientNetwork)
    with read.section(data, path) as s:
        return ClientNetwork(
            name=s.need("name", read.name),
            region=s.need("region", read.name),
            prefixes=s.need("prefixes", read.list_of(read.network)),
            probe=s.need("probe", read.probe_address),
            probe_url=s.get("probe", read.probe_url, d.probe_url),
        )


def _load_cache(data: object) -> CacheConfig:
    d = CacheConfig()
    with read.section(data, "cache") as s:
        config = CacheConfig(
            memory_bytes=s.get("memory_bytes", read.size, d.memory_bytes),
            max_object_bytes=s.get("max_object_bytes", read.size, d.max_object_bytes),
            heuristic_fraction=s.get("heuristic_fraction", read.number(0, 1), d.heuristic_fraction),
            max_heuristic_s=s.get("max_heuristic", read.duration, d.max_heuristic_s),
            hit_for_miss_s=s.get("hit_for_miss", read.duration, d.hit_for_miss_s),
            coalesce_wait_s=s.get("coalesce_wait", read.positive_duration, d.coalesce_wait_s),
            stale_grace_s=s.get("stale_grace", read.duration, d.stale_grace_s),
        )
    if config.max_object_bytes > config.memory_bytes:
        raise ConfigError(
            "cache.max_object_bytes", config.max_object_bytes, "is larger than cache.memory_bytes"
        )
    return config


def _load_proxy(data: object) -> ProxyConfig:
    d = ProxyConfig()
    with read.section(data, "proxy") as s:
        return ProxyConfig(
            connect_timeout_s=s.get("connect_timeout", read.positive_duration, d.connect_timeout_s),
            first_byte_timeout_s=s.get(
                "first_byte_timeout", read.positive_duration, d.first_byte_timeout_s
            ),
            between_bytes_timeout_s=s.get(
                "between_bytes_timeout", read.positive_duration, d.between_bytes_timeout_s
            ),
            max_header_bytes=s.get("max_header_bytes", read.size, d.max_header_bytes),
            max_request_body_bytes=s.get(
                "max_request_body_bytes", read.size, d.max_request_body_bytes
            ),
            upstream_pool_size=s.get(
                "upstream_pool_size", read.integer(1, 100_000), d.upstream_pool_size
            ),
            keepalive_timeout_s=s.get(
                "keepalive_timeout", read.positive_duration, d.keepalive_timeout_s
            ),
            breaker_failures=s.get("breaker_failures", read.integer(0, 1000), d.breaker_failures),
            breaker_open_s=s.get("breaker_open", read.positive_duration, d.breaker_open_s),
        )


def _load_probe(data: object) -> ProbeConfig:
    d = ProbeConfig()
    with read.section(data, "probe") as s:
        config = ProbeConfig(
            interval_s=s.get("interval", read.positive_duration, d.interval_s),
            timeout_s=s.get("timeout", read.positive_duration, d.timeout_s),
            window=s.get("window", read.integer(1, 1000), d.window),
            down_after=s.get("down_after", read.integer(1, 100), d.down_after),
            up_after=s.get("up_after", read.integer(1, 100), d.up_after),
        )
    if config.interval_s > 2.0:
        raise ConfigError("probe.interval", config.interval_s, "must be at most 2s")
    return config


def _load_controlplane(data: object, base_dir: str | None) -> ControlPlaneConfig:
    d = ControlPlaneConfig()
    with read.section(data, "controlplane") as s:
        config = ControlPlaneConfig(
            heartbeat_interval_s=s.get(
                "heartbeat_interval", read.positive_duration, d.heartbeat_interval_s
            ),
            node_ttl_s=s.get("node_ttl", read.positive_duration, d.node_ttl_s),
            purge_log_maxlen=s.get("purge_log_maxlen", read.integer(100), d.purge_log_maxlen),
            purge_wait_timeout_s=s.get(
                "purge_wait_timeout", read.positive_duration, d.purge_wait_timeout_s
            ),
            shield_ack_wait_s=s.get("shield_ack_wait", read.duration, d.shield_ack_wait_s),
            state_dir=read.resolve_opt(
                s.get("state_dir", read.non_empty_str, d.state_dir), base_dir
            ),
        )
    if config.node_ttl_s <= config.heartbeat_interval_s:
        raise ConfigError(
            "controlplane.node_ttl",
            config.node_ttl_s,
            "must exceed controlplane.heartbeat_interval",
        )
    return config


def _load_overlay(data: object, base_dir: str | None) -> OverlayConfig:
    d = OverlayConfig()
    with read.section(data, "overlay") as s:
        tls_data = s.raw("tls")
        tls = None
        if tls_data is not None:
            with read.section(tls_data, "overlay.tls") as t:
                tls = TlsConfig(
                    ca_file=read.resolve(t.need("ca_file", read.non_empty_str), base_dir),
                    cert_file=read.resolve(t.need("cert_file", read.non_empty_str), base_dir),
                    key_file=read.resolve(t.need("key_file", read.non_empty_str), base_dir),
                )
        return OverlayConfig(
            switch_margin_ms=s.get("switch_margin_ms", read.number(0), d.switch_margin_ms),
            switch_margin_ratio=s.get(
                "switch_margin_ratio", read.number(0, 10), d.switch_margin_ratio
            ),
            detour_margin_ms=s.get("detour_margin_ms", read.number(0), d.detour_margin_ms),
            degraded_loss=s.get("degraded_loss", read.number(0, 1), d.degraded_loss),
            hop_limit=s.get("hop_limit", read.integer(1, 16), d.hop_limit),
            auth_max_skew_s=s.get("auth_max_skew", read.positive_duration, d.auth_max_skew_s),
            tls=tls,
        )


def _load_lab(data: object, regions: set[str]) -> LabConfig:
    d = LabConfig()
    with read.section(data, "lab") as s:
        pairs: dict[frozenset[str], float] = {}
        rtt_data = s.raw("rtt_ms", {})
        with read.section(rtt_data, "lab.rtt_ms") as r:
            for pair in list(r.data):
                a, sep, b = pair.partition("-")
                if not sep or a not in regions or b not in regions or a == b:
                    raise ConfigError(
                        f"lab.rtt_ms.{pair}", r.data[pair], "expected a key 'A-B' of two regions"
                    )
                pairs[frozenset((a, b))] = r.need(pair, read.number(0, 10_000))
        return LabConfig(
            intra_region_rtt_ms=s.get(
                "intra_region_rtt_ms", read.number(0, 10_000), d.intra_region_rtt_ms
            ),
            rtt_ms=pairs,
            origin_region=s.get("origin_region", read.name, d.origin_region),
            redis=s.get("redis", read.non_empty_str, d.redis),
        )


def _check_unique(items: tuple[Any, ...], attr: str, path: str) -> None:
    seen: set[object] = set()
    for i, item in enumerate(items):
        value = getattr(item, attr)
        if value in seen:
            raise ConfigError(f"{path}[{i}].{attr}", value, "is a duplicate")
        seen.add(value)


def _check_cross(config: Config) -> None:
    _check_unique(config.origins, "name", "origins")
    _check_unique(config.nodes, "name", "nodes")
    _check_unique(config.client_networks, "name", "client_networks")
    hosts: set[str] = set()
    for i, origin in enumerate(config.origins):
        for host in origin.hostnames:
            if host in hosts:
                raise ConfigError(f"origins[{i}].hostnames", host, "is served by two origins")
            hosts.add(host)
    addresses: dict[HostPort, str] = {config.dns.listen: "dns.listen"}
    for i, node in enumerate(config.nodes):
        for attr in ("listen", "admin"):
            address = getattr(node, attr)
            if address in addresses:
                raise ConfigError(
                    f"nodes[{i}].{attr}", str(address), f"is also {addresses[address]}"
                )
            addresses[address] = f"nodes[{i}].{attr}"
    edges = [n for n in config.nodes if n.role is Role.EDGE]
    if not edges:
        raise ConfigError("nodes", len(config.nodes), "needs at least one node with role = 'edge'")
    ports = {n.listen.port for n in edges}
    if len(ports) > 1:
        raise ConfigError(
            "nodes", sorted(ports), "every edge must listen on the same port (DNS carries no port)"
        )


def load_config(data: Mapping[str, Any], *, base_dir: str | None = None) -> Config:
    """Validate a parsed TOML document into a :class:`Config`.

    Args:
        data: the document, as ``tomllib.loads`` returns it.
        base_dir: the directory relative paths (``secret_file``, TLS files) are resolved in.

    Returns:
        The frozen configuration tree.

    Raises:
        ConfigError: naming the dotted key path and the bad value.
    """
    with read.section(data, "") as root:
        nodes = tuple(_load_node(p, d) for p, d in read.tables(data, "nodes"))
        root.seen.update(("nodes", "origins", "client_networks"))
        regions = {n.region for n in nodes}
        cluster = root.need("cluster", read.name)
        origins = tuple(_load_origin(p, d) for p, d in read.tables(data, "origins"))
        if not origins:
            raise ConfigError("origins", [], "needs at least one [[origins]] table")
        lab_data = root.raw("lab")
        config = Config(
            cluster=cluster,
            control_plane=root.need("control_plane", read.control_plane),
            secret_file=read.resolve(root.need("secret_file", read.non_empty_str), base_dir),
            dns=_load_dns(root.raw("dns", required=True)),
            origins=origins,
            nodes=nodes,
            client_networks=tuple(
                _load_client_network(p, d) for p, d in read.tables(data, "client_networks")
            ),
            cache=_load_cache(root.raw("cache", {})),
            proxy=_load_proxy(root.raw("proxy", {})),
            probe=_load_probe(root.raw("probe", {})),
            controlplane=_load_controlplane(root.raw("controlplane", {}), base_dir),
            overlay=_load_overlay(root.raw("overlay", {}), base_dir),
            lab=None if lab_data is None else _load_lab(lab_data, regions),
        )
    _check_cross(config)
    return config
