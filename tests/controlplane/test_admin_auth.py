"""The admin credential parser and checks as pure functions: every refusal a value, none raised."""

from __future__ import annotations

import base64

import pytest

from controlplane.admin import json_depth_within
from controlplane.admin_auth import (
    BearerCredentials,
    HmacCredentials,
    Refusal,
    admissible,
    authorize,
    parse_authorization,
    sign_admin_request,
    verify,
)

SECRET = b"0123456789abcdef-test-secret"
NOW = 1_700_000_000.0
SIG = "ab" * 32


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([], Refusal.MISSING),
        (["Bearer a", "Bearer a"], Refusal.REPEATED),
        (["Bearer " + "a" * 600], Refusal.TOO_LONG),
        (["Basic Zm9vOmJhcg=="], Refusal.SCHEME),
        (["Bearer"], Refusal.MALFORMED),
        (["Bearer caf\xe9"], Refusal.MALFORMED),
        (["Bearer a\udcffb"], Refusal.MALFORMED),  # a non-UTF-8 byte, as aiohttp decodes it
        (["Bearer a\x00b"], Refusal.MALFORMED),
        (["CDN-HMAC t=" + "1" * 5000 + ",sig=" + SIG], Refusal.TOO_LONG),
        (["CDN-HMAC t=" + "1" * 13 + ",sig=" + SIG], Refusal.MALFORMED),
        (["CDN-HMAC t=-1,sig=" + SIG], Refusal.MALFORMED),
        (["CDN-HMAC t=+1,sig=" + SIG], Refusal.MALFORMED),
        (["CDN-HMAC t=١٢٣,sig=" + SIG], Refusal.MALFORMED),
        (["CDN-HMAC t=1,sig=" + SIG[:-1] + "é"], Refusal.MALFORMED),
        (["CDN-HMAC t=1,sig=" + SIG[:-1]], Refusal.MALFORMED),
        (["CDN-HMAC t=1,sig=" + "z" * 64], Refusal.MALFORMED),
        (["CDN-HMAC t=1,sig=" + SIG + ",sig=" + SIG], Refusal.MALFORMED),
        (["CDN-HMAC t=1,T=1,sig=" + SIG], Refusal.MALFORMED),
        (["CDN-HMAC t=1,sig=" + SIG + ",x=1"], Refusal.MALFORMED),
        (["CDN-HMAC t=1,sig=" + SIG + ","], Refusal.MALFORMED),
        (["CDN-HMAC t=1"], Refusal.MALFORMED),
        (["CDN-HMAC sig"], Refusal.MALFORMED),
        (["CDN-HMAC"], Refusal.MALFORMED),
    ],
)
def test_malformed_headers_are_refusals(values: list[str], expected: Refusal) -> None:
    assert parse_authorization(values) is expected


def test_well_formed_headers_parse() -> None:
    assert parse_authorization([f"cdn-hmac T=12 , sig={SIG.upper()}"]) == HmacCredentials("12", SIG)
    assert parse_authorization(["Bearer  s3cr et "]) == BearerCredentials(b"s3cr et")


def test_credentials_hide_their_value() -> None:
    assert SIG not in repr(HmacCredentials("12", SIG))
    assert "s3cret" not in repr(BearerCredentials(b"s3cret"))
    assert all("s3cret" not in refusal.value for refusal in Refusal)


@pytest.mark.parametrize("peer", ["192.0.2.7", "2001:db8::1", None, "", "not-an-address"])
def test_bearer_is_for_loopback_peers_only(peer: str | None) -> None:
    credentials = BearerCredentials(base64.b64encode(SECRET))

    refusal = admissible(credentials, secret=SECRET, peer=peer, now=NOW, max_skew_s=30)

    assert refusal is Refusal.NOT_LOOPBACK


@pytest.mark.parametrize("peer", ["127.0.0.1", "127.8.9.10", "::1"])
def test_bearer_from_loopback_is_checked_before_the_body(peer: str) -> None:
    good, bad = BearerCredentials(base64.b64encode(SECRET)), BearerCredentials(b"nope")

    assert admissible(good, secret=SECRET, peer=peer, now=NOW, max_skew_s=30) is None
    assert admissible(bad, secret=SECRET, peer=peer, now=NOW, max_skew_s=30) is Refusal.MISMATCH


@pytest.mark.parametrize(
    ("secret", "token", "ok"),
    [
        (SECRET, base64.b64encode(SECRET), True),
        (SECRET, SECRET, True),
        (SECRET, base64.b64encode(SECRET).rstrip(b"="), False),
        (SECRET, base64.urlsafe_b64encode(b"\xfb" + SECRET), False),
        (b"\x00\xff" * 10, base64.b64encode(b"\x00\xff" * 10), True),
        (b"line\nbreak-in-secret", b"line\nbreak-in-secret", False),  # not printable
        (b"line\nbreak-in-secret", base64.b64encode(b"line\nbreak-in-secret"), True),
    ],
)
def test_bearer_token_is_base64_or_a_printable_secret(
    secret: bytes, token: bytes, ok: bool
) -> None:
    refusal = verify(BearerCredentials(token), secret=secret, method="POST", path="/", body=b"")

    assert (refusal is None) is ok


def test_hmac_checks_skew_then_signature() -> None:
    header = sign_admin_request(SECRET, "POST", "/purge", b"{}", now=NOW)

    def check(*, now: float = NOW, body: bytes = b"{}", path: str = "/purge") -> Refusal | None:
        return authorize(
            [header],
            secret=SECRET,
            method="POST",
            path=path,
            body=body,
            peer="192.0.2.7",
            now=now,
            max_skew_s=30,
        )

    assert check(now=NOW + 30) is None
    assert check(now=NOW + 31) is Refusal.SKEW
    assert check(body=b"[]") is Refusal.MISMATCH
    assert check(path="/purge?\udcff") is Refusal.MISMATCH


@pytest.mark.parametrize(
    ("text", "limit", "within"),
    [
        ('{"values": ["a"]}', 2, True),
        ('{"values": [["a"]]}', 2, False),
        ("[" * 100_000, 4, False),
        ('["[[[[[[[[", "{{{{{{"]', 1, True),
        ('["\\"[[[[", "]]]]\\\\"]', 1, True),
        ('["unterminated [[[[[[', 1, True),
        ("]]]]][[[[", 4, True),  # not JSON at all: json.loads refuses it
        ("]]]]][[[[[", 4, False),  # stray closers buy no depth
        ("", 0, True),
    ],
)
def test_json_depth_ignores_brackets_in_strings(text: str, limit: int, within: bool) -> None:
    assert json_depth_within(text, limit) is within
