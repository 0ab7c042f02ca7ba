"""The cache-hit benchmark's pure parts: wrk parsing, hit markers, peer configs, the tables."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from cdn_core.config import load_config
from loadtest import peers
from loadtest.bench_edge import (
    EDGE_MEMORY_BYTES,
    Summary,
    WrkRun,
    configure_edge,
    edge_hit,
    human_latency,
    human_size,
    parse_args,
    parse_wrk,
    rss_line,
    size_table,
    summarise,
    write_edge_config,
)
from loadtest.peers import BenchError, Site

WRK_OUTPUT = """\
Running 3s test @ http://127.0.0.1:18002/obj/1024
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.98ms    1.44ms  48.30ms   95.13%
    Req/Sec    31.03k     3.90k   40.25k    76.67%
  Latency Distribution
     50%  874.00us
     75%    2.16ms
     90%    2.80ms
     99%    1.20s
  92751 requests in 3.01s, 114.73MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
Requests/sec:  30854.79
Transfer/sec:     38.16MB
"""


def site(tmp_path: Path, workers: int = 1) -> Site:
    return Site(tmp_path, port=18080, origin_port=18081, host="www.bench.test", workers=workers)


class TestParseWrk:
    def test_reads_rate_percentiles_and_socket_errors(self):
        run = parse_wrk(WRK_OUTPUT)

        assert run.rps == pytest.approx(30854.79)
        assert run.p50_s == pytest.approx(874e-6)
        assert run.p99_s == pytest.approx(1.2)
        assert run.socket_errors == 3

    def test_non_2xx_responses_fail(self):
        text = WRK_OUTPUT.replace("Requests/sec", "  Non-2xx or 3xx responses: 5\nRequests/sec")

        with pytest.raises(BenchError, match="errors"):
            parse_wrk(text)

    def test_missing_latency_distribution_fails(self):
        with pytest.raises(BenchError, match="99%"):
            parse_wrk(WRK_OUTPUT.replace("     99%    1.20s\n", ""))


class TestHitMarkers:
    @pytest.mark.parametrize(
        ("value", "hit"),
        [
            ("edge-bench; hit; ttl=3599", True),
            ("origin; fwd=miss, edge-bench; hit", True),
            ("edge-bench; fwd=uri-miss; fwd-status=200", False),
            ("", False),
        ],
    )
    def test_edge_cache_status(self, value, hit):
        assert edge_hit(value) is hit

    @pytest.mark.parametrize(("value", "hit"), [("HIT", True), ("MISS", False), ("", False)])
    def test_nginx_and_varnish(self, value, hit):
        assert peers.is_upper_hit(value) is hit

    @pytest.mark.parametrize(
        ("via", "hit"),
        [
            ("http/1.1 traffic_server (ApacheTrafficServer/9.2.9 [cHs f ])", True),
            ("http/1.1 traffic_server (ApacheTrafficServer/9.2.9 [cRs f ])", True),
            ("http/1.1 traffic_server (ApacheTrafficServer/9.2.9 [cMsSfW])", False),
            ("http/1.1 traffic_server (ApacheTrafficServer/9.2.9)", False),
        ],
    )
    def test_trafficserver_via(self, via, hit):
        assert peers.trafficserver_hit(via) is hit


class TestPeerConfigs:
    def test_nginx_listens_on_loopback_with_the_workers(self, tmp_path):
        launch = peers.configure_nginx(site(tmp_path, workers=3))

        conf = (tmp_path / "nginx.conf").read_text()
        assert "listen 127.0.0.1:18080;" in conf
        assert "server 127.0.0.1:18081;" in conf
        assert "worker_processes 3;" in conf
        assert launch.argv[:3] == ["nginx", "-c", str(tmp_path / "nginx.conf")]

    def test_varnish_listens_on_loopback_without_a_cli_port(self, tmp_path):
        launch = peers.configure_varnish(site(tmp_path))

        assert launch.argv[launch.argv.index("-a") + 1] == "127.0.0.1:18080"
        assert launch.argv[launch.argv.index("-T") + 1] == "none"
        assert '.port = "18081"' in (tmp_path / "bench.vcl").read_text()

    @pytest.mark.skipif(
        not peers.ATS_PACKAGED_CONFIG.is_dir(), reason="trafficserver is not installed"
    )
    def test_trafficserver_keeps_everything_in_its_directory(self, tmp_path):
        launch = peers.configure_trafficserver(site(tmp_path / "ats"))

        records = (tmp_path / "ats" / "etc" / "records.config").read_text()
        assert "server_ports STRING 18080:ip-in=127.0.0.1" in records
        assert "exec_thread.limit INT 1" in records
        assert launch.env == {"TS_RUNROOT": str(tmp_path / "ats" / "runroot.yaml")}


class TestEdgeConfig:
    def test_one_worker_config_loads_with_the_cache_size(self, tmp_path):
        path = write_edge_config(site(tmp_path), workers=1)

        config = load_config(tomllib.loads(path.read_text()), base_dir=str(tmp_path))

        assert config.cache.memory_bytes == EDGE_MEMORY_BYTES
        assert config.nodes[0].listen.port == 18080

    def test_workers_fall_back_to_a_config_that_checks(self, tmp_path, capsys):
        launch = configure_edge(site(tmp_path, workers=2))

        path = Path(launch.argv[launch.argv.index("--config") + 1])
        text = path.read_text()
        accepted = "workers = 2" in text
        assert accepted or "running it as one process" in capsys.readouterr().out
        load_config(tomllib.loads(text), base_dir=str(tmp_path))


class TestReport:
    def test_summary_takes_the_median_of_each_figure(self):
        runs = [
            WrkRun(10.0, 0.003, 0.009, 0),
            WrkRun(30.0, 0.001, 0.020, 0),
            WrkRun(20.0, 0.002, 0.010, 1),
        ]

        assert summarise("edge", runs) == Summary("edge", 20.0, 0.002, 0.010)

    def test_table_compares_the_edge_with_the_fastest_peer(self):
        rows = [
            Summary("overlay edge", 10_000.0, 0.004, 0.020),
            Summary("nginx", 40_000.0, 0.001, 0.005),
            Summary("varnish", 20_000.0, 0.002, 0.004),
        ]

        lines = size_table(1024, rows)

        assert lines[0] == "1 KiB hits"
        assert lines[-1] == "  edge / best peer (nginx): req/s 0.25, p99 4.00"

    def test_table_without_peers_says_so(self):
        lines = size_table(1024, [Summary("overlay edge", 1.0, 0.001, 0.002)])

        assert lines[-1] == "  no peer installed to compare with"

    @pytest.mark.parametrize(
        ("size", "text"), [(1024, "1 KiB"), (1024**2, "1 MiB"), (1500, "1500 B")]
    )
    def test_human_size(self, size, text):
        assert human_size(size) == text

    def test_human_latency(self):
        assert [human_latency(s) for s in (450e-6, 0.01234, 2.5)] == ["450us", "12.34ms", "2.50s"]

    def test_rss_line_flags_a_process_over_budget(self):
        assert rss_line(100 * 1024**2).endswith("within budget")
        assert rss_line(400 * 1024**2).endswith("OVER budget")


def test_sizes_parse_with_units():
    args = parse_args(["--sizes", "1KiB,16KiB,256KiB,1MiB"])

    assert args.sizes == [1024, 16 * 1024, 256 * 1024, 1024**2]
