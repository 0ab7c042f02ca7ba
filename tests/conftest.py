"""Fixtures shared by every test package: a real Redis, free ports, the repository root."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from controlplane.redis_server import redis_binary, start_redis_server, wait_for_port
from infra.ports import free_port as free_port

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A real Redis: $REDIS_URL when set, else a redis-server started here on a free port."""
    configured = os.environ.get("REDIS_URL")
    if configured:
        yield configured
        return
    if redis_binary() is None:
        pytest.fail("tests need redis-server on PATH or REDIS_URL set")
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="cdn-test-redis-")
    proc = start_redis_server(port, workdir)
    try:
        wait_for_port("127.0.0.1", port, 10.0)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def cluster_name() -> str:
    """A cluster name unique to one test, so tests sharing a Redis never see each other's keys."""
    return f"t{uuid.uuid4().hex[:10]}"
