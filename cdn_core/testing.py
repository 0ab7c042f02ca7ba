"""Builders and a fake clock for tests, shipped with the package (like httpcore's mock backend).

``make_request`` / ``make_response`` build heads from plain mappings; ``make_entry`` builds a
:class:`StoredEntry` directly (bypassing storability), so lookup rules can be tested alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from cdn_core.cache_key import key_of, normalize_host, normalize_target, variant_of, vary_fields
from cdn_core.config import Role
from cdn_core.entry import StoredEntry
from cdn_core.http import Headers, RequestHead, ResponseHead
from cdn_core.httpdate import format_http_date
from cdn_core.registry import NodeReport
from cdn_core.response_headers import SURROGATE_KEY_FIELDS, surrogate_keys

# 2023-11-14T22:13:20Z: a fixed, whole-second epoch so HTTP-dates round-trip exactly.
EPOCH = 1_700_000_000.0

HeaderInput = Mapping[str, str] | Iterable[tuple[str, str]] | Headers | None


def _headers(headers: HeaderInput) -> Headers:
    if headers is None:
        return Headers()
    if isinstance(headers, Headers):
        return headers
    return Headers(headers)


@dataclass(slots=True)
class FakeClock:
    """A wall clock that only moves when told to; call it to read the time."""

    now: float = EPOCH

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


def make_request(
    target: str = "/",
    *,
    method: str = "GET",
    host: str = "example.com",
    headers: HeaderInput = None,
    scheme: str = "http",
) -> RequestHead:
    return RequestHead(
        method=method, host=host, target=target, headers=_headers(headers), scheme=scheme
    )


def make_response(
    status: int = 200, *, headers: HeaderInput = None, date: float | None = None
) -> ResponseHead:
    """A response head; ``date`` adds a ``Date`` field for that time."""
    fields = _headers(headers)
    if date is not None:
        fields = fields.with_set("date", format_http_date(date))
    return ResponseHead(status=status, headers=fields)


def make_entry(
    *,
    request: RequestHead | None = None,
    status: int = 200,
    headers: HeaderInput = None,
    response_time: float = EPOCH,
    request_time: float | None = None,
    body_size: int = 0,
    stale_at: float | None = None,
    date: bool = True,
) -> StoredEntry:
    """A stored entry as if received at ``response_time`` (Date set to it unless ``date=False``
    or the headers carry one); Vary and surrogate keys are taken from the headers, and the
    surrogate-key fields are moved out of the stored head as :func:`decide_store` does."""
    request = request or make_request()
    fields = _headers(headers)
    if date and "date" not in fields:
        fields = fields.with_set("date", format_http_date(response_time))
    vary = vary_fields(fields) or ()
    return StoredEntry(
        key=key_of(request.host, request.target),
        variant=variant_of(request.headers, vary),
        vary=vary,
        method="GET",
        host=normalize_host(request.host),
        target=normalize_target(request.target),
        response=ResponseHead(status=status, headers=fields.without(*SURROGATE_KEY_FIELDS)),
        request_time=response_time if request_time is None else request_time,
        response_time=response_time,
        body_size=body_size,
        surrogate_keys=surrogate_keys(fields),
        stale_at=stale_at,
    )


def make_report(node: str, **fields: Any) -> NodeReport:
    """A :class:`NodeReport` with placeholder identity fields; ``fields`` override any of them."""
    defaults: dict[str, Any] = {
        "role": Role.EDGE,
        "region": "r",
        "listen": "127.0.0.1:1",
        "admin": "127.0.0.1:2",
        "public_address": "127.0.0.1",
        "config_version": "v",
        "started_at": 0.0,
        "heartbeat_at": 0.0,
    }
    return NodeReport(node=node, **{**defaults, **fields})
