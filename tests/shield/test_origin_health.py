"""A shield's ``/healthz`` shows the health of every origin it fetches from."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp

from origin_shield.origin import DOWN_AFTER_FAILURES
from tests.conftest import free_port
from tests.shield.conftest import Origin, overlay_config, running
from tests.shield.test_ingress import UNSIGNED, signed


async def healthz(client: aiohttp.ClientSession, admin: object) -> Any:
    async with client.get(f"http://{admin}/healthz") as response:
        assert response.status == 200
        return await response.json()


async def test_healthz_shows_each_origin_up_until_it_fails_in_a_row(
    secret_file: Path, client: aiohttp.ClientSession
) -> None:
    config = overlay_config(free_port(), shields=1, edges=1, secret_file=secret_file)
    shield = config.node("shield-1")
    async with running(config, ["shield-1"]):
        before = await healthz(client, shield.admin)
        assert before["role"] == "shield"
        assert before["origins"] == {"site": {"up": True, "failures": 0, "last_error": ""}}
        for i in range(DOWN_AFTER_FAILURES):
            path = f"/dead/{i}"
            url = f"http://{shield.listen}{path}"
            headers = signed("edge-1", path, ("shield-1",))
            async with client.get(url, headers=headers, skip_auto_headers=UNSIGNED) as response:
                assert response.status >= 500
        after = (await healthz(client, shield.admin))["origins"]["site"]
    assert (after["up"], after["failures"]) == (False, DOWN_AFTER_FAILURES)
    assert "could not be reached" in after["last_error"]


async def test_an_answering_origin_stays_up_and_edges_show_no_origins(
    origin: Origin, secret_file: Path, client: aiohttp.ClientSession
) -> None:
    config = overlay_config(origin.port, shields=1, edges=1, secret_file=secret_file)
    shield = config.node("shield-1")
    async with running(config, ["shield-1", "edge-1"]):
        url = f"http://{shield.listen}/ok"
        headers = signed("edge-1", "/ok", ("shield-1",))
        async with client.get(url, headers=headers, skip_auto_headers=UNSIGNED) as response:
            assert response.status == 200
        health = await healthz(client, shield.admin)
        edge = await healthz(client, config.node("edge-1").admin)
    assert health["origins"] == {"site": {"up": True, "failures": 0, "last_error": ""}}
    assert "origins" not in edge
