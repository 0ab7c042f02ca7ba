"""Free TCP ports on loopback for the lab, the benchmarks and the tests.

Asking the kernel for port 0 and closing the socket can return the same port twice in a row;
two addresses of one config then collide. Ports handed out by this process are remembered and
never handed out again.
"""

from __future__ import annotations

import socket

_HANDED_OUT: set[int] = set()
_ATTEMPTS = 100


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` now, and not returned before by this process."""
    for _ in range(_ATTEMPTS):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
            port: int = sock.getsockname()[1]
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port
    raise RuntimeError(f"no new free port on {host} after {_ATTEMPTS} attempts")
