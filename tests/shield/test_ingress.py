"""The shield's ingress: authenticated overlay hops only, loops refused, a clean origin."""

from __future__ import annotations

import time
from pathlib import Path

import aiohttp

from cdn_core.hop import cdn_id
from cdn_core.http import Headers
from cdn_core.overlay_auth import sign
from overlay.client import SKIP_AUTO_HEADERS
from tests.shield.conftest import HOST, SECRET, Origin, overlay_config, running

# What the test's aiohttp client would add on its own: the tag covers every end-to-end field.
UNSIGNED = SKIP_AUTO_HEADERS


def signed(
    node: str,
    target: str,
    route: tuple[str, ...],
    *,
    now: float | None = None,
    extra: dict[str, str] | None = None,
) -> dict[str, str]:
    """The fields of a hop from ``node``: ``extra`` (sent and signed) and the tag."""
    fields = sign(
        SECRET,
        method="GET",
        host=HOST,
        target=target,
        node=node,
        route=route,
        headers=Headers(extra or {}),
        now=time.time() if now is None else now,
    )
    return {"Host": HOST, **(extra or {}), **dict(fields)}


async def test_refuses_unauthenticated_traffic(
    origin: Origin, secret_file: Path, client: aiohttp.ClientSession
) -> None:
    config = overlay_config(origin.port, shields=1, edges=1, secret_file=secret_file)
    url = f"http://{config.node('shield-1').listen}/x"
    async with running(config, ["shield-1"]):
        cases = {
            "no tag": {"Host": HOST},
            "wrong secret": {
                "Host": HOST,
                **dict(
                    sign(
                        b"x" * 20,
                        method="GET",
                        host=HOST,
                        target="/x",
                        node="edge-1",
                        route=("shield-1",),
                        now=time.time(),
                    )
                ),
            },
            "replayed": signed("edge-1", "/x", ("shield-1",), now=time.time() - 120),
            "other target": signed("edge-1", "/y", ("shield-1",)),
            "unknown node": signed("mallory", "/x", ("shield-1",)),
            "not the next hop": signed("edge-1", "/x", ("shield-2",)),
        }
        for case, headers in cases.items():
            async with client.get(url, headers=headers) as response:
                assert response.status == 403, case
                assert response.headers["X-Overlay-Error"], case
    assert origin.seen == []


async def test_loop_gets_508(
    origin: Origin, secret_file: Path, client: aiohttp.ClientSession
) -> None:
    config = overlay_config(origin.port, shields=1, edges=1, secret_file=secret_file)
    url = f"http://{config.node('shield-1').listen}/x"
    async with running(config, ["shield-1"]):
        headers = signed("edge-1", "/x", ("shield-1",))
        looped = {**headers, "CDN-Loop": f"edge-1.ovl, {cdn_id('ovl', 'shield-1')}"}
        async with client.get(url, headers=looped) as response:
            assert response.status == 508
        too_far = {**headers, "CDN-Loop": "a.ovl, b.ovl, c.ovl, d.ovl"}
        async with client.get(url, headers=too_far) as response:
            assert response.status == 508
    assert origin.seen == []


async def test_valid_hop_reaches_a_clean_origin(
    origin: Origin, secret_file: Path, client: aiohttp.ClientSession
) -> None:
    config = overlay_config(origin.port, shields=1, edges=1, secret_file=secret_file)
    url = f"http://{config.node('shield-1').listen}/x"
    async with running(config, ["shield-1"]):
        headers = signed("edge-1", "/x", ("shield-1",), extra={"X-Forwarded-For": "127.10.0.9"})
        async with client.get(url, headers=headers, skip_auto_headers=UNSIGNED) as response:
            assert response.status == 200
            assert await response.text() == "body of /x\n"
            assert "shield-1" in response.headers["Cache-Status"]
    [(path, seen)] = origin.seen
    assert path == "/x"
    assert not [k for k in seen if k.lower().startswith("x-overlay-")]
    assert "shield-1" not in repr(seen) and "edge-1" not in repr(seen)
    assert seen["X-Forwarded-For"].startswith("127.10.0.9")
    assert seen["CDN-Loop"] == "ovl"


async def test_a_hop_altered_after_signing_is_refused(
    origin: Origin, secret_file: Path, client: aiohttp.ClientSession
) -> None:
    """The tag covers the forwarded fields: a captured hop replayed inside its time window with
    a field added, changed or removed is refused (a field the origin may reflect would
    otherwise poison the shield's cache)."""
    config = overlay_config(origin.port, shields=1, edges=1, secret_file=secret_file)
    url = f"http://{config.node('shield-1').listen}/x"
    captured = signed("edge-1", "/x", ("shield-1",), extra={"X-Forwarded-For": "127.10.0.9"})
    altered = {
        "added": {**captured, "X-Forwarded-Host": "evil.example"},
        "changed": {**captured, "X-Forwarded-For": "203.0.113.66"},
        "removed": {k: v for k, v in captured.items() if k != "X-Forwarded-For"},
    }
    async with running(config, ["shield-1"]):
        for case, headers in altered.items():
            async with client.get(url, headers=headers, skip_auto_headers=UNSIGNED) as response:
                assert response.status == 403, case
                assert response.headers["X-Overlay-Error"] == "bad-tag", case
        async with client.get(url, headers=captured, skip_auto_headers=UNSIGNED) as response:
            assert response.status == 200
    assert len(origin.seen) == 1
