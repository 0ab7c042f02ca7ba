"""The router's admin listener (``/metrics`` and ``/healthz``), and the router run with it.

:func:`run_router` takes the control-plane client from its caller (``cdn router`` opens it,
:mod:`controlplane.connect`) and does not close it.
"""

from __future__ import annotations

import asyncio
import signal

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.aiohttp import make_aiohttp_handler

from cdn_core.config import Config, RoutingPolicy
from controlplane.feed import SnapshotSource
from router.server import DnsRouter

ROUTER = web.AppKey("router", DnsRouter)


async def healthz(request: web.Request) -> web.Response:
    router = request.app[ROUTER]
    return web.json_response(
        {
            "status": "ok",
            "zone": router.config.dns.zone,
            "policy": router.params.policy.value,
            "control_plane": "read" if router.last_refresh is not None else "never read",
        }
    )


def make_admin_app(router: DnsRouter, registry: CollectorRegistry) -> web.Application:
    app = web.Application()
    app[ROUTER] = router
    app.router.add_get("/metrics", make_aiohttp_handler(registry))
    app.router.add_get("/healthz", healthz)
    return app


async def run_router(
    config: Config, control: SnapshotSource, *, policy: RoutingPolicy | None = None
) -> None:
    """Serve DNS and the admin listener, routing on ``control``'s snapshots, until cancelled
    or sent SIGTERM/SIGINT."""
    registry = CollectorRegistry()
    router = DnsRouter(config, control, registry=registry, policy=policy)
    runner: web.AppRunner | None = None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await router.start()
        admin = config.dns.admin
        if admin is not None:
            runner = web.AppRunner(make_admin_app(router, registry), access_log=None)
            await runner.setup()
            await web.TCPSite(runner, admin.host, admin.port).start()
        await stop.wait()
    finally:
        if runner is not None:
            await runner.cleanup()
        await router.close()
