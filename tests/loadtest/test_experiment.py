"""The experiment driver's own parts: arguments, chaos victims, stopping the lab."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from cdn_cli.configfile import read_config
from loadtest.experiment import parse_args, stop_lab, victims

REPO = Path(__file__).resolve().parents[2]
DEFAULT = REPO / "infra" / "lab" / "default.toml"


def test_arguments_and_their_defaults(tmp_path):
    options = parse_args(["--topology", str(DEFAULT), "--users", "6", "--duration", "90s"])
    assert options.users == 6 and options.duration_s == 90 and options.warmup_s == 10
    assert not options.chaos
    assert parse_args(["--chaos", "--warmup", "0", "--out", str(tmp_path)]).chaos


@pytest.mark.parametrize(
    "argv",
    [
        ["--users", "0"],
        ["--duration", "0s"],
        ["--duration", "two minutes"],
        ["--duration", "5h"],
        ["--warmup", "1h"],
        ["--topology", "/nonexistent/topology.toml"],
    ],
)
def test_bad_arguments_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        parse_args(argv)
    assert exc.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_chaos_kills_the_routed_edge_and_a_shield_of_its_region():
    config = read_config(str(DEFAULT))
    assert victims(config, "127.0.1.3") == ("edge-us-1", "shield-us-1")
    assert victims(config, "127.0.1.1") == ("edge-eu-1", "shield-eu-1")
    # No shield in ap: any shield will do; an unknown address falls back to the first edge.
    assert victims(config, "127.0.1.6") == ("edge-ap-2", "shield-eu-1")
    assert victims(config, None) == ("edge-eu-1", "shield-eu-1")


def _sleeper(*, ignore_term: bool = False) -> subprocess.Popen[bytes]:
    code = "import signal, time\n"
    if ignore_term:
        code += "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    code += "print('ready', flush=True)\ntime.sleep(60)\n"
    process = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, start_new_session=True
    )
    assert process.stdout is not None
    assert process.stdout.readline() == b"ready\n"  # the handler is installed
    process.stdout.close()
    return process


def test_stop_lab_terminates_the_lab_and_reports_nothing_left():
    lab = _sleeper()
    assert stop_lab(lab, {}) == []
    assert lab.returncode is not None


def test_stop_lab_kills_what_does_not_stop():
    lab = _sleeper(ignore_term=True)
    child = _sleeper(ignore_term=True)
    try:
        leftovers = stop_lab(lab, {"edge-eu-1": child.pid}, timeout_s=0.5)
        assert leftovers == ["cdn lab", "edge-eu-1"]
        assert lab.returncode is not None
        assert child.wait(timeout=10) is not None
    finally:
        for process in (lab, child):
            if process.poll() is None:
                process.kill()
                process.wait()
