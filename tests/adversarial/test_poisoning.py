"""Cache poisoning probes: no clean client ever gets a response shaped by another client's
unkeyed input, and a captured overlay hop cannot be replayed with its fields changed.

The origin reflects the request fields named in ``?h=`` into a cacheable body. An attacker
primes a URL with an evil value in an unkeyed field (or a Host trick); then clean clients GET
the same URL through both edges (the second edge reaches the first one's shield cache on the
``www.cdn.test`` path) and must not see the evil value.

The hop replay: ``edge-3`` believes :class:`HopRecorder` is ``shield-1``, so the recorder keeps
real signed hops. Replayed to the real shield within the skew window, the unmodified hop is
served (the design accepts replays, see :mod:`cdn_core.overlay_auth`); a hop with a field added,
changed or removed, or with another target, is refused with 403 and ``X-Overlay-Error`` and
the origin sees nothing of it.
"""

from __future__ import annotations

import itertools

import pytest

from tests.adversarial.http_harness import (
    DIRECT,
    HOSTS,
    SHIELD_SOURCE,
    SITE,
    HttpOverlay,
    Response,
    exchange,
    get,
)

ATTACKER = "127.0.9.66"
VICTIM = "127.0.9.7"
_ids = itertools.count()

# Unkeyed fields and an evil value each; "evil" marks what must never reach a victim.
FIELDS = {
    "X-Forwarded-Host": "evil.example",
    "X-Forwarded-Proto": "evilproto",
    "X-Forwarded-Port": "evil1337",
    "X-Forwarded-Prefix": "/evil",
    "X-Forwarded-Server": "evil.example",
    "Forwarded": "for=6.6.6.6;host=evil.example;proto=https",
    "X-Original-URL": "/evil",
    "X-Rewrite-URL": "/evil",
    "X-Original-Host": "evil.example",
    "X-Host": "evil.example",
    "X-HTTP-Method-Override": "EVIL",
    "X-HTTP-Method": "EVIL",
    "X-Method-Override": "EVIL",
    "X-Real-IP": "evil-6.6.6.6",
    "X-Forwarded-For": "evil-6.6.6.6",
    "X-Overlay-Poison": "evil",
    "X-Overlay-Route": "evil",
}


def tag(host: str) -> str:
    return "shield" if host == SITE else "direct"


def reflect_target(name: str, *reflected: str) -> str:
    query = "&".join(f"h={h}" for h in reflected)
    return f"/reflect/p-{name}-{next(_ids)}?{query}"


def attack(overlay: HttpOverlay, edge: str, raw: bytes) -> Response | None:
    result = exchange(overlay.edge(edge), raw, source=ATTACKER)
    return result.responses[0] if result.responses else None


def assert_clean(overlay: HttpOverlay, host: str, target: str, evil: str) -> None:
    """Clean GETs of ``target`` through both edges: 200 and nothing of ``evil``."""
    for edge in overlay.EDGES:
        response = get(overlay.edge(edge), host, target, source=VICTIM)
        assert response.status == 200, response
        body = response.body.decode("latin-1")
        prefix = f"echo GET {target} "
        assert body.startswith(prefix), body
        reflected = body[len(prefix) :]  # host=... and the reflected fields
        assert evil.lower() not in reflected.lower(), f"{edge} served a poisoned response: {body!r}"


@pytest.mark.parametrize("attacker_edge", ["edge-1", "edge-2"])
@pytest.mark.parametrize("host", HOSTS, ids=["shield", "direct"])
@pytest.mark.parametrize("name", list(FIELDS))
def test_unkeyed_field_does_not_poison(
    name: str, host: str, attacker_edge: str, http_overlay: HttpOverlay
) -> None:
    evil = FIELDS[name]
    target = reflect_target(name.lower(), name.lower())
    raw = f"GET {target} HTTP/1.1\r\nHost: {host}\r\n{name}: {evil}\r\n\r\n".encode()
    attack(http_overlay, attacker_edge, raw)
    assert_clean(http_overlay, host, target, evil.split(";")[0])


ALL_AT_ONCE = "".join(f"{k}: {v}\r\n" for k, v in FIELDS.items())


@pytest.mark.parametrize("host", HOSTS, ids=["shield", "direct"])
def test_all_unkeyed_fields_at_once_do_not_poison(host: str, http_overlay: HttpOverlay) -> None:
    target = reflect_target("all", *(k.lower() for k in FIELDS))
    raw = f"GET {target} HTTP/1.1\r\nHost: {host}\r\n{ALL_AT_ONCE}\r\n".encode()
    attack(http_overlay, "edge-1", raw)
    assert_clean(http_overlay, host, target, "evil")


HOST_TRICKS = {
    # id: (request line and Host template; {T} target, {H} host), the evil marker
    "absform-evil-host": ("GET http://{H}{T} HTTP/1.1\r\nHost: evil.example\r\n", "evil"),
    "absform-port": ("GET http://{H}:1337{T} HTTP/1.1\r\nHost: {H}:1337\r\n", "1337"),
    "host-port": ("GET {T} HTTP/1.1\r\nHost: {H}:1337\r\n", "1337"),
    "host-upper-dot": ("GET {T} HTTP/1.1\r\nHost: {U}.\r\n", "{U}"),
    "host-xfh": ("GET {T} HTTP/1.1\r\nHost: {H}\r\nX-Forwarded-Host: evil.example\r\n", "evil"),
}


