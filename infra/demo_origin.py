"""The lab's demo origin: synthetic, deterministic content with realistic cache headers.

Objects ``/obj/<id>`` (0 <= id < N) have sizes from 1 KiB to 8 MiB (most are small), bytes
derived from the id and version (so any node can check a body), and one of four cache policies:
long-lived ``max-age``, shared-cache ``s-maxage``, short TTL with ``stale-while-revalidate`` and
``stale-if-error``, and ``no-store``. Each carries a strong ``ETag``, ``Last-Modified`` and a
``Surrogate-Key`` (``obj-<id> size-<class> group-<k>``), and answers conditionals with 304.

``/i18n/<id>`` varies on Accept-Language; ``/slow?ms=N`` and ``/fail?status=N`` are slow or
failing on demand; ``POST /control`` makes every response slow or failing (stale-if-error demos)
and can bump an object's version (purge demos). ``/stats`` counts what was served, so a load test
can compute origin offload; ``/catalogue`` lists the objects for a Zipf popularity law.

Run it alone with ``python -m infra.demo_origin --listen 127.0.0.1:9000``.
"""

from __future__ import annotations

import argparse
import asyncio
import enum
import hashlib
import json
import random
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any

import uvloop
from aiohttp import web

KIB = 1024
MIB = 1024 * KIB
MIN_SIZE_BYTES = 1 * KIB
MAX_SIZE_BYTES = 8 * MIB
MAX_DELAY_MS = 10_000
LAST_MODIFIED_BASE = 1_700_000_000  # 2023-11-14, so every Last-Modified is in the past
LANGUAGES = ("en", "fr", "de", "ja")
KINDS = ("obj", "i18n", "slow", "fail", "catalogue", "healthz")
_BLOCK_BYTES = 4096
_GREETINGS = {"en": "Hello", "fr": "Bonjour", "de": "Hallo", "ja": "Konnichiwa"}


class CachePolicy(enum.Enum):
    LONG = "long"
    SHARED = "shared"
    SHORT = "short"
    NO_STORE = "no-store"


@dataclass(frozen=True, slots=True, kw_only=True)
class DemoObject:
    id: int
    size_bytes: int
    policy: CachePolicy
    cache_control: str
    group: int

    @property
    def size_class(self) -> str:
        if self.size_bytes < 64 * KIB:
            return "small"
        return "medium" if self.size_bytes < MIB else "large"

    @property
    def surrogate_key(self) -> str:
        return f"obj-{self.id} size-{self.size_class} group-{self.group}"


def _policy(rng: random.Random) -> tuple[CachePolicy, str]:
    draw = rng.random()
    if draw < 0.10:
        return CachePolicy.NO_STORE, "no-store"
    if draw < 0.25:
        return CachePolicy.SHORT, "public, max-age=5, stale-while-revalidate=30, stale-if-error=600"
    if draw < 0.40:
        s_maxage = rng.choice((300, 3600))
        return CachePolicy.SHARED, f"public, max-age=60, s-maxage={s_maxage}"
    return CachePolicy.LONG, f"public, max-age={rng.choice((60, 300, 3600, 86400))}"


def build_catalogue(count: int, seed: int = 0) -> tuple[DemoObject, ...]:
    """``count`` objects, the same for the same seed; sizes skewed toward small ones."""
    objects = []
    for object_id in range(count):
        rng = random.Random(f"demo-origin:{seed}:{object_id}")
        exponent = 13 * rng.random() ** 2.5  # 1 KiB * 2**13 = 8 MiB; about 10 % above 1 MiB
        size = min(MAX_SIZE_BYTES, int(MIN_SIZE_BYTES * 2**exponent))
        policy, cache_control = _policy(rng)
        objects.append(
            DemoObject(
                id=object_id,
                size_bytes=size,
                policy=policy,
                cache_control=cache_control,
                group=object_id % 10,
            )
        )
    return tuple(objects)


