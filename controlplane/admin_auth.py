"""Credentials of admin requests, parsed and checked by pure functions that never raise.

Every field is bounded before it is parsed (see :mod:`controlplane.admin` for the schemes).
A refusal is a :class:`Refusal`, which names the reason and never carries the credential,
so it is safe to log; the parsed credentials hide their value from ``repr``.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

HMAC_SCHEME = "CDN-HMAC"
BEARER_SCHEME = "Bearer"
MAX_HEADER_CHARS = 512
MAX_STAMP_DIGITS = 12

_HEADER = re.compile(r"[\t\x20-\x7e]*")  # visible ASCII, spaces and tabs
_STAMP = re.compile(rf"[0-9]{{1,{MAX_STAMP_DIGITS}}}")
_SIG = re.compile(r"[0-9a-fA-F]{64}")
_TOKEN = re.compile(r"[\x20-\x7e]+")
_PRINTABLE = re.compile(rb"[\x20-\x7e]+")


class Refusal(enum.Enum):
    """Why an admin request's credentials were refused (safe to log: no credential in it)."""

    MISSING = "no Authorization header"
    REPEATED = "more than one Authorization header"
    TOO_LONG = f"Authorization header over {MAX_HEADER_CHARS} characters"
    SCHEME = "unknown authentication scheme"
    MALFORMED = "malformed credentials"
    NOT_LOOPBACK = "Bearer credentials from a peer that is not loopback"
    SKEW = "timestamp outside the allowed clock skew"
    MISMATCH = "credentials do not match the cluster secret"


@dataclass(frozen=True)
class HmacCredentials:
    stamp: str  # 1 to MAX_STAMP_DIGITS ASCII digits, exactly as signed
    sig: str = field(repr=False)  # 64 lowercase hex digits


@dataclass(frozen=True)
class BearerCredentials:
    token: bytes = field(repr=False)  # printable ASCII


Credentials = HmacCredentials | BearerCredentials


def sign_admin_request(secret: bytes, method: str, path: str, body: bytes, *, now: float) -> str:
    """The ``Authorization`` header value for an admin request (``CDN-HMAC`` scheme)."""
    stamp = str(int(now))
    return f"{HMAC_SCHEME} t={stamp},sig={_signature(secret, stamp, method, path, body)}"


def _signature(secret: bytes, stamp: str, method: str, path: str, body: bytes) -> str:
    head = f"{stamp}\n{method.upper()}\n{path}\n".encode("utf-8", "backslashreplace")
    return hmac.new(secret, head + body, hashlib.sha256).hexdigest()


def parse_authorization(values: Sequence[str]) -> Credentials | Refusal:
    """The credentials in a request's ``Authorization`` header fields, or why they are refused."""
    if not values:
        return Refusal.MISSING
    if len(values) > 1:
        return Refusal.REPEATED
    header = values[0]
    if len(header) > MAX_HEADER_CHARS:
        return Refusal.TOO_LONG
    if not _HEADER.fullmatch(header):
        return Refusal.MALFORMED
    scheme, _, rest = header.strip(" \t").partition(" ")
    if scheme.lower() == BEARER_SCHEME.lower():
        token = rest.strip(" \t")
        if not _TOKEN.fullmatch(token):
            return Refusal.MALFORMED
        return BearerCredentials(token.encode("ascii"))
    if scheme.lower() == HMAC_SCHEME.lower():
        return _parse_hmac(rest)
    return Refusal.SCHEME


def _parse_hmac(params: str) -> HmacCredentials | Refusal:
    """``t=<digits>,sig=<64 hex>``: exactly these two parameters, each once, unquoted."""
    fields: dict[str, str] = {}
    for part in params.split(","):
        name, equals, value = part.strip(" \t").partition("=")
        name = name.lower()
        if not equals or name not in ("t", "sig") or name in fields:
            return Refusal.MALFORMED
        fields[name] = value
    stamp, sig = fields.get("t", ""), fields.get("sig", "")
    if not _STAMP.fullmatch(stamp) or not _SIG.fullmatch(sig):
        return Refusal.MALFORMED
    return HmacCredentials(stamp, sig.lower())


def admissible(
    credentials: Credentials, *, secret: bytes, peer: str | None, now: float, max_skew_s: float
) -> Refusal | None:
    """The checks that need no body: a Bearer token from loopback in full, HMAC's clock skew."""
    if isinstance(credentials, BearerCredentials):
        if not _is_loopback(peer):
            return Refusal.NOT_LOOPBACK
        return _verify_bearer(credentials, secret)
    if abs(now - int(credentials.stamp)) > max_skew_s:
        return Refusal.SKEW
    return None


def verify(
    credentials: Credentials, *, secret: bytes, method: str, path: str, body: bytes
) -> Refusal | None:
    """Whether the credentials prove the secret (over this request), in constant time.

    Call it after :func:`admissible`, which alone checks a Bearer's peer and HMAC's skew.
    """
    if isinstance(credentials, BearerCredentials):
        return _verify_bearer(credentials, secret)
    expected = _signature(secret, credentials.stamp, method, path, body)
    return None if hmac.compare_digest(credentials.sig, expected) else Refusal.MISMATCH


def _verify_bearer(credentials: BearerCredentials, secret: bytes) -> Refusal | None:
    """The token is the secret's base64, or the secret itself when that is printable ASCII."""
    as_base64 = hmac.compare_digest(credentials.token, base64.b64encode(secret))
    as_is = hmac.compare_digest(credentials.token, secret)
    printable = _PRINTABLE.fullmatch(secret) is not None
    return None if as_base64 | (as_is & printable) else Refusal.MISMATCH


def authorize(
    values: Sequence[str],
    *,
    secret: bytes,
    method: str,
    path: str,
    body: bytes,
    peer: str | None,
    now: float,
    max_skew_s: float,
) -> Refusal | None:
    """All the checks at once: None when the request is authorized, else why not."""
    credentials = parse_authorization(values)
    if isinstance(credentials, Refusal):
        return credentials
    refusal = admissible(credentials, secret=secret, peer=peer, now=now, max_skew_s=max_skew_s)
    if refusal is not None:
        return refusal
    return verify(credentials, secret=secret, method=method, path=path, body=body)


def _is_loopback(peer: str | None) -> bool:
    try:
        return peer is not None and ipaddress.ip_address(peer).is_loopback
    except ValueError:
        return False