@pytest.mark.parametrize("host", HOSTS, ids=["shield", "direct"])
@pytest.mark.parametrize("trick", list(HOST_TRICKS))
def test_host_tricks_do_not_poison(trick: str, host: str, http_overlay: HttpOverlay) -> None:
    template, evil = HOST_TRICKS[trick]
    target = reflect_target(trick, "host", "x-forwarded-host")
    head = template.replace("{T}", target).replace("{H}", host).replace("{U}", host.upper())
    attack(http_overlay, "edge-1", (head + "\r\n").encode())
    marker = evil.replace("{U}", host.upper())
    for edge in http_overlay.EDGES:
        response = get(http_overlay.edge(edge), host, target, source=VICTIM)
        assert response.status == 200, response
        body = response.body.decode("latin-1")
        assert body == f"echo GET {target} host={host} host={host} x-forwarded-host=<absent>\n", (
            f"{edge} served a response shaped by {trick!r}: {body!r}"
        )
        if marker.islower():
            assert marker not in body.split(target, 1)[1]


# -- what an edge sends to its shield -------------------------------------------------------------


def capture(overlay: HttpOverlay, target: str, *fields: str) -> bytes:
    """The hop edge-3 sends (to the recorder it takes for shield-1) for a GET of ``target``."""
    extra = "".join(f"{f}\r\n" for f in fields)
    raw = f"GET {target} HTTP/1.1\r\nHost: {SITE}\r\n{extra}\r\n".encode()
    result = exchange(overlay.edge("edge-3"), raw, source=ATTACKER)
    assert result.responses and result.responses[0].status == 200, result.describe()
    hops = overlay.recorder.captured(f" {target} ".encode())
    assert len(hops) == 1, f"edge-3 sent {len(hops)} hops for {target}:\n{overlay.log('edge-3')}"
    return hops[0]


def hop_fields(hop: bytes) -> list[tuple[str, str]]:
    head = hop.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    pairs = []
    for line in head.split("\r\n")[1:]:
        name, _, value = line.partition(":")
        pairs.append((name.strip().lower(), value.strip()))
    return pairs


def test_client_overlay_fields_never_reach_the_shield(http_overlay: HttpOverlay) -> None:
    target = "/reflect/p-hop-overlay-fields?h=x-overlay-poison"
    hop = capture(
        http_overlay,
        target,
        "X-Overlay-Route: evil",
        "X-Overlay-Node: edge-1",
        "X-Overlay-Time: 1",
        "X-Overlay-Auth: v1=" + "0" * 64,
        "X-Overlay-Poison: evil",
    )
    overlay = {k: v for k, v in hop_fields(hop) if k.startswith("x-overlay-")}
    assert set(overlay) <= {"x-overlay-node", "x-overlay-time", "x-overlay-route", "x-overlay-auth"}
    assert overlay["x-overlay-node"] == "edge-3", hop
    assert overlay["x-overlay-route"] == "shield-1", hop
    assert b"evil" not in hop.lower(), hop


def replay(overlay: HttpOverlay, hop: bytes) -> Response:
    result = exchange(overlay.shield, hop, source=ATTACKER)
    assert result.responses, result.describe()
    return result.responses[0]


def edit_hop(hop: bytes, edit: str, target: str) -> bytes:
    head, sep, body = hop.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    if edit == "added-field":
        lines.insert(2, b"X-Forwarded-Host: evil.example")
    elif edit == "changed-xff":
        lines = [
            b"x-forwarded-for: 6.6.6.6" if ln.lower().startswith(b"x-forwarded-for:") else ln
            for ln in lines
        ]
    elif edit == "changed-via":
        lines = [b"via: 1.1 evil" if ln.lower().startswith(b"via:") else ln for ln in lines]
    elif edit == "removed-xff":
        lines = [ln for ln in lines if not ln.lower().startswith(b"x-forwarded-for:")]
    elif edit == "changed-target":
        lines[0] = lines[0].replace(target.encode(), (target + "&evil=1").encode())
    else:
        raise AssertionError(edit)
    edited = b"\r\n".join(lines) + sep + body
    assert edited != hop, edit
    return edited


def test_unmodified_hop_replay_is_served(http_overlay: HttpOverlay) -> None:
    """The control: a captured hop is a valid hop (the design accepts a replay in the window)."""
    target = "/reflect/p-hop-control?h=x-forwarded-host"
    hop = capture(http_overlay, target)
    response = replay(http_overlay, hop)
    assert response.status == 200, response
    assert not response.header("x-overlay-error"), response
    seen = http_overlay.origin.with_target(target)
    assert len(seen) == 1 and seen[0].peer == SHIELD_SOURCE, seen


@pytest.mark.parametrize(
    "edit", ["added-field", "changed-xff", "changed-via", "removed-xff", "changed-target"]
)
def test_tampered_hop_replay_is_refused(edit: str, http_overlay: HttpOverlay) -> None:
    target = f"/reflect/p-hop-{edit}?h=x-forwarded-host"
    hop = capture(http_overlay, target)
    response = replay(http_overlay, edit_hop(hop, edit, target))
    assert response.status == 403, response
    assert response.header("x-overlay-error"), response
    assert not http_overlay.origin.matching(target.split("?")[0]), "the origin saw the replay"
    assert not http_overlay.origin.raw_contains(target.split("?")[0].encode())
    # The shield still serves a clean client through the edges afterwards.
    assert get(http_overlay.edge("edge-1"), SITE, target, source=VICTIM).status == 200


def test_direct_path_is_not_signed(http_overlay: HttpOverlay) -> None:
    """The direct origin never sees overlay fields, from a user or from the overlay."""
    target = "/reflect/p-direct-overlay?h=x-overlay-node&h=x-overlay-auth"
    response = get(http_overlay.edge("edge-1"), DIRECT, target, **{"X-Overlay-Node": "edge-2"})
    assert response.status == 200, response
    assert b"x-overlay-node=<absent> x-overlay-auth=<absent>" in response.body, response
