"""The demo origin, served by a real aiohttp server on 127.0.0.1 (pytest-aiohttp)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

import aiohttp
import pytest

from infra.demo_origin import (
    MAX_SIZE_BYTES,
    MIN_SIZE_BYTES,
    CachePolicy,
    build_catalogue,
    build_demo_origin,
    choose_language,
    etag_matches,
    object_body,
    object_etag,
)
from tests.conftest import free_port

OBJECTS = 200


@pytest.fixture
async def client(aiohttp_client):
    return await aiohttp_client(build_demo_origin(objects=OBJECTS))


def first(policy: CachePolicy):
    return next(obj for obj in build_catalogue(OBJECTS) if obj.policy is policy)


class TestCatalogue:
    def test_is_deterministic(self):
        assert build_catalogue(50, seed=3) == build_catalogue(50, seed=3)
        assert build_catalogue(50, seed=3) != build_catalogue(50, seed=4)

    def test_sizes_span_kilobytes_to_megabytes(self):
        sizes = [obj.size_bytes for obj in build_catalogue(OBJECTS)]
        assert all(MIN_SIZE_BYTES <= size <= MAX_SIZE_BYTES for size in sizes)
        assert min(sizes) < 4 * 1024
        assert max(sizes) > 2 * 1024 * 1024

    def test_every_policy_occurs(self):
        policies = {obj.policy for obj in build_catalogue(OBJECTS)}
        assert policies == set(CachePolicy)

    def test_body_depends_on_id_and_version(self):
        obj = build_catalogue(3)[2]
        assert len(object_body(obj)) == obj.size_bytes
        assert object_body(obj) == object_body(obj, 1)
        assert object_body(obj, 2) != object_body(obj, 1)
        assert object_etag(obj, 2) != object_etag(obj, 1)

    def test_bad_size_is_refused(self):
        with pytest.raises(ValueError, match="at least one object"):
            build_demo_origin(objects=0)


class TestNegotiationHelpers:
    @pytest.mark.parametrize(
        ("header", "language"),
        [
            (None, "en"),
            ("fr-CH, fr;q=0.9, en;q=0.8", "fr"),
            ("de;q=0.5, ja;q=0.7", "ja"),
            ("es, it", "en"),
            ("fr;q=banana, de", "de"),
        ],
    )
    def test_choose_language(self, header, language):
        assert choose_language(header) == language

    def test_etag_matching_is_weak(self):
        assert etag_matches('"a", W/"b"', '"b"')
        assert etag_matches("*", '"x"')
        assert not etag_matches('"a"', '"b"')


class TestObjects:
    async def test_catalogue_sizes_match_bodies(self, client):
        catalogue = await (await client.get("/catalogue")).json()
        assert catalogue["count"] == OBJECTS
        for entry in catalogue["objects"][:30]:
            response = await client.get(entry["path"])
            assert response.status == 200
            assert len(await response.read()) == entry["size_bytes"]

    async def test_cacheable_object_headers(self, client):
        obj = first(CachePolicy.LONG)
        response = await client.get(f"/obj/{obj.id}")
        assert await response.read() == object_body(obj)
        assert response.headers["Cache-Control"].startswith("public, max-age=")
        assert response.headers["ETag"] == object_etag(obj)
        assert response.headers["Last-Modified"].endswith(" GMT")
        assert response.headers["Surrogate-Key"] == (
            f"obj-{obj.id} size-{obj.size_class} group-{obj.id % 10}"
        )

    @pytest.mark.parametrize(
        ("policy", "fragment"),
        [
            (CachePolicy.NO_STORE, "no-store"),
            (CachePolicy.SHORT, "stale-while-revalidate="),
            (CachePolicy.SHARED, "s-maxage="),
        ],
    )
    async def test_other_policies(self, client, policy, fragment):
        response = await client.get(f"/obj/{first(policy).id}")
        assert fragment in response.headers["Cache-Control"]

    async def test_if_none_match_gives_304(self, client):
        obj = first(CachePolicy.LONG)
        etag = (await client.get(f"/obj/{obj.id}")).headers["ETag"]
        response = await client.get(f"/obj/{obj.id}", headers={"If-None-Match": etag})
        assert response.status == 304
        assert response.headers["ETag"] == etag
        assert "Cache-Control" in response.headers
        assert await response.read() == b""
        stale = await client.get(f"/obj/{obj.id}", headers={"If-None-Match": '"old"'})
        assert stale.status == 200

    async def test_if_modified_since(self, client):
        obj = first(CachePolicy.LONG)
        last_modified = (await client.get(f"/obj/{obj.id}")).headers["Last-Modified"]
        response = await client.get(f"/obj/{obj.id}", headers={"If-Modified-Since": last_modified})
        assert response.status == 304
        old = await client.get(
            f"/obj/{obj.id}", headers={"If-Modified-Since": "Mon, 01 Jan 2001 00:00:00 GMT"}
        )
        assert old.status == 200

    async def test_head_has_length_and_no_body(self, client):
        obj = first(CachePolicy.LONG)
        response = await client.head(f"/obj/{obj.id}")
        assert response.status == 200
        assert int(response.headers["Content-Length"]) == obj.size_bytes

    @pytest.mark.parametrize("path", ["/obj/200", "/obj/-1", "/obj/abc", "/obj/", "/nothing"])
    async def test_bad_ids_are_404(self, client, path):
        assert (await client.get(path)).status == 404

    async def test_bump_changes_version_etag_and_body(self, client):
        obj = first(CachePolicy.LONG)
        before = await client.get(f"/obj/{obj.id}")
        etag = before.headers["ETag"]
        assert (await client.post("/control", json={"bump": obj.id})).status == 200
        after = await client.get(f"/obj/{obj.id}", headers={"If-None-Match": etag})
        assert after.status == 200
        assert after.headers["ETag"] == object_etag(obj, 2)
        assert await after.read() == object_body(obj, 2)


class TestVariants:
    async def test_accept_language_variant(self, client):
        french = await client.get("/i18n/3", headers={"Accept-Language": "fr, en;q=0.5"})
        english = await client.get("/i18n/3")
        assert french.headers["Vary"] == "Accept-Language"
        assert french.headers["Content-Language"] == "fr"
        assert (await french.text()).startswith("Bonjour")
        assert english.headers["Content-Language"] == "en"
        assert french.headers["ETag"] != english.headers["ETag"]

    async def test_variant_304(self, client):
        etag = (await client.get("/i18n/3", headers={"Accept-Language": "de"})).headers["ETag"]
        again = await client.get(
            "/i18n/3", headers={"Accept-Language": "de", "If-None-Match": etag}
        )
        assert again.status == 304


class TestSlowAndFailing:
    async def test_slow_sleeps_at_least_what_was_asked(self, client):
        started = time.monotonic()
        response = await client.get("/slow?ms=150")
        assert time.monotonic() - started >= 0.150
        assert response.headers["X-Demo-Slept-Ms"] == "150"

    async def test_slow_is_bounded(self, client):
        # Only the parameter check is exercised: a 10 s sleep would slow the suite.
        assert (await client.get("/slow?ms=-5")).status == 400
        assert (await client.get("/slow?ms=soon")).status == 400

    async def test_fail_endpoint(self, client):
        response = await client.get("/fail?status=502")
        assert response.status == 502
        assert response.headers["Cache-Control"] == "no-store"
        assert (await client.get("/fail")).status == 503
        assert (await client.get("/fail?status=200")).status == 400

    async def test_control_fail_switch(self, client):
        obj = first(CachePolicy.SHORT)
        assert (await client.post("/control", json={"fail": True})).status == 200
        failing = await client.get(f"/obj/{obj.id}")
        assert failing.status == 503
        assert failing.headers["Cache-Control"] == "no-store"
        assert (await client.get("/stats")).status == 200  # admin paths keep working
        await client.post("/control", json={"fail": False})
        assert (await client.get(f"/obj/{obj.id}")).status == 200

    async def test_control_delay_switch(self, client):
        state = await (await client.post("/control", json={"delay_ms": 120})).json()
        assert state["delay_ms"] == 120
        started = time.monotonic()
        assert (await client.get("/healthz")).status == 200
        assert time.monotonic() - started >= 0.120
        await client.post("/control", json={"delay_ms": 0})

    @pytest.mark.parametrize(
        ("body", "message"),
        [
            ({"fail": "yes"}, "'fail' must be"),
            ({"delay_ms": 20_000}, "'delay_ms' must be"),
            ({"delay_ms": True}, "'delay_ms' must be"),
            ({"bump": 999}, "'bump' must be"),
            ({"explode": True}, "unknown key"),
            ([1, 2], "JSON object"),
        ],
    )
    async def test_bad_control_is_refused(self, client, body, message):
        response = await client.post("/control", json=body)
        assert response.status == 400
        assert message in (await response.json())["error"]
        assert await (await client.get("/control")).json() == {
            "fail": False,
            "delay_ms": 0,
            "versions": {},
        }

    async def test_control_refuses_non_json(self, client):
        assert (await client.post("/control", data=b"\xff{")).status == 400


class TestStats:
    async def test_counts_by_kind_and_status(self, client):
        await client.get("/obj/1")
        await client.get("/obj/2")
        await client.get("/obj/9999")
        await client.get("/i18n/1")
        await client.get("/catalogue")
        await client.post("/control", json={"delay_ms": 0})
        stats = await (await client.get("/stats")).json()
        assert stats["total"] == 5
        assert stats["by_kind"]["obj"] == 3
        assert stats["by_kind"]["i18n"] == 1
        assert stats["by_status"] == {"200": 4, "404": 1}
        assert stats["bytes_sent"] > 0

    async def test_reset(self, client):
        await client.get("/obj/1")
        reset = await (await client.post("/stats/reset")).json()
        assert reset["total"] == 0
        assert (await (await client.get("/stats")).json())["total"] == 0


def test_runs_as_a_module():
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "infra.demo_origin", "--listen", f"127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    async def fetch_when_up() -> int:
        async with aiohttp.ClientSession() as session:
            for _ in range(100):
                try:
                    async with session.get(f"http://127.0.0.1:{port}/healthz") as response:
                        return response.status
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.1)
        raise AssertionError("the demo origin did not start within 10 s")

    try:
        assert asyncio.run(fetch_when_up()) == 200
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0


def test_module_refuses_bad_listen():
    result = subprocess.run(
        [sys.executable, "-m", "infra.demo_origin", "--listen", "nowhere"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "HOST:PORT" in result.stderr
