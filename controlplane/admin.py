"""Control-plane endpoints on a node's admin listener: ``GET /probe`` and ``POST /purge``.

``POST /purge`` takes ``{"kind": "url|prefix|tag|all", "values": [...], "soft": false}``
(plus ``"wait": true`` to wait for every live node's ack) and appends the purge to the
cluster-wide log. It must be authenticated with the cluster secret (the bytes of
``secret_file``, surrounding whitespace stripped), in exactly one ``Authorization`` header of
at most 512 characters, one of:

- ``CDN-HMAC t=<unix seconds>,sig=<hex>``: ``t`` is 1 to 12 ASCII digits, ``sig`` 64 hex
  digits of HMAC-SHA256(secret, ``"<t>\\n<METHOD>\\n<path>\\n"`` + body), each given once
  and nothing else; ``t`` must be within ``overlay.auth_max_skew`` of the node's clock.
  Usable from anywhere, replayable only inside the skew window (:func:`sign_admin_request`
  computes it);
- ``Bearer <token>``, from loopback peers only (a local CMS hook), where ``token`` is the
  standard padded base64 (RFC 4648 §4) of the secret's bytes, or the secret itself when it is
  printable ASCII (a secret over 378 bytes needs ``CDN-HMAC``). Compared in constant time.

Anything else gets 401 and changes nothing; the reason (never the credential) is logged at
INFO. The header is parsed, its timestamp or Bearer token checked, before any of the body is
read; the signature, which covers the body, after. The body is bounded before it is parsed:
at most 64 KiB (413 above, read no further), within 10 s (408), not content-encoded (415),
UTF-8 JSON nested at most 4 deep, at most 1,000 values of at most 8 KiB each (400).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from typing import Any

from aiohttp import hdrs, web

from cdn_core.errors import PurgeError
from cdn_core.purge import MAX_VALUES, PurgeRule
from controlplane.admin_auth import (
    HMAC_SCHEME,
    Refusal,
    admissible,
    parse_authorization,
    sign_admin_request as sign_admin_request,
    verify,
)
from controlplane.agent import NodeAgent
from controlplane.purge_log import issue_purge, new_rule, purge_and_wait
from controlplane.store import StoreUnavailable

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024
BODY_READ_TIMEOUT_S = 10.0
MAX_JSON_DEPTH = 4  # {"values": [...]} is 2 deep
MAX_VALUE_BYTES = 8 * 1024

# A JSON string (possibly unterminated) or a bracket: brackets inside strings are skipped.
_JSON_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"?|[\[\]{}]', re.DOTALL)
_SURROGATE = re.compile("[\ud800-\udfff]")


def json_depth_within(text: str, limit: int) -> bool:
    """Whether ``text`` nests arrays and objects at most ``limit`` deep (it need not be JSON)."""
    depth = 0
    for token in _JSON_TOKENS.finditer(text):
        bracket = token.group()
        if bracket in ("[", "{"):
            depth += 1
            if depth > limit:
                return False
        elif bracket in ("]", "}"):
            depth = max(depth - 1, 0)  # stray closers buy no depth
    return True


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
        credentials = parse_authorization(request.headers.getall(hdrs.AUTHORIZATION, []))
        if isinstance(credentials, Refusal):
            return _refuse(request, credentials)
        refusal = admissible(
            credentials,
            secret=self._secret,
            peer=request.remote,
            now=time.time(),
            max_skew_s=self._agent.config.overlay.auth_max_skew_s,
        )
        if refusal is not None:
            return _refuse(request, refusal)
        body = await _read_body(request)
        if isinstance(body, web.Response):
            return body
        refusal = verify(
            credentials,
            secret=self._secret,
            method=request.method,
            path=request.path_qs,
            body=body,
        )
        if refusal is not None:
            return _refuse(request, refusal)
        try:
            rule, wait = _purge_request(body)
        except (ValueError, PurgeError) as exc:
            return _error(400, str(exc))
        return await self._issue(rule, wait=wait)

    async def _issue(self, rule: PurgeRule, *, wait: bool) -> web.Response:
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


async def _read_body(request: web.Request) -> bytes | web.Response:
    """The body, reading at most ``MAX_BODY_BYTES`` of it; or the response refusing it."""
    encodings = request.headers.getall(hdrs.CONTENT_ENCODING, [])
    if any(coding.strip(" \t").lower() != "identity" for coding in encodings):
        return _error(415, "the purge body must not be content-encoded", close=True)
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        return _too_large()
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(BODY_READ_TIMEOUT_S):
            while chunk := await request.content.read(MAX_BODY_BYTES + 1 - size):
                chunks.append(chunk)
                size += len(chunk)
                if size > MAX_BODY_BYTES:
                    return _too_large()
    except TimeoutError:
        return _error(408, "the purge body was not received in time", close=True)
    except (web.RequestPayloadError, ConnectionError):
        return _error(400, "the purge body could not be read", close=True)
    return b"".join(chunks)


def _purge_request(body: bytes) -> tuple[PurgeRule, bool]:
    """The rule and the ``wait`` flag of a purge body (raises ValueError or PurgeError)."""
    try:
        text = body.decode("utf-8-sig")  # RFC 8259 §8.1: a parser may ignore a leading BOM
    except UnicodeDecodeError:
        raise ValueError("the body must be UTF-8 JSON") from None
    if not json_depth_within(text, MAX_JSON_DEPTH):
        raise ValueError(f"the body nests arrays and objects more than {MAX_JSON_DEPTH} deep")
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError("expected a JSON object")
    rule = new_rule(_field(data, "kind", str), _values(data), soft=_soft(data))
    return rule, data.get("wait") is True


def _field(data: dict[str, Any], name: str, kind: type) -> Any:
    value = data.get(name)
    if not isinstance(value, kind):
        raise ValueError(f"{name!r} must be a {kind.__name__}")
    return value


def _values(data: dict[str, Any]) -> list[str]:
    values: list[Any] = _field(data, "values", list)
    if len(values) > MAX_VALUES:
        raise ValueError(f"'values' holds at most {MAX_VALUES} values (got {len(values)})")
    for value in values:
        if not isinstance(value, str):
            raise ValueError("'values' must be a list of strings")
        if _SURROGATE.search(value):
            raise ValueError("'values' must be Unicode text (no lone surrogates)")
        if len(value.encode()) > MAX_VALUE_BYTES:
            raise ValueError(f"a value is at most {MAX_VALUE_BYTES} bytes of UTF-8")
    return values


def _soft(data: dict[str, Any]) -> bool:
    soft = data.get("soft", False)
    if not isinstance(soft, bool):
        raise ValueError("'soft' must be true or false")
    return soft


def _refuse(request: web.Request, refusal: Refusal) -> web.Response:
    log.info("admin purge from %s refused: %s", request.remote, refusal.value)
    return _error(401, "authenticate with the cluster secret", auth=True)


def _too_large() -> web.Response:
    return _error(413, f"a purge body is at most {MAX_BODY_BYTES} bytes", close=True)


def _error(status: int, message: str, *, auth: bool = False, close: bool = False) -> web.Response:
    headers = {"WWW-Authenticate": f'{HMAC_SCHEME} realm="cdn-admin"'} if auth else None
    response = web.json_response({"error": message}, status=status, headers=headers)
    if close:
        response.force_close()
    return response
