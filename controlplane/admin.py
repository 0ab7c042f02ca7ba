"""Control-plane endpoints on a node's admin listener: ``GET /probe`` and ``POST /purge``.

``POST /purge`` takes ``{"kind": "url|prefix|tag|all", "values": [...], "soft": false}``
(plus ``"wait": true`` to wait for every live node's ack) and appends the purge to the
cluster-wide log. It must be authenticated with the cluster secret, one of:

- ``Authorization: CDN-HMAC t=<unix seconds>,sig=<hex>`` where ``sig`` is
  HMAC-SHA256(secret, ``"<t>\\n<METHOD>\\n<path>\\n"`` + body), within ``overlay.auth_max_skew``
  of the node's clock: usable from anywhere, replayable only inside the skew window
  (:func:`sign_admin_request` computes it);
- ``Authorization: Bearer <secret>``, accepted from loopback peers only (a local CMS hook).

Anything else gets 401 and changes nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import time
from typing import Any

from aiohttp import web

from cdn_core.errors import PurgeError
from controlplane.agent import NodeAgent
from controlplane.purge_log import issue_purge, new_rule, purge_and_wait
from controlplane.store import StoreUnavailable

log = logging.getLogger(__name__)

HMAC_SCHEME = "CDN-HMAC"


def sign_admin_request(secret: bytes, method: str, path: str, body: bytes, *, now: float) -> str:
    """The ``Authorization`` header value for an admin request (see the module docstring)."""
    stamp = str(int(now))
    return f"{HMAC_SCHEME} t={stamp},sig={_signature(secret, stamp, method, path, body)}"


def _signature(secret: bytes, stamp: str, method: str, path: str, body: bytes) -> str:
    message = f"{stamp}\n{method.upper()}\n{path}\n".encode() + body
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def is_authorized(
    header: str,
    *,
    secret: bytes,
    method: str,
    path: str,
    body: bytes,
    peer: str | None,
    now: float,
    max_skew_s: float,
) -> bool:
    scheme, _, credentials = header.strip().partition(" ")
    if scheme == "Bearer":
        return _is_loopback(peer) and hmac.compare_digest(credentials.strip().encode(), secret)
    if scheme != HMAC_SCHEME:
        return False
    fields = dict(part.strip().partition("=")[::2] for part in credentials.split(","))
    stamp, sig = fields.get("t", ""), fields.get("sig", "")
    if not stamp.isdigit() or abs(now - int(stamp)) > max_skew_s:
        return False
    return hmac.compare_digest(sig, _signature(secret, stamp, method, path, body))


def _is_loopback(peer: str | None) -> bool:
    try:
        return peer is not None and ipaddress.ip_address(peer).is_loopback
    except ValueError:
        return False


def add_admin_routes(app: web.Application, agent: NodeAgent, secret: bytes) -> None:
    """Mount ``GET /probe`` and ``POST /purge`` on a node's admin app."""
    app.router.add_get("/probe", _probe)
    app.router.add_post("/purge", _PurgeHandler(agent, secret).handle)


async def _probe(request: web.Request) -> web.Response:
    return web.Response(status=204)


class _PurgeHandler:
    def __init__(self, agent: NodeAgent, secret: bytes) -> None:
        self._agent = agent
        self._secret = secret

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        authorized = is_authorized(
            request.headers.get("Authorization", ""),
            secret=self._secret,
            method=request.method,
            path=request.path_qs,
            body=body,
            peer=request.remote,
            now=time.time(),
            max_skew_s=self._agent.config.overlay.auth_max_skew_s,
        )
        if not authorized:
            return _error(401, "authenticate with the cluster secret", auth=True)
        try:
            data = json.loads(body)
            if not isinstance(data, dict):
                raise ValueError("expected a JSON object")
            rule = new_rule(_field(data, "kind", str), _values(data), soft=_soft(data))
        except (ValueError, PurgeError) as exc:
            return _error(400, str(exc))
        return await self._issue(rule, wait=data.get("wait") is True)

    async def _issue(self, rule: Any, *, wait: bool) -> web.Response:
        cp = self._agent.config.controlplane
        store = self._agent.store
        try:
            if not wait:
                entry = await issue_purge(store, rule, maxlen=cp.purge_log_maxlen)
                return web.json_response({"id": rule.id, "position": entry.position})
            report = await purge_and_wait(
                store, rule, maxlen=cp.purge_log_maxlen, timeout_s=cp.purge_wait_timeout_s
            )
        except StoreUnavailable as exc:
            log.warning("admin purge failed: %s", exc)
            return _error(503, "the control plane is unreachable; nothing was purged")
        return web.json_response(
            {
                "id": rule.id,
                "acked": sorted(report.acked),
                "missing": sorted(report.missing),
                "elapsed_ms": round(report.elapsed_ms, 1),
            },
            status=200 if report.complete else 504,
        )


def _field(data: dict[str, Any], name: str, kind: type) -> Any:
    value = data.get(name)
    if not isinstance(value, kind):
        raise ValueError(f"{name!r} must be a {kind.__name__}")
    return value


def _values(data: dict[str, Any]) -> list[str]:
    values = _field(data, "values", list)
    if not all(isinstance(v, str) for v in values):
        raise ValueError("'values' must be a list of strings")
    return values  # type: ignore[no-any-return]


def _soft(data: dict[str, Any]) -> bool:
    soft = data.get("soft", False)
    if not isinstance(soft, bool):
        raise ValueError("'soft' must be true or false")
    return soft


def _error(status: int, message: str, *, auth: bool = False) -> web.Response:
    headers = {"WWW-Authenticate": f'{HMAC_SCHEME} realm="cdn-admin"'} if auth else None
    return web.json_response({"error": message}, status=status, headers=headers)
