"""Starting a private ``redis-server`` on loopback: for the lab, the test suite and benchmarks.

Production points ``control_plane`` at a Redis it runs itself; these helpers only serve the
cases where the project brings its own control plane up on this machine.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path


def redis_binary() -> str | None:
    return shutil.which("redis-server")


def start_redis_server(
    port: int,
    workdir: Path | str,
    *,
    durable: bool = False,
    preexec_fn: Callable[[], None] | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``redis-server`` on ``127.0.0.1:port`` with its files in ``workdir``.

    Args:
        durable: append-only file with fsync on every write, so a restart loses nothing;
            otherwise nothing is written to disk.
    """
    binary = redis_binary()
    if binary is None:
        raise FileNotFoundError("redis-server is not installed (Debian package redis-server)")
    persistence = (
        ["--appendonly", "yes", "--appendfsync", "always"] if durable else ["--appendonly", "no"]
    )
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", *persistence]
    return subprocess.Popen(
        [*argv, "--dir", str(workdir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=preexec_fn,
    )


def wait_for_port(host: str, port: int, timeout_s: float) -> None:
    """Return once something accepts TCP connections on ``host:port``.

    Raises:
        TimeoutError: nothing listened within ``timeout_s``.
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout_s:g}s")
