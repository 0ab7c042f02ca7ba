"""Run-time control of the WAN emulator: a tiny HTTP endpoint on loopback and its client.

``GET /wan`` shows the latency matrix and every link; ``POST /wan`` with
``{"a": "eu", "b": "us", "rtt_ms": 300}`` or ``{"a": "eu", "b": "us", "down": true}`` changes
the pair (a, b) in both directions. ``cdn lab wan set`` calls :func:`send_wan_command`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web

from infra.wan import WanEmulator, WanError, check_rtt_ms

WAN_EMULATOR = web.AppKey("wan_emulator", WanEmulator)
_COMMAND_KEYS = frozenset({"a", "b", "rtt_ms", "down"})
_CLIENT_TIMEOUT = aiohttp.ClientTimeout(total=10)


@dataclass(frozen=True, slots=True, kw_only=True)
class WanCommand:
    """A change to the pair (a, b): a new RTT, a cut or a restore, or both."""

    a: str
    b: str
    rtt_ms: float | None = None
    down: bool | None = None


def parse_wan_command(data: object) -> WanCommand:
    """The command in a ``POST /wan`` body; raises :class:`WanError` naming what is wrong."""
    if not isinstance(data, dict):
        raise WanError('expected a JSON object such as {"a": "eu", "b": "us", "rtt_ms": 300}')
    unknown = sorted(set(data) - _COMMAND_KEYS)
    if unknown:
        raise WanError(f"unknown key(s) {', '.join(unknown)} (allowed: a, b, rtt_ms, down)")
    for key in ("a", "b"):
        if not isinstance(data.get(key), str) or not data[key]:
            raise WanError(f"{key!r} must be a region name (got {data.get(key)!r})")
    rtt_ms = data.get("rtt_ms")
    down = data.get("down")
    if rtt_ms is None and down is None:
        raise WanError("give 'rtt_ms' (a number) or 'down' (true or false)")
    if down is not None and not isinstance(down, bool):
        raise WanError(f"'down' must be true or false (got {down!r})")
    return WanCommand(
        a=data["a"],
        b=data["b"],
        rtt_ms=None if rtt_ms is None else check_rtt_ms(rtt_ms),
        down=down,
    )


def apply_wan_command(emulator: WanEmulator, command: WanCommand) -> tuple[str, ...]:
    """Apply ``command``; returns the names of the links it changed."""
    changed: list[str] = []
    if command.rtt_ms is not None:
        changed += emulator.set_rtt(command.a, command.b, command.rtt_ms)
    if command.down is not None:
        changed += emulator.set_down(command.a, command.b, command.down)
    return tuple(dict.fromkeys(changed))


async def _get_wan(request: web.Request) -> web.Response:
    return web.json_response(request.app[WAN_EMULATOR].to_json())


async def _post_wan(request: web.Request) -> web.Response:
    emulator = request.app[WAN_EMULATOR]
    try:
        data = json.loads(await request.read())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return web.json_response({"error": "the body is not JSON"}, status=400)
    try:
        changed = apply_wan_command(emulator, parse_wan_command(data))
    except WanError as exc:
        return web.json_response({"error": str(exc)}, status=400)
    return web.json_response({"changed_links": list(changed), "wan": emulator.to_json()})


def build_wan_control_app(emulator: WanEmulator) -> web.Application:
    app = web.Application(client_max_size=64 * 1024)
    app[WAN_EMULATOR] = emulator
    app.router.add_get("/wan", _get_wan)
    app.router.add_post("/wan", _post_wan)
    return app


async def start_wan_control(
    emulator: WanEmulator, host: str = "127.0.0.1", port: int = 0
) -> tuple[web.AppRunner, str]:
    """Serve the control endpoint; returns the runner (``await runner.cleanup()``) and its URL."""
    runner = web.AppRunner(build_wan_control_app(emulator), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound_host, bound_port = runner.addresses[0][:2]
    return runner, f"http://{bound_host}:{bound_port}"


async def send_wan_command(
    control_url: str, a: str, b: str, rtt_ms: float | None = None, down: bool | None = None
) -> dict[str, Any]:
    """POST a change to the lab's WAN control endpoint; raises :class:`WanError` on refusal."""
    body: dict[str, Any] = {"a": a, "b": b}
    if rtt_ms is not None:
        body["rtt_ms"] = rtt_ms
    if down is not None:
        body["down"] = down
    return await _call(control_url, "POST", body)


async def fetch_wan_state(control_url: str) -> dict[str, Any]:
    """The lab's current latency matrix and links, as ``GET /wan`` shows them."""
    return await _call(control_url, "GET", None)


async def _call(control_url: str, method: str, body: dict[str, Any] | None) -> dict[str, Any]:
    url = control_url.rstrip("/") + "/wan"
    try:
        async with (
            aiohttp.ClientSession(timeout=_CLIENT_TIMEOUT) as session,
            session.request(method, url, json=body) as response,
        ):
            payload = await response.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError, json.JSONDecodeError) as exc:
        raise WanError(f"no WAN control endpoint answers at {url}: {exc}") from exc
    if not isinstance(payload, dict):
        raise WanError(f"{url} answered {payload!r}, not a JSON object")
    if response.status != 200:
        raise WanError(str(payload.get("error", f"{url} answered HTTP {response.status}")))
    return payload