def _digest(object_id: int, version: int) -> bytes:
    return hashlib.sha256(f"demo-origin:{object_id}:v{version}".encode()).digest()


def object_body(obj: DemoObject, version: int = 1) -> bytes:
    """The bytes of ``obj`` at ``version``: a 4 KiB block derived from both, repeated."""
    digest = _digest(obj.id, version)
    block = (digest * (_BLOCK_BYTES // len(digest)))[:_BLOCK_BYTES]
    return (block * (obj.size_bytes // _BLOCK_BYTES + 1))[: obj.size_bytes]


def object_etag(obj: DemoObject, version: int = 1) -> str:
    return f'"{obj.id}-v{version}-{_digest(obj.id, version).hex()[:12]}"'


def object_last_modified(obj: DemoObject, version: int = 1) -> float:
    return float(LAST_MODIFIED_BASE + obj.id * 60 + (version - 1) * 86400)


def etag_matches(if_none_match: str, etag: str) -> bool:
    """Weak comparison of ``If-None-Match`` against our ETag (RFC 9110 §13.1.2)."""
    candidates = [tag.strip() for tag in if_none_match.split(",")]
    opaque = etag.removeprefix("W/")
    return any(tag == "*" or tag.removeprefix("W/") == opaque for tag in candidates)


def choose_language(accept_language: str | None) -> str:
    """The supported language the client prefers most (q-values honoured), else English."""
    best, best_q = LANGUAGES[0], 0.0
    for item in (accept_language or "").split(","):
        tag, _, params = item.strip().partition(";")
        primary = tag.strip().lower().split("-")[0]
        try:
            q = float(params.strip().removeprefix("q=")) if params.strip() else 1.0
        except ValueError:
            continue
        if primary in LANGUAGES and q > best_q:
            best, best_q = primary, q
    return best


# --- the aiohttp application ----------------------------------------------------------------


@dataclass(slots=True)
class OriginState:
    """What can change while the origin runs: the fail/delay switch, versions and counters."""

    catalogue: tuple[DemoObject, ...]
    fail: bool = False
    delay_ms: int = 0
    versions: dict[int, int] = field(default_factory=dict)
    by_kind: Counter[str] = field(default_factory=Counter)
    by_status: Counter[int] = field(default_factory=Counter)
    bytes_sent: int = 0

    def version(self, object_id: int) -> int:
        return self.versions.get(object_id, 1)

    def stats(self) -> dict[str, Any]:
        return {
            "total": sum(self.by_kind.values()),
            "by_kind": {kind: self.by_kind[kind] for kind in (*KINDS, "other")},
            "by_status": {str(status): n for status, n in sorted(self.by_status.items())},
            "bytes_sent": self.bytes_sent,
        }

    def reset_stats(self) -> None:
        self.by_kind.clear()
        self.by_status.clear()
        self.bytes_sent = 0


ORIGIN_STATE = web.AppKey("origin_state", OriginState)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_ADMIN_PATHS = frozenset({"/control", "/stats", "/stats/reset"})


def _kind(path: str) -> str:
    first = path.strip("/").split("/")[0]
    return first if first in KINDS else "other"


@web.middleware
async def _switch_and_count(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path in _ADMIN_PATHS:
        return await handler(request)
    state = request.app[ORIGIN_STATE]
    state.by_kind[_kind(request.path)] += 1
    if state.delay_ms:
        await asyncio.sleep(state.delay_ms / 1000)
    try:
        response = _failing() if state.fail else await handler(request)
    except web.HTTPException as exc:
        state.by_status[exc.status] += 1
        raise
    state.by_status[response.status] += 1
    if isinstance(response, web.Response) and response.body is not None:
        state.bytes_sent += response.content_length or 0
    return response


def _failing() -> web.Response:
    return web.Response(
        status=503,
        text='demo origin: failing on purpose (POST /control {"fail": false} to stop)\n',
        headers={"Cache-Control": "no-store", "Retry-After": "1"},
    )


def _object(request: web.Request) -> DemoObject:
    state = request.app[ORIGIN_STATE]
    raw = request.match_info["id"]
    if not raw.isdigit() or int(raw) >= len(state.catalogue):
        raise web.HTTPNotFound(text=f"no object {raw!r}: ids are 0..{len(state.catalogue) - 1}\n")
    return state.catalogue[int(raw)]


def _is_not_modified(request: web.Request, etag: str, last_modified: float) -> bool:
    if_none_match = request.headers.get("If-None-Match")
    if if_none_match is not None:  # it wins over If-Modified-Since (RFC 9110 §13.2.2)
        return etag_matches(if_none_match, etag)
    since = request.if_modified_since
    return since is not None and last_modified <= since.timestamp()


def _validated_response(
    request: web.Request, body: bytes, headers: dict[str, str], last_modified: float
) -> web.Response:
    headers["Last-Modified"] = formatdate(last_modified, usegmt=True)
    if _is_not_modified(request, headers["ETag"], last_modified):
        headers.pop("Content-Type", None)
        return web.Response(status=304, headers=headers)
    return web.Response(body=body, headers=headers)


async def _get_object(request: web.Request) -> web.Response:
    obj = _object(request)
    version = request.app[ORIGIN_STATE].version(obj.id)
    headers = {
        "Cache-Control": obj.cache_control,
        "ETag": object_etag(obj, version),
        "Surrogate-Key": obj.surrogate_key,
        "Content-Type": "application/octet-stream",
    }
    last_modified = object_last_modified(obj, version)
    return _validated_response(request, object_body(obj, version), headers, last_modified)


async def _get_i18n(request: web.Request) -> web.Response:
    obj = _object(request)
    version = request.app[ORIGIN_STATE].version(obj.id)
    language = choose_language(request.headers.get("Accept-Language"))
    body = f"{_GREETINGS[language]} from demo object {obj.id} (v{version})\n".encode()
    headers = {
        "Cache-Control": "public, max-age=300",
        "Vary": "Accept-Language",
        "Content-Language": language,
        "ETag": f'"{obj.id}-v{version}-{language}"',
        "Surrogate-Key": f"i18n-{obj.id} obj-{obj.id} group-{obj.group}",
        "Content-Type": "text/plain; charset=utf-8",
    }
    return _validated_response(request, body, headers, object_last_modified(obj, version))


def _int_param(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise web.HTTPBadRequest(text=f"{name} must be an integer in {low}..{high} (got {raw!r})\n")
    return value


async def _get_slow(request: web.Request) -> web.Response:
    asked = _int_param(request, "ms", 1000, 0, 10**9)
    slept_ms = min(asked, MAX_DELAY_MS)
    await asyncio.sleep(slept_ms / 1000)
    return web.Response(
        text=f"slept {slept_ms} ms\n",
        headers={"Cache-Control": "public, max-age=30", "X-Demo-Slept-Ms": str(slept_ms)},
    )


async def _get_fail(request: web.Request) -> web.Response:
    status = _int_param(request, "status", 503, 400, 599)
    return web.Response(
        status=status,
        text=f"failing with {status} on request\n",
        headers={"Cache-Control": "no-store"},
    )


async def _get_healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"}, headers={"Cache-Control": "no-store"})


async def _get_catalogue(request: web.Request) -> web.Response:
    state = request.app[ORIGIN_STATE]
    objects = [
        {
            "id": obj.id,
            "path": f"/obj/{obj.id}",
            "size_bytes": obj.size_bytes,
            "cache_control": obj.cache_control,
            "policy": obj.policy.value,
            "version": state.version(obj.id),
        }
        for obj in state.catalogue
    ]
    return web.json_response(
        {"count": len(objects), "objects": objects}, headers={"Cache-Control": "no-store"}
    )


def _control_json(state: OriginState) -> dict[str, Any]:
    bumped = {str(object_id): v for object_id, v in sorted(state.versions.items())}
    return {"fail": state.fail, "delay_ms": state.delay_ms, "versions": bumped}


def _optional_int(data: dict[str, Any], key: str, low: int, high: int) -> int | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"'{key}' must be an integer in {low}..{high} (got {value!r})")
    return value


def apply_control(state: OriginState, data: object) -> None:
    """Apply a ``POST /control`` body; a bad one raises ``ValueError`` and changes nothing."""
    if not isinstance(data, dict):
        raise ValueError('expected a JSON object such as {"fail": true, "delay_ms": 200}')
    unknown = sorted(set(data) - {"fail", "delay_ms", "bump"})
    if unknown:
        raise ValueError(f"unknown key(s) {', '.join(unknown)} (allowed: fail, delay_ms, bump)")
    fail = data.get("fail")
    if fail is not None and not isinstance(fail, bool):
        raise ValueError(f"'fail' must be true or false (got {fail!r})")
    delay_ms = _optional_int(data, "delay_ms", 0, MAX_DELAY_MS)
    bump = _optional_int(data, "bump", 0, len(state.catalogue) - 1)
    if fail is not None:
        state.fail = fail
    if delay_ms is not None:
        state.delay_ms = delay_ms
    if bump is not None:
        state.versions[bump] = state.version(bump) + 1


async def _post_control(request: web.Request) -> web.Response:
    state = request.app[ORIGIN_STATE]
    try:
        apply_control(state, json.loads(await request.read()))
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
        return web.json_response({"error": str(exc)}, status=400)
    return web.json_response(_control_json(state))


async def _get_control(request: web.Request) -> web.Response:
    return web.json_response(_control_json(request.app[ORIGIN_STATE]))


async def _get_stats(request: web.Request) -> web.Response:
    return web.json_response(
        request.app[ORIGIN_STATE].stats(), headers={"Cache-Control": "no-store"}
    )


async def _post_stats_reset(request: web.Request) -> web.Response:
    state = request.app[ORIGIN_STATE]
    state.reset_stats()
    return web.json_response(state.stats())


def build_demo_origin(objects: int = 200, seed: int = 0) -> web.Application:
    if objects < 1:
        raise ValueError(f"the demo origin needs at least one object (got {objects})")
    app = web.Application(middlewares=[_switch_and_count], client_max_size=64 * KIB)
    app[ORIGIN_STATE] = OriginState(catalogue=build_catalogue(objects, seed))
    app.router.add_get("/obj/{id}", _get_object)
    app.router.add_get("/i18n/{id}", _get_i18n)
    app.router.add_get("/slow", _get_slow)
    app.router.add_get("/fail", _get_fail)
    app.router.add_get("/healthz", _get_healthz)
    app.router.add_get("/catalogue", _get_catalogue)
    app.router.add_get("/control", _get_control)
    app.router.add_post("/control", _post_control)
    app.router.add_get("/stats", _get_stats)
    app.router.add_post("/stats/reset", _post_stats_reset)
    return app


def _listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(
            f"expected HOST:PORT such as 127.0.0.1:9000 (got {value!r})"
        )
    return host, int(port)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m infra.demo_origin", description="The lab's synthetic demo origin."
    )
    parser.add_argument("--listen", type=_listen, default=("127.0.0.1", 9000), metavar="HOST:PORT")
    parser.add_argument("--objects", type=int, default=200, help="catalogue size (default 200)")
    parser.add_argument("--seed", type=int, default=0, help="catalogue seed (default 0)")
    args = parser.parse_args(argv)
    if args.objects < 1:
        parser.error("--objects must be at least 1")
    host, port = args.listen
    web.run_app(
        build_demo_origin(args.objects, args.seed),
        host=host,
        port=port,
        access_log=None,
        loop=uvloop.new_event_loop(),
    )


if __name__ == "__main__":
    main()
