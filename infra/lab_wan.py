"""The lab's WAN: a front relay for every advertised address, plus the probe targets behind them.

See :mod:`infra.lab_plan` for the wiring: each relay classifies a connection by its source
address and delays it by the RTT between that region and the region behind the front.
"""

from __future__ import annotations

from aiohttp import web

from infra.lab_plan import LabPlan
from infra.wan import LatencyMatrix, Link, WanEmulator
from infra.wan_control import start_wan_control


async def _probe_answer(request: web.Request) -> web.Response:
    return web.Response(status=204)


class LabWan:
    """Starts and stops the relays, the client-network probe targets and the WAN control."""

    def __init__(self, plan: LabPlan) -> None:
        assert plan.config.lab is not None
        self.plan = plan
        self.emulator = WanEmulator(LatencyMatrix.from_lab(plan.config.lab, plan.regions))
        self.control_url = ""
        self._runners: list[web.AppRunner] = []

    async def start(self) -> None:
        for spec in self.plan.relays:
            link = Link(
                from_region="*",
                to_region=spec.region,
                target=spec.name,
                upstream_host=spec.backend.host,
                upstream_port=spec.backend.port,
            )
            await self.emulator.add_front(
                link,
                listen_host=spec.front.host,
                listen_port=spec.front.port,
                classify=self.plan.region_of,
            )
        for address in self.plan.probe_backends.values():
            app = web.Application()
            app.router.add_route("*", "/{tail:.*}", _probe_answer)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            await web.TCPSite(runner, address.host, address.port).start()
            self._runners.append(runner)
        runner, self.control_url = await start_wan_control(self.emulator)
        self._runners.append(runner)

    async def stop(self) -> None:
        for runner in self._runners:
            await runner.cleanup()
        self._runners.clear()
        await self.emulator.close()
