"""`cdn config check F` as a real process: exit 0 on a good file, exit 2 naming the bad key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

GOOD = """
cluster = "demo"
control_plane = "memory"
secret_file = "cluster.key"

[dns]
zone = "cdn.test"
listen = "127.0.0.1:5353"

[[origins]]
name = "site"
hostnames = ["www.cdn.test"]
url = "http://127.0.0.1:9000"

[[nodes]]
name = "edge-1"
role = "edge"
region = "eu"
listen = "127.0.1.1:8080"
admin = "127.0.1.1:9080"
"""


def run_cdn(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cdn_cli.main", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_good_file(tmp_path: Path) -> None:
    (tmp_path / "cluster.key").write_text("0123456789abcdef0123456789abcdef\n")
    (tmp_path / "cdn.toml").write_text(GOOD)

    result = run_cdn("config", "check", str(tmp_path / "cdn.toml"))

    assert result.returncode == 0, result.stderr
    assert "ok" in result.stdout
    assert "1 edge(s)" in result.stdout


def test_bad_value_exits_2_naming_the_key(tmp_path: Path) -> None:
    (tmp_path / "cluster.key").write_text("0123456789abcdef0123456789abcdef\n")
    (tmp_path / "cdn.toml").write_text(GOOD.replace('role = "edge"', 'role = "cache"'))

    result = run_cdn("config", "check", str(tmp_path / "cdn.toml"))

    assert result.returncode == 2
    assert "nodes[0].role" in result.stderr
    assert "'cache'" in result.stderr
    assert "Traceback" not in result.stderr


def test_not_toml(tmp_path: Path) -> None:
    (tmp_path / "cdn.toml").write_text("cluster = [unclosed\n")

    result = run_cdn("config", "check", str(tmp_path / "cdn.toml"))

    assert result.returncode == 2
    assert "not valid TOML" in result.stderr


def test_missing_file(tmp_path: Path) -> None:
    result = run_cdn("config", "check", str(tmp_path / "absent.toml"))

    assert result.returncode == 2
    assert "cannot read the file" in result.stderr


def test_missing_secret(tmp_path: Path) -> None:
    (tmp_path / "cdn.toml").write_text(GOOD)

    result = run_cdn("config", "check", str(tmp_path / "cdn.toml"))

    assert result.returncode == 2
    assert "secret_file" in result.stderr
