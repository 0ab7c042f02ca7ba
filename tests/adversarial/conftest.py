"""The adversarial HTTP topology, started once for this package (the start takes seconds)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.adversarial.http_harness import HttpOverlay


@pytest.fixture(scope="package")
def http_overlay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpOverlay]:
    overlay = HttpOverlay(base=tmp_path_factory.mktemp("adversarial-http"))
    try:
        overlay.start()
        yield overlay
    finally:
        overlay.stop()
