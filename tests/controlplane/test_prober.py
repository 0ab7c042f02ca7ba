"""The prober's wire behaviour: HTTP probe targets, and probes leaving from the source address."""

from __future__ import annotations

import copy

from aiohttp import web

from cdn_core.config import ProbeConfig, load_config
from controlplane.prober import ProbeKind, Prober, ProbeTarget, probe_targets
from tests.core.test_config import BASE


async def test_http_target_is_probed_from_the_source_address() -> None:
    peers: list[str | None] = []

    async def answer(request: web.Request) -> web.Response:
        peers.append(request.remote)
        return web.Response(status=204)

    app = web.Application()
    app.router.add_get("/", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    target = ProbeTarget(name="net:x", kind=ProbeKind.HTTP, url=f"http://127.0.0.1:{port}/")
    prober = Prober(
        (target,),
        policy=ProbeConfig(interval_s=1.0, window=4, down_after=3, up_after=1),
        timeout_s=1.0,
        source_address="127.0.0.77",
    )
    try:
        await prober.probe_round()
        await prober.probe_round()
    finally:
        await prober.stop()
        await runner.cleanup()

    assert peers == ["127.0.0.77", "127.0.0.77"]
    estimate = prober.estimates()["net:x"]
    assert estimate.up
    assert estimate.rtt_ms is not None


def test_client_network_probe_kinds() -> None:
    data = copy.deepcopy(BASE)
    data["client_networks"].append(
        {
            "name": "us",
            "region": "us",
            "prefixes": ["127.20.0.0/16"],
            "probe": "http://127.20.0.1:7000/p",
        }
    )
    config = load_config(data)

    targets = {t.name: t for t in probe_targets(config, "edge-eu-1")}

    assert targets["net:eu-users"].kind is ProbeKind.TCP
    assert targets["net:us"].kind is ProbeKind.HTTP
    assert targets["net:us"].url == "http://127.20.0.1:7000/p"
    assert config.client_networks[1].probe.port == 7000
    assert "net:us" not in {t.name for t in probe_targets(config, "shield-eu-1")}
