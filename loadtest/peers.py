"""The servers ``bench_edge`` drives: how to configure, start and stop each, and how it marks a hit.

The peers are the caches our edge is measured against: nginx ``proxy_cache``, Varnish and Apache
Traffic Server. Each :class:`Peer` is a recipe: ``configure(site)`` writes a private config into
the site's scratch directory and returns the :class:`Launch` (argv and environment) that runs
the daemon in the foreground on one loopback port, caching in front of the bench origin;
``hit_header`` names the response header with the peer's own hit marker, ``is_hit(value)``
reads it. :func:`running` starts a launch (on one CPU, or floating), waits for its port, and
stops it with SIGTERM afterwards. Nothing under /etc is changed, no packaged service is started.

The config templates are the constants below. Each peer keeps its defaults except where the
benchmark needs otherwise: a loopback listener, a 256 MiB cache, no access log, a hit marker,
keep-alive for the whole run, and one event thread for Traffic Server and one thread pool for
Varnish (their defaults are one per core, or two), so each server is configured for the one
core it gets; ``--workers N`` makes that N, and nginx's ``worker_processes`` N.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

# sendfile and tcp_nopush are on as in Debian's nginx.conf; keepalive_requests goes up from 1000
# so that wrk's connections last the whole run, as they do on the other servers.
NGINX_CONF = """
{user}worker_processes {workers};
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    proxy_cache_path {dir}/cache levels=1:2 keys_zone=bench:10m max_size=256m;
    client_body_temp_path {dir}/body; proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fcgi; uwsgi_temp_path {dir}/uwsgi; scgi_temp_path {dir}/scgi;
    upstream origin {{ server 127.0.0.1:{origin_port}; keepalive 32; }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_cache bench;
            add_header Cache-Status $upstream_cache_status;
        }}
    }}
}}
"""

VARNISH_VCL = """
vcl 4.1;
backend origin {{ .host = "127.0.0.1"; .port = "{origin_port}"; }}
sub vcl_deliver {{
    if (obj.hits > 0) {{
        set resp.http.X-Cache = "HIT";
    }} else {{
        set resp.http.X-Cache = "MISS";
    }}
}}
"""

# Traffic Server finds its directories through TS_RUNROOT=<this file>; programs and plugins stay
# where the package put them, everything it writes goes under the scratch directory.
ATS_RUNROOT = """
prefix: {dir}
exec_prefix: /usr
bindir: /usr/bin
sbindir: /usr/sbin
sysconfdir: {dir}/etc
datadir: {dir}/cache
includedir: /usr/include
libdir: /usr/lib/trafficserver
libexecdir: /usr/lib/trafficserver/modules
localstatedir: {dir}
runtimedir: {dir}/run
logdir: {dir}/log
cachedir: {dir}/cache
"""

# user_id #-1 keeps the current user (as root, the packaged "nobody" could not enter the scratch
# directory); the crash-log helper would look that user up, so it is off. Via level 2 carries
# the cache result code ("[cHs f ]" for a hit). DNS is pointed at loopback: the remap target is
# an address, so nothing is resolved, and nothing could leave the machine if it were.
ATS_RECORDS = """
CONFIG proxy.config.http.server_ports STRING {port}:ip-in=127.0.0.1
CONFIG proxy.config.admin.user_id STRING #-1
CONFIG proxy.config.crash_log_helper STRING NULL
CONFIG proxy.config.exec_thread.autoconfig INT 0
CONFIG proxy.config.exec_thread.limit INT {workers}
CONFIG proxy.config.accept_threads INT 0
CONFIG proxy.config.http.cache.http INT 1
CONFIG proxy.config.http.wait_for_cache INT 2
CONFIG proxy.config.http.insert_response_via_str INT 2
CONFIG proxy.config.reverse_proxy.enabled INT 1
CONFIG proxy.config.url_remap.remap_required INT 1
CONFIG proxy.config.cache.ram_cache.size INT 268435456
CONFIG proxy.config.log.logging_enabled INT 0
CONFIG proxy.config.dns.nameservers STRING 127.0.0.1
CONFIG proxy.config.dns.resolv_conf STRING NULL
"""

ATS_REMAP = "map http://{host}/ http://127.0.0.1:{origin_port}/\n"
ATS_STORAGE = "{dir}/cache 256M\n"
ATS_PACKAGED_CONFIG = Path("/etc/trafficserver")


class BenchError(RuntimeError):
    """The benchmark cannot give an honest figure (a server did not start, or missed)."""


@dataclass(frozen=True, slots=True)
class Site:
    """Where one server under test runs: its scratch directory and port, the origin it fronts
    (port, and the Host name the benchmark asks for) and how many workers or threads it gets."""

    dir: Path
    port: int
    origin_port: int
    host: str
    workers: int = 1


@dataclass(frozen=True, slots=True)
class Launch:
    """How to start a server in the foreground: its argv and extra environment variables."""

    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Peer:
    """A cache under test: how to configure and start it, and how it marks a hit."""

    name: str
    binary: str
    package: str
    configure: Callable[[Site], Launch]
    hit_header: str
    is_hit: Callable[[str], bool]

    def installed(self) -> bool:
        return shutil.which(self.binary) is not None


def on_cpu(cpu: int | None) -> list[str]:
    return [] if cpu is None else ["taskset", "-c", str(cpu)]


def wait_for(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30.0
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BenchError(f"{process.args!r} exited {process.returncode}:\n{tail(log)}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.1)
    raise BenchError(f"nothing listens on 127.0.0.1:{port} after 30 s:\n{tail(log)}")


def tail(log: Path, lines: int = 20) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


@contextmanager
def running(
    launch: Launch, port: int, log: Path, cpu: int | None
) -> Iterator[subprocess.Popen[bytes]]:
    env = {**os.environ, **launch.env}
    with log.open("wb") as out:
        argv = [*on_cpu(cpu), *launch.argv]
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        wait_for(port, process, log)
        yield process
    finally:
        stop(process)


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def configure_nginx(site: Site) -> Launch:
    # As root, nginx workers would drop to nobody and lose access to the scratch directory.
    user = "user root root;\n" if os.geteuid() == 0 else ""
    conf = NGINX_CONF.format(
        user=user,
        workers=site.workers,
        dir=site.dir,
        origin_port=site.origin_port,
        port=site.port,
    )
    (site.dir / "nginx.conf").write_text(conf)
    return Launch(["nginx", "-c", str(site.dir / "nginx.conf"), "-p", str(site.dir)])


def configure_varnish(site: Site) -> Launch:
    vcl = site.dir / "bench.vcl"
    vcl.write_text(VARNISH_VCL.format(origin_port=site.origin_port))
    argv = ["varnishd", "-F", "-a", f"127.0.0.1:{site.port}", "-T", "none", "-f", str(vcl)]
    argv += ["-s", "malloc,256m", "-n", str(site.dir / "work")]
    # Varnish's own advice: more than one thread pool per CPU is most likely detrimental.
    argv += ["-p", f"thread_pools={site.workers}"]
    # -j none: as root the default unix jail wants a "varnish" user able to read the VCL.
    if os.geteuid() == 0:
        argv += ["-j", "none"]
    return Launch(argv)


def configure_trafficserver(site: Site) -> Launch:
    etc = site.dir / "etc"
    shutil.copytree(ATS_PACKAGED_CONFIG, etc)
    for sub in ("run", "log", "cache"):
        (site.dir / sub).mkdir()
    (site.dir / "runroot.yaml").write_text(ATS_RUNROOT.format(dir=site.dir))
    (etc / "records.config").write_text(ATS_RECORDS.format(port=site.port, workers=site.workers))
    (etc / "remap.config").write_text(
        ATS_REMAP.format(host=site.host, origin_port=site.origin_port)
    )
    (etc / "storage.config").write_text(ATS_STORAGE.format(dir=site.dir))
    return Launch(["traffic_server"], env={"TS_RUNROOT": str(site.dir / "runroot.yaml")})


def is_upper_hit(value: str) -> bool:
    """nginx's ``$upstream_cache_status`` and the VCL's X-Cache: ``HIT``."""
    return value.strip().upper() == "HIT"


def trafficserver_hit(via: str) -> bool:
    """A Via cache code of ``cH`` (fresh, from disk) or ``cR`` (fresh, from the RAM cache)."""
    return re.search(r"\[c[HR]", via) is not None


PEERS = (
    Peer("nginx", "nginx", "nginx-light", configure_nginx, "Cache-Status", is_upper_hit),
    Peer("varnish", "varnishd", "varnish", configure_varnish, "X-Cache", is_upper_hit),
    Peer(
        "trafficserver",
        "traffic_server",
        "trafficserver",
        configure_trafficserver,
        "Via",
        trafficserver_hit,
    ),
)
